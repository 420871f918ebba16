r"""Losses on the readout sequence ``out`` of shape ``[T, B, K]`` (K classes) and labels ``y`` ``[B]``.

Every loss takes ``label_smoothing`` :math:`\varepsilon`: the target distribution is
:math:`q = (1-\varepsilon)\,\mathrm{onehot}(y) + \varepsilon / K` (Szegedy et al. 2016),
used by the cross-entropies as ``F.cross_entropy`` does and as the regression target
of the MSE losses. Which readout a loss reads:

* ``ce``, ``tet``, ``mse``: the readout values at each step (class scores);
* ``ce_count``, ``mse_count``: the counts :math:`c = \sum_t o_t` (spike counts when the
  readout spikes; snnTorch's ``ce_count_loss`` / ``mse_count_loss``);
* ``ce_membrane``: the membrane of a leaky integrator driven by the readout
  (SpyTorch's / snnTorch's max-membrane loss).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import check
from ..registry import register


def smoothed(y: Tensor, K: int, eps: float, dtype: torch.dtype) -> Tensor:
    r"""The smoothed one-hot target :math:`(1-\varepsilon)\,\mathrm{onehot}(y) + \varepsilon/K`, ``[B, K]``."""
    return F.one_hot(y, K).to(dtype) * (1 - eps) + eps / K


class _Smoothing(nn.Module):
    """The ``label_smoothing`` argument every loss shares."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        check(0 <= label_smoothing < 1, "label_smoothing", f"must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def ce(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""


@register("loss", "ce")
class MeanCrossEntropy(_Smoothing):
    r"""Cross-entropy on the time-averaged output: :math:`\mathrm{CE}(\frac1T\sum_t o_t, y)`."""

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        return self.ce(out.mean(0), y)


@register("loss", "tet")
class TemporalEfficientLoss(_Smoothing):
    r"""TET: cross-entropy at every step, plus a pull of the outputs towards :math:`\phi`.

    .. math:: \mathcal{L} = (1-\lambda)\,\frac1T\sum_t \mathrm{CE}(o_t, y)
              + \lambda\,\frac1T\sum_t \mathrm{MSE}(o_t, \phi)

    with :math:`\mathrm{MSE}(o_t,\phi)` the mean over batch and classes. Deng et al.,
    "Temporal Efficient Training of Spiking Neural Network via Gradient Re-weighting",
    ICLR 2022 (Eq. 9-11); the defaults :math:`\lambda = 10^{-3}`, :math:`\phi = 1` are
    those of the authors' code (``--lamb 1e-3``, ``means=1.0``). ``lamb=0`` is the plain
    per-step cross-entropy.
    """

    def __init__(self, lamb: float = 1e-3, phi: float = 1.0, label_smoothing: float = 0.0):
        super().__init__(label_smoothing)
        check(0 <= lamb <= 1, "lamb", f"the regulariser weight must be in [0, 1], got {lamb}")
        self.lamb, self.phi = float(lamb), float(phi)

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        T = out.shape[0]
        ce = self.ce(out.flatten(0, 1), y.repeat(T))  # the mean over steps and samples
        if self.lamb == 0:
            return ce
        return (1 - self.lamb) * ce + self.lamb * F.mse_loss(out, torch.full_like(out, self.phi))


@register("loss", "mse")
class MeanSquaredError(_Smoothing):
    r"""MSE between the time-averaged output and the (smoothed) one-hot label: :math:`\frac1K \lVert \frac1T\sum_t o_t - q \rVert^2`."""

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        mean = out.mean(0)
        return F.mse_loss(mean, smoothed(y, mean.shape[-1], self.label_smoothing, mean.dtype))


@register("loss", "ce_count")
class CountCrossEntropy(_Smoothing):
    r"""Cross-entropy of the counts: :math:`\mathrm{CE}(\sum_t o_t, y)` (snnTorch's ``ce_count_loss``).

    With a spiking readout :math:`\sum_t o_t` is each class's spike count; unlike ``ce``
    (the mean) its logits grow with T.
    """

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        return self.ce(out.sum(0), y)


@register("loss", "mse_count")
class CountMSE(_Smoothing):
    r"""MSE of the counts against target firing rates (snnTorch's ``mse_count_loss``, from SLAYER).

    .. math:: \mathcal{L} = \frac1T\,\mathrm{MSE}\Big(\sum_t o_t,\ T\,\big(r_{+}\,q + r_{-}\,(1 - q)\big)\Big)

    with :math:`q` the (smoothed) one-hot label: the correct class should fire at the
    rate :math:`r_+` (``correct_rate``), the others at :math:`r_-` (``incorrect_rate``);
    the :math:`1/T` is snnTorch's.
    snnTorch rounds the targets :math:`T r` down to integers; here they are exact, so
    the two agree whenever :math:`T r` is whole.
    """

    def __init__(self, correct_rate: float = 1.0, incorrect_rate: float = 0.0, label_smoothing: float = 0.0):
        super().__init__(label_smoothing)
        check(0 <= correct_rate <= 1, "correct_rate", f"a firing rate in [0, 1], got {correct_rate}")
        check(0 <= incorrect_rate <= 1, "incorrect_rate", f"a firing rate in [0, 1], got {incorrect_rate}")
        self.correct_rate, self.incorrect_rate = float(correct_rate), float(incorrect_rate)

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        T, K = out.shape[0], out.shape[-1]
        q = smoothed(y, K, self.label_smoothing, out.dtype)
        target = T * (self.correct_rate * q + self.incorrect_rate * (1 - q))
        return F.mse_loss(out.sum(0), target) / T


@register("loss", "ce_membrane")
class MembraneCrossEntropy(_Smoothing):
    r"""Cross-entropy on the membrane of a leaky-integrator readout (Zenke's SpyTorch; snnTorch's ``ce_max_membrane_loss``).

    The readout :math:`o_t` drives a non-spiking membrane :math:`m_t = \beta\,m_{t-1} + o_t`
    (:math:`m_0 = 0`; ``decay`` :math:`\beta`); the logits are its maximum over time
    (``reduce=max``, as SpyTorch and snnTorch) or its last value (``reduce=last``):

    .. math:: \mathcal{L} = \mathrm{CE}\big(\max_t m_t,\ y\big)

    ``decay=0`` reads the readout itself, which is snnTorch's loss on a readout layer
    that already integrates.
    """

    def __init__(self, decay: float = 0.9, reduce: Literal["max", "last"] = "max", label_smoothing: float = 0.0):
        super().__init__(label_smoothing)
        check(0 <= decay <= 1, "decay", f"must be in [0, 1], got {decay}")
        self.decay, self.reduce = float(decay), reduce

    def membrane(self, out: Tensor) -> Tensor:
        """:math:`m_t` for every step, ``[T, B, K]``."""
        m, mems = torch.zeros_like(out[0]), []
        for o in out:
            m = self.decay * m + o
            mems.append(m)
        return torch.stack(mems)

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        m = self.membrane(out)
        return self.ce(m.amax(0) if self.reduce == "max" else m[-1], y)
