"""The embedded default dataset: 8x8 handwritten digits, no download.

1,797 greyscale 8x8 images of the digits 0-9 (16 grey levels) from the UCI "Optical
Recognition of Handwritten Digits" data set (Alpaydin & Kaynak, 1995), as bundled with
scikit-learn (``sklearn.datasets.load_digits``), so it works offline on any machine.
Pixels are scaled to [0, 1]. The train/test split is stratified and fixed by
``split_seed`` (independent of the run's ``seed``), so every run tests on the same
images.
"""
from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from ..errors import check
from ..registry import register
from .bundle import DataBundle
from .split import stratified_split


@register("dataset", "digits")
def digits(test_fraction: float = 0.2, split_seed: int = 0) -> DataBundle:
    """8x8 handwritten digits bundled with scikit-learn (offline); fixed stratified split."""
    check(0 < test_fraction < 1, "test_fraction", f"must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = torch.tensor(raw.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8]
    y = torch.tensor(raw.target, dtype=torch.long)
    train_idx, test_idx = stratified_split(y.tolist(), test_fraction, split_seed)
    return DataBundle(
        train=TensorDataset(x[train_idx], y[train_idx]),
        test=TensorDataset(x[test_idx], y[test_idx]),
        in_shape=(1, 8, 8),
        num_classes=10,
    )
