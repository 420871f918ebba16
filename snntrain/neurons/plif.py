r"""Parametric LIF: a leaky integrate-and-fire neuron whose time constant is learnt.

Fang et al., "Incorporating Learnable Membrane Time Constant to Enhance Learning of
Spiking Neural Networks", ICCV 2021. One parameter :math:`w` per layer gives
:math:`1/\tau = \sigma(w) \in (0, 1)`, so the decay :math:`\beta = 1 - \sigma(w)` stays in
range without clamping. Per time step, with rest/reset potential :math:`V_{reset}`:

.. math::
    H_t = \begin{cases} V_{t-1} + \sigma(w)\,\big(I_t - (V_{t-1} - V_{reset})\big) & \text{decay\_input}\\
                        V_{t-1} - \sigma(w)\,(V_{t-1} - V_{reset}) + I_t & \text{otherwise}\end{cases}

    S_t = \Theta(H_t - V_{th}), \qquad V_t = \text{reset}(H_t, S_t) \text{ as in } ``lif``,

from rest, :math:`V_0 = V_{reset}`. This is ``lif`` with :math:`\beta = 1 - \sigma(w)`.

**Mapping to SpikingJelly** ``ParametricLIFNode(init_tau, decay_input, v_threshold,
v_reset, detach_reset)``: same ``init_tau`` (:math:`w_0 = -\ln(\tau_0 - 1)`), same
``decay_input`` (default ``True`` in both), and its parameter ``w`` is ours. Its
``v_reset=None`` (soft reset) is ``reset="subtract"`` (with ``v_reset=0``); a float is
``reset="zero"`` with that ``v_reset``. Its membrane ``v_seq`` is our state ``mem``.
SpikingJelly's default surrogate is ``Sigmoid(alpha=4)``, ours ``atan``.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from .base import settle
from .lif import IntegrateFire, LIFParams


def plif_h(p: LIFParams, v: Tensor, x: Tensor) -> Tensor:
    """The charged membrane with :math:`1/\\tau = \\sigma(w)`, written as SpikingJelly does (bit-near parity)."""
    q, vr = p.w.sigmoid(), p.k.v_reset  # 1/tau
    return v + (x - (v - vr)) * q if p.decay_input else v - (v - vr) * q + x


def plif_gain(p: LIFParams) -> Tensor | None:
    """:math:`\\partial H / \\partial I`: :math:`\\sigma(w)` with decay_input, else 1 (None)."""
    return p.w.sigmoid() if p.decay_input else None


def plif_step(p: LIFParams, v: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """One PLIF step: charge (:func:`plif_h`), fire, reset."""
    return settle(p.k, plif_h(p, v, x), None, v)


@register("neuron", "plif")
class PLIF(IntegrateFire):
    r"""Parametric LIF (Fang et al. 2021): LIF with a learnt time constant, :math:`1/\tau = \sigma(w)`.

    ``init_tau`` :math:`> 1` is the initial time constant (:math:`w = -\ln(\tau_0 - 1)`);
    ``decay_input`` scales the input by :math:`1/\tau` (SpikingJelly's default, ``True``).
    ``decay`` and ``tau`` are read-only views of the current :math:`w`.
    """

    fixed_options = {"reset_delay": False}

    def __init__(self, init_tau: float = 2.0, decay_input: bool = True, **options: Any):
        check(init_tau > 1, "init_tau", f"must be > 1 (1/tau = sigmoid(w) in (0, 1)), got {init_tau}")
        super().__init__(None, False, decay_input, **options)  # the decay is derived from w
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))

    @property
    def decay(self) -> Tensor:
        """:math:`\\beta = 1 - \\sigma(w)` (differentiable)."""
        return 1 - self.w.sigmoid()

    @property
    def tau(self) -> float:
        return float(1 / self.w.detach().sigmoid())

    def params(self) -> LIFParams:
        return LIFParams(self.spiking(), self.decay, self.decay_input, self.w)

    step_fn = staticmethod(plif_step)
    charge = staticmethod(plif_h)
    gain = staticmethod(plif_gain)

    @staticmethod
    def kernel_charge(p: LIFParams) -> tuple[int, float]:
        """The charge in the compiled kernels: plif's, with or without decay_input, and :math:`1/\\tau`."""
        return (1 if p.decay_input else 2), float(p.w.detach().sigmoid())

    def extra_repr(self) -> str:
        return f"tau={self.tau:.4g}, decay_input={self.decay_input}, " + self.options_repr()
