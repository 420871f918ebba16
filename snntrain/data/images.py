r"""Image datasets held in memory as one ``uint8`` tensor, read a whole batch at a time.

torchvision's MNIST- and CIFAR-style datasets hand out one image at a time: a PIL image
made from the stored bytes, then ``ToTensor`` (``x / 255``, channels first) and
``Normalize`` (:math:`(x - \mu) / \sigma`). For a batch of 128 MNIST digits that is about
6 ms of Python per training step. :class:`InMemoryImages` keeps the same bytes as one
``[N, C, H, W]`` ``uint8`` tensor and answers a batch (``__getitems__``, which PyTorch's
``DataLoader`` calls with the batch's indices) with one gather and the same arithmetic on
the whole batch: every value equals the per-image pipeline's bit for bit. Used where no
random augmentation runs (an augmented split keeps torchvision's per-image path).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset


class InMemoryImages(Dataset):
    """``(x, y)`` pairs of ``images`` (``uint8`` ``[N, C, H, W]``) scaled to [0, 1] and, if ``mean``/``std``
    are given, normalised per channel."""

    def __init__(self, images: Tensor, targets: Tensor, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        self.images, self.targets = images.contiguous(), targets.to(torch.long)
        c = images.shape[1]
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(c, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(c, 1, 1)
        self.classes: list[str] = []  # the class names, where the files name them
        self.reader: type | None = None  # the dataset class that parsed the files (from_torchvision)

    @classmethod
    def from_torchvision(cls, ds: Any, normalize: bool, mean, std) -> InMemoryImages:
        """The images of a torchvision MNIST-like (``data``: ``[N, H, W]`` tensor) or CIFAR-like
        (``data``: ``[N, H, W, C]`` array) dataset."""
        data = torch.as_tensor(ds.data)
        images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
        out = cls(images, torch.as_tensor(ds.targets), mean if normalize else None, std if normalize else None)
        out.classes, out.reader = list(getattr(ds, "classes", [])), type(ds)
        return out

    def __len__(self) -> int:
        return len(self.targets)

    def _scale(self, x: Tensor) -> Tensor:
        x = x.to(torch.float32).div(255)  # ToTensor
        if self.mean is not None:  # Normalize: x - mean, then / std
            x = x.sub(self.mean).div(self.std)
        return x

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self._scale(self.images[i]), int(self.targets[i])

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        x, y = self._scale(self.images[idx]), self.targets[idx]
        return list(zip(x.unbind(0), y.unbind(0)))  # the default collate stacks them back into one batch
