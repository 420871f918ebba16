r"""Encoders: turn a static batch ``[B, ...]`` into a spike/current sequence ``[T, B, ...]``.

Encoding runs inside the training step, on the model's device, after the batch is
moved there: it is one broadcast or one random draw per batch, and doing it there
keeps the DataLoader's output T-independent (the same cached tensors serve any T).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register


@register("encoder", "direct")
class Direct(nn.Module):
    r"""Direct (analog) input: :math:`x_t = x` for every step t (the first layer does the encoding)."""

    def __init__(self, T: int):
        super().__init__()
        self.T = T

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(0).expand(self.T, *x.shape)


@register("encoder", "rate")
class Rate(nn.Module):
    r"""Rate (Bernoulli) coding: :math:`s_t \sim \mathrm{Bernoulli}(\mathrm{clip}(g\,x, 0, 1))` i.i.d. over t.

    Intensities are expected in [0, 1]; ``gain`` g scales them first. The expected
    spike count over T steps is :math:`T \cdot \mathrm{clip}(g x, 0, 1)` (the
    discrete-time Poisson approximation used by snnTorch's ``spikegen.rate``).
    """

    def __init__(self, T: int, gain: float = 1.0):
        super().__init__()
        check(gain > 0, "gain", f"must be > 0, got {gain}")
        self.T, self.gain = T, float(gain)

    def forward(self, x: Tensor) -> Tensor:
        p = (self.gain * x).clamp(0, 1).unsqueeze(0).expand(self.T, *x.shape)
        return torch.bernoulli(p)
