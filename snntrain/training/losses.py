r"""Losses on the readout sequence ``out`` of shape ``[T, B, classes]``."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import check
from ..registry import register


@register("loss", "ce")
class MeanCrossEntropy(nn.Module):
    r"""Cross-entropy on the time-averaged output: :math:`\mathrm{CE}(\frac1T\sum_t o_t, y)`."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        check(0 <= label_smoothing < 1, "label_smoothing", f"must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out.mean(0), y, label_smoothing=self.label_smoothing)


@register("loss", "tet")
class TemporalEfficientLoss(nn.Module):
    r"""TET: cross-entropy at every step, averaged: :math:`\frac1T\sum_t \mathrm{CE}(o_t, y)`.

    Deng et al., "Temporal Efficient Training of Spiking Neural Network via Gradient
    Re-weighting", ICLR 2022 (the MSE regulariser of the paper is left out).
    """

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        check(0 <= label_smoothing < 1, "label_smoothing", f"must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        T = out.shape[0]
        return F.cross_entropy(out.flatten(0, 1), y.repeat(T), label_smoothing=self.label_smoothing)


@register("loss", "mse")
class MeanSquaredError(nn.Module):
    r"""MSE between the time-averaged output and the one-hot label: :math:`\frac1K \lVert \frac1T\sum_t o_t - \mathrm{onehot}(y) \rVert^2`."""

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        mean = out.mean(0)
        return F.mse_loss(mean, F.one_hot(y, mean.shape[-1]).to(mean.dtype))
