r"""Adaptive-threshold LIF (ALIF).

Bellec et al., "Long short-term memory and learning-to-learn in networks of spiking
neurons", NeurIPS 2018: every spike raises the neuron's threshold, which then relaxes
back, giving spike-frequency adaptation and a memory longer than the membrane's. Per
time step, with the membrane charged as in ``lif``:

.. math::
    H_t = V_{reset} + \beta (V_{t-1} - V_{reset}) + c\,I_t, \qquad
    c = \begin{cases} 1-\beta & \text{decay\_input} \\ 1 & \text{otherwise}\end{cases}

    A_t = V_{th} + \beta_a\, b_t, \qquad b_t = \rho\, b_{t-1} + (1 - \rho) S_{t-1}

    S_t = \Theta(H_t - A_t), \qquad
    V_t = \begin{cases} H_t - A_t S_t & \text{subtract}\\
                        (1 - S_t) H_t + S_t V_{reset} & \text{zero}\\
                        H_t & \text{none} \end{cases}

from rest, :math:`V_0 = 0,\ b_1 = 0` (``lif``'s convention). ``adapt`` is
:math:`\beta_a` (the paper's :math:`\beta`, 1.8 in its experiments), ``rho`` is
:math:`\rho` (or ``tau_adapt`` for :math:`\rho = 1 - 1/\tau_a`, the same Euler
convention as ``tau``; the paper's :math:`e^{-1/\tau_a}` agrees to :math:`O(\tau_a^{-2})`).
The subtractive reset removes the threshold that was crossed, :math:`A_t`.

The state is ``(mem, adapt)`` = :math:`(V_t, b_{t+1})`: everything step :math:`t+1`
needs, so the recorded ``adapt`` trace at index :math:`t` is the threshold offset used at
step :math:`t + 1`. Gradients flow through :math:`b` (as in BPTT for LSNNs); ``detach_reset``
detaches only the spike in the reset term.

Differences from the LSNN reference code: it resets with one step of delay (spike
:math:`S_{t-1}` subtracts :math:`A_t`, which already includes that spike's bump) and
feeds :math:`(H_t - A_t)/A_t` to its pseudo-derivative; here the reset is immediate
and the surrogate sees :math:`H_t - A_t`. Neither SpikingJelly 2.0 nor snnTorch 1.0
has an adaptive-threshold neuron to compare with.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import check
from ..registry import register
from .base import Spiking, fire, quant, reset
from .lif import IntegrateFire, LIFDecay, lif_charge


def rho_from(rho: float | None, tau_adapt: float | None, default: float = 0.9) -> float:
    """:math:`\\rho` from either ``rho`` or ``tau_adapt`` (:math:`\\rho = 1 - 1/\\tau_a`), never both."""
    check(
        rho is None or tau_adapt is None, "tau_adapt", f"set rho or tau_adapt, not both (rho={rho}, tau_adapt={tau_adapt})"
    )
    if tau_adapt is not None:
        check(tau_adapt >= 1, "tau_adapt", f"must be >= 1 (rho = 1 - 1/tau_adapt in [0, 1)), got {tau_adapt}")
        return 1.0 - 1.0 / tau_adapt
    rho = default if rho is None else rho
    check(0 <= rho <= 1, "rho", f"must be in [0, 1], got {rho}")
    return float(rho)


class ALIFState(NamedTuple):
    mem: Tensor  # V_t
    adapt: Tensor  # b_{t+1}


class ALIFParams(NamedTuple):
    k: Spiking
    decay: Tensor
    decay_input: bool
    rho: float
    adapt: float


def alif_step(p: ALIFParams, state: ALIFState, x: Tensor) -> tuple[Tensor, ALIFState]:
    """One ALIF step: charge as ``lif``, fire against :math:`A_t = V_{th} + \\beta_a b_t`, reset, adapt."""
    v, b = state
    leak, drive = lif_charge(p, v, x)
    h = quant(p.k, leak + drive)
    offset = p.adapt * b  # A_t = V_th + offset
    s = fire(p.k, h - offset - p.k.threshold)  # Theta(H - A), with inhibition ranking H - A
    v = reset(p.k, h, s, p.k.threshold + offset)  # subtract removes the crossed threshold A_t
    return s, ALIFState(v, p.rho * b + (1 - p.rho) * s)


@register("neuron", "alif")
class ALIF(IntegrateFire):
    r"""Adaptive-threshold LIF (Bellec et al. 2018): threshold :math:`V_{th} + \beta_a b_t`, :math:`b` a low-pass of the neuron's spikes.

    ``decay``/``tau``/``decay_input``/``decay_shape``/``learn_decay`` are as in ``lif``;
    ``rho`` (or ``tau_adapt``) is the decay of the adaptation variable :math:`b`, default
    0.9; ``adapt`` is the threshold increase per unit of :math:`b`, default 1.8
    (``adapt=0`` is ``lif``).
    """

    state_names = ("mem", "adapt")
    fixed_options = {"reset_delay": False}
    supported_backends = ("torch", "fused")  # the generic form: its threshold adapts, so no lif-form charge
    charge = None

    option_groups = (LIFDecay,)
    effective_defaults = {"decay": (0.5, "β, unless tau is set: β = 1 - 1/tau")}

    def __init__(
        self, rho: float | None = None, tau_adapt: float | None = None, adapt: float = 1.8,
        shape: tuple[int, ...] | None = None, **options: Any,
    ):
        d = self.take(LIFDecay, options)
        beta = d.beta(shape)
        check(adapt >= 0, "adapt", f"must be >= 0, got {adapt}")
        super().__init__(beta, d.learn_decay, d.decay_input, **options)
        self.rho = rho_from(rho, tau_adapt)
        self.adapt = float(adapt)

    def params(self) -> ALIFParams:
        return ALIFParams(self.spiking(), self.decay.clamp(0, 1), self.decay_input, self.rho, self.adapt)

    step_fn = staticmethod(alif_step)

    def init_state(self, x: Tensor) -> ALIFState:
        return ALIFState(torch.zeros_like(x), torch.zeros_like(x))

    def extra_repr(self) -> str:
        return f"rho={self.rho:g}, adapt={self.adapt:g}, " + super().extra_repr()
