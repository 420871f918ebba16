r"""Lapicque's RC-circuit neuron, as in snnTorch's ``Lapicque``."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import check
from ..registry import register
from .base import SpikingNeuron, Spiking, settle


def rc_from(decay: float | None, R: float | None, C: float | None, time_step: float) -> tuple[float, float, float]:
    """``(beta, R, C)`` completed from any two of them, snnTorch's derivations with :math:`\\beta = e^{-\\Delta t/RC}`."""
    check(time_step > 0, "time_step", f"must be > 0, got {time_step}")
    for name, v in (("R", R), ("C", C)):
        check(v is None or v > 0, name, f"must be > 0, got {v}")
    if decay is not None:
        check(0 < decay < 1, "decay", f"must be in (0, 1), got {decay}")
        check(R is None or C is None, "decay", "give at most two of decay, R and C (the third is derived)")
        ln = math.log(1 / decay)
        if C is not None:
            return decay, time_step / (C * ln), C
        R = 1.0 if R is None else R
        return decay, R, time_step / (R * ln)
    if R is None and C is None:  # no snnTorch default: beta = 0.5 with R = 1
        return rc_from(0.5, None, None, time_step)
    check(R is not None and C is not None, "R" if R is None else "C", "give two of decay, R and C (or decay alone)")
    return math.exp(-time_step / (R * C)), R, C


class LapicqueParams(NamedTuple):
    k: Spiking
    leak: Tensor  # 1 - dt/RC
    gain: Tensor  # dt/C


def lapicque_step(p: LapicqueParams, mem: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """One Lapicque step: Euler-charge the RC membrane, fire and reset (:func:`settle`)."""
    return settle(p.k, p.gain * x + p.leak * mem, None, mem)


@register("neuron", "lapicque")
class Lapicque(SpikingNeuron):
    r"""Lapicque RC neuron: :math:`H_t = (1 - \frac{\Delta t}{RC}) U_{t-1} + \frac{\Delta t}{C} I_t`, :math:`S_t = \Theta(H_t - V_{th})`, then reset.

    The passive membrane is an RC circuit, :math:`\tau \dot U = -U + R I` with
    :math:`\tau = RC`, integrated by forward Euler with step :math:`\Delta t`
    (``time_step``):

    .. math::
        H_t = \left(1 - \frac{\Delta t}{RC}\right) U_{t-1} + \frac{\Delta t}{C} I_t,
        \qquad S_t = \Theta(H_t - V_{th}),

    then :math:`U_t = H_t - V_{th} S_t` (subtract), :math:`(1-S_t) H_t` (zero) or
    :math:`H_t` (none); :math:`U_0 = 0`. Give any two of ``decay``
    (:math:`\beta = e^{-\Delta t/RC}`), ``R`` and ``C``, or ``decay`` alone (then
    :math:`R = 1`), and the third is derived as in snnTorch:
    :math:`C = \Delta t / (R \ln(1/\beta))`, :math:`R = \Delta t / (C \ln(1/\beta))`,
    :math:`\beta = e^{-\Delta t/RC}`. With none of them, :math:`\beta = 0.5, R = 1`.
    Note that :math:`\beta` only sets :math:`RC`: the per-step factor is the Euler one,
    :math:`1 - \Delta t/RC = 1 - \ln(1/\beta)` (0.307 for :math:`\beta = 0.5`, negative,
    i.e. oscillating, for :math:`\beta < 1/e`), exactly as snnTorch computes it. The
    parameters are fixed physical constants (not learnable), as in snnTorch; use
    ``lif`` for a learnable decay. State ``mem``.

    Source: L. Lapicque (1907), J. Physiol. Pathol. Gen. 9, 620-635; N. Brunel &
    M. van Rossum (2007), "Lapicque's 1907 paper: from frogs to integrate-and-fire",
    Biol. Cybern. 97, 337-339; snnTorch ``Lapicque``.

    **Mapping to snnTorch** ``Lapicque(beta, R, C, time_step, threshold,
    reset_mechanism)``: ``decay=beta``, same ``R``, ``C``, ``time_step``, plus
    ``reset_delay=True`` and ``detach_reset=True``: then
    :math:`U_t = H_t - V_{th} R_t` (subtract) or :math:`(1 - R_t) H_t` (zero), with
    :math:`R_t = \Theta(U_{t-1} - V_{th})` and :math:`H_t` charged from :math:`U_{t-1}`,
    and :math:`S_t = \Theta(U_t - V_{th})`: snnTorch's spikes and membrane. (snnTorch
    crashes when all three of beta, R, C are given; here that is an argument error.)
    """

    fixed_options = {"v_reset": 0.0}
    supported_backends = ("torch", "fused")

    def __init__(
        self,
        decay: float | None = None,
        R: float | None = None,
        C: float | None = None,
        time_step: float = 1.0,
        **options: Any,
    ):
        beta, R, C = rc_from(decay, R, C, float(time_step))
        super().__init__(**options)
        self.beta, self.R, self.C, self.time_step = beta, R, C, float(time_step)
        self.register_buffer("leak", torch.tensor(1 - time_step / (R * C)))  # 1 - dt / RC
        self.register_buffer("gain", torch.tensor(time_step / C))  # dt / C

    def params(self) -> LapicqueParams:
        return LapicqueParams(self.spiking(), self.leak, self.gain)

    step_fn = staticmethod(lapicque_step)

    def extra_repr(self) -> str:
        return f"R={self.R:g}, C={self.C:g}, time_step={self.time_step:g}, " + self.options_repr()
