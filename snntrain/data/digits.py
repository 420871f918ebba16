"""The embedded default dataset: 8x8 handwritten digits, no download.

1,797 greyscale 8x8 images of the digits 0-9 (16 grey levels) from the UCI "Optical
Recognition of Handwritten Digits" data set (Alpaydin & Kaynak, 1995; CC BY 4.0), in the
file scikit-learn ships for ``sklearn.datasets.load_digits`` (``digits.csv.gz``: one row
per image, 64 pixel values then the label), copied into this package so that it works
offline and reading it imports neither scikit-learn nor numpy's text parser.
Pixels are scaled to [0, 1]. The train/test split is stratified and fixed by
``split_seed`` (independent of the run's ``seed``), so every run tests on the same
images.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from ..errors import check
from ..registry import register
from .bundle import DataBundle
from .split import stratified_split


def read_rows() -> list[list[float]]:
    """The 1,797 rows of ``digits.csv.gz`` (64 pixels in 0..16, then the label)."""
    with gzip.open(Path(__file__).with_name("digits.csv.gz"), "rt") as f:
        return [[float(v) for v in line.split(",")] for line in f if line.strip()]


@register("dataset", "digits")
def digits(test_fraction: float = 0.2, split_seed: int = 0) -> DataBundle:
    """8x8 handwritten digits bundled with scikit-learn (offline); fixed stratified split."""
    check(0 < test_fraction < 1, "test_fraction", f"must be in (0, 1), got {test_fraction}")
    rows = read_rows()
    x = torch.tensor([r[:64] for r in rows], dtype=torch.float32).view(-1, 1, 8, 8) / 16.0  # [N, 1, 8, 8]
    y = torch.tensor([int(r[64]) for r in rows], dtype=torch.long)
    train_idx, test_idx = stratified_split(y.tolist(), test_fraction, split_seed)
    return DataBundle(
        train=TensorDataset(x[train_idx], y[train_idx]),
        test=TensorDataset(x[test_idx], y[test_idx]),
        in_shape=(1, 8, 8),
        num_classes=10,
    )
