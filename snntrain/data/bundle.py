"""What a dataset builder returns."""
from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset


@dataclass
class DataBundle:
    """Train and test splits plus the shape facts a model needs.

    ``in_shape`` is the shape of one sample as the model sees one time step
    (``[C, H, W]`` for images, ``[F]`` for feature vectors). ``temporal`` datasets
    (events binned into frames, spike trains) yield samples that already are sequences
    ``[T, ...]``; the trainer moves T to the front of the batch and skips the encoder.
    """

    train: Dataset
    test: Dataset
    in_shape: tuple[int, ...]
    num_classes: int
    temporal: bool = False
