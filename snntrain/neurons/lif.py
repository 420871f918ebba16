r"""Leaky and non-leaky integrate-and-fire neurons.

Per time step, with input :math:`I_t`, decay :math:`\beta`, rest/reset potential
:math:`V_{reset}` (0 by default) and surrogate spike function :math:`\Theta`:

.. math::
    H_t = V_{reset} + \beta (V_{t-1} - V_{reset}) + c\,I_t, \qquad
    c = \begin{cases} 1-\beta & \text{decay\_input} \\ 1 & \text{otherwise}\end{cases}

    S_t = \Theta(H_t - V_{th}), \qquad
    V_t = \begin{cases} H_t - V_{th} S_t & \text{subtract (soft reset)}\\
                        (1 - S_t) H_t + S_t V_{reset} & \text{zero (hard reset)}\\
                        H_t & \text{none} \end{cases}

with :math:`V_0 = V_{reset}` (at rest). IF is :math:`\beta = 1` (Gerstner &
Kistler, *Spiking Neuron Models*, 2002); LIF in this discrete form is the one of Wu et
al. (2018) and Fang et al. (ICCV 2021).

**Mapping to the peers.**

* SpikingJelly ``LIFNode(tau, decay_input, v_threshold, v_reset, detach_reset)``:
  ``decay = 1 - 1/tau`` (or pass ``tau`` directly), same ``decay_input``;
  ``v_reset=None`` (soft) is ``reset="subtract"``, a float is ``reset="zero"`` with that
  ``v_reset``. ``IFNode`` is ``if``. Its membrane ``v_seq`` is our state ``mem``.
* snnTorch ``Leaky(beta, threshold, reset_mechanism)`` with its default
  ``reset_delay=True``: ``decay = beta``, ``reset_delay=True``, ``detach_reset=True``.
  With ``reset_delay`` the reset of spike :math:`S_{t-1}` is applied at step :math:`t`,
  after the decay, and the state is the membrane before reset:
  :math:`U_t = \beta U_{t-1} + I_t - V_{th} S_{t-1}` (subtract) or
  :math:`U_t = \beta (1 - S_{t-1}) U_{t-1} + I_t` (zero), :math:`S_t = \Theta(U_t - V_{th})`.
  snnTorch always detaches that reset; here ``detach_reset`` decides.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from ..errors import check
from ..registry import register
from .base import SpikingNeuron, Spiking, settle

DecayShape = Literal["scalar", "channel", "neuron"]


def decay_from(decay: float | None, tau: float | None, default: float = 0.5) -> float:
    """:math:`\\beta` from either ``decay`` or ``tau`` (:math:`\\beta = 1 - 1/\\tau`), never both."""
    check(decay is None or tau is None, "tau", f"set decay or tau, not both (decay={decay}, tau={tau})")
    if tau is not None:
        check(tau > 1, "tau", f"must be > 1 (decay = 1 - 1/tau in (0, 1)), got {tau}")
        return 1.0 - 1.0 / tau
    decay = default if decay is None else decay
    check(0 < decay <= 1, "decay", f"must be in (0, 1], got {decay}")
    return float(decay)


def shaped(value: float, how: str, shape: tuple[int, ...] | None) -> Tensor:
    """A scalar, one value per channel (``[C, 1, ...]``) or one per neuron (``shape``)."""
    if how == "scalar":
        return torch.tensor(float(value))
    check(shape is not None, "decay_shape", f"{how!r} needs the layer shape; build the neuron inside a model")
    if how == "channel":
        return torch.full((shape[0], *([1] * (len(shape) - 1))), float(value))
    return torch.full(tuple(shape), float(value))


@dataclass(frozen=True)
class LIFDecay:
    """The decay arguments of ``lif`` and ``alif`` (an option group)."""

    decay: float | None = None
    tau: float | None = None
    decay_input: bool = False
    decay_shape: DecayShape = "scalar"
    learn_decay: bool = False

    def beta(self, shape: tuple[int, ...] | None) -> Tensor:
        return shaped(decay_from(self.decay, self.tau), self.decay_shape, shape)


class LIFParams(NamedTuple):
    """Parameters of the integrate-and-fire family (``if``, ``lif``, ``plif``, ``alif``)."""

    k: Spiking
    decay: Tensor  # beta, in [0, 1] (lif: clamped; plif: 1 - sigmoid(w))
    decay_input: bool
    w: Tensor | None = None  # plif only: 1/tau = sigmoid(w)


def lif_charge(p: LIFParams, v: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(leak, drive)``: :math:`L = V_{reset} + \beta (V - V_{reset})`, :math:`D = c\,I` (:math:`c = 1-\beta` with decay_input)."""
    beta, vr = p.decay, p.k.v_reset
    leak = beta * (v - vr) + vr if vr else beta * v
    return leak, ((1 - beta) * x if p.decay_input else x)


def lif_h(p: LIFParams, v: Tensor, x: Tensor) -> Tensor:
    """The charged membrane :math:`H = L + D` (the fused backend's charge function)."""
    leak, drive = lif_charge(p, v, x)
    return leak + drive


def lif_gain(p: LIFParams) -> Tensor | None:
    """:math:`\\partial H / \\partial I`: :math:`1 - \\beta` with decay_input, else 1 (None)."""
    return 1 - p.decay if p.decay_input else None


def lif_step(p: LIFParams, v: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """One step of ``if``/``lif``: charge, fire, reset (immediate, or snnTorch's delayed ``Leaky`` reset)."""
    leak, drive = lif_charge(p, v, x)
    return settle(p.k, leak, drive, v, at_leak=True)


class IntegrateFire(SpikingNeuron):
    """Shared parts of ``if``, ``lif`` (and ``plif``, ``alif``): a decay :math:`\\beta`, a rest potential."""

    supported_backends = ("torch", "fused", "triton")  # the lif form (charge, gain, kernel_charge below)
    delayed_reset_at_leak = True

    def __init__(self, decay: Tensor | None, learn_decay: bool, decay_input: bool, **options: Any):
        super().__init__(**options)
        if decay is not None:  # None: a subclass derives it (plif)
            self._param_or_buffer("decay", decay, learn_decay)
        self.decay_input = decay_input

    def params(self) -> LIFParams:
        return LIFParams(self.spiking(), self.decay.clamp(0, 1), self.decay_input)

    step_fn = staticmethod(lif_step)
    charge = staticmethod(lif_h)  # for the fused backend
    gain = staticmethod(lif_gain)

    @staticmethod
    def kernel_charge(p: LIFParams) -> tuple[int, float]:
        """The charge in the compiled kernels (:mod:`snntrain.kernels`): lif's, no 1/tau."""
        return 0, 0.0

    def init_state(self, x: Tensor) -> Tensor:
        return torch.full_like(x, self.v_reset)  # at rest

    def extra_repr(self) -> str:
        d = self.decay
        d_text = f"{float(d):g}" if d.numel() == 1 else f"{tuple(d.shape)}"
        return f"decay={d_text}, " + self.options_repr()


@register("neuron", "lif")
class LIF(IntegrateFire):
    r"""Leaky integrate-and-fire: :math:`H_t = \beta V_{t-1} + I_t` (or :math:`(1-\beta) I_t` with decay_input), :math:`S_t = \Theta(H_t - V_{th})`, then reset.

    ``decay`` is :math:`\beta \in (0, 1]` (snnTorch's ``beta``), or give ``tau`` for
    :math:`\beta = 1 - 1/\tau` (SpikingJelly's convention); default :math:`\beta = 0.5`.
    ``decay_shape``: one :math:`\beta` for the layer, one per channel, or one per neuron.
    ``learn_decay`` makes it a parameter, clamped to [0, 1] in the forward pass as
    snnTorch does.
    """

    option_groups = (LIFDecay,)
    #: what snntrain-list shows for decay=None: the β that decay_from uses
    effective_defaults = {"decay": (0.5, "β, unless tau is set: β = 1 - 1/tau")}

    def __init__(self, shape: tuple[int, ...] | None = None, **options: Any):
        d = self.take(LIFDecay, options)
        super().__init__(d.beta(shape), d.learn_decay, d.decay_input, **options)


@register("neuron", "if")
class IF(IntegrateFire):
    r"""Integrate-and-fire: :math:`H_t = V_{t-1} + I_t` (LIF with :math:`\beta = 1`), :math:`S_t = \Theta(H_t - V_{th})`, then reset."""

    def __init__(self, **options: Any):
        super().__init__(torch.tensor(1.0), False, False, **options)
