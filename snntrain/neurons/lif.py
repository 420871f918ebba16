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

from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from ..surrogates import Surrogate
from .base import SpikingNeuron

Reset = Literal["subtract", "zero", "none"]
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


class IntegrateFire(SpikingNeuron):
    """Shared step of ``if`` and ``lif``: charge, fire, reset (immediate or delayed)."""

    def __init__(
        self,
        decay: Tensor,
        learn_decay: bool,
        decay_input: bool,
        reset_delay: bool,
        **base,
    ):
        super().__init__(**base)
        self._param_or_buffer("decay", decay, learn_decay)
        self.decay_input, self.reset_delay = decay_input, reset_delay

    def charge(self, v: Tensor, x: Tensor) -> Tensor:
        beta = self.decay.clamp(0, 1)
        h = beta * (v - self.v_reset) + self.v_reset if self.v_reset else beta * v
        return h + ((1 - beta) * x if self.decay_input else x)

    def init_state(self, x: Tensor) -> Tensor:
        return torch.full_like(x, self.v_reset)  # at rest

    def step(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v = self.init_state(x) if state is None else state
        if self.reset_delay:  # snnTorch: reset for last step's spike, applied after the decay
            r = self.surrogate(v - self.threshold)
            r = r.detach() if self.detach_reset else r
            if self.reset == "zero":
                h = self.charge(v * (1 - r) + r * self.v_reset, x)
            else:
                h = self.charge(v, x) - (r * self.threshold if self.reset == "subtract" else 0)
            h = self.quant(h)
            return self.emit(self.fire(h)), h
        h = self.quant(self.charge(v, x))
        s = self.fire(h)
        return self.emit(s), self.apply_reset(h, s)

    def extra_repr(self) -> str:
        d = self.decay
        d_text = f"{float(d):g}" if d.numel() == 1 else f"{tuple(d.shape)}"
        return f"decay={d_text}, " + super().extra_repr() + (", reset_delay=True" if self.reset_delay else "")


@register("neuron", "lif")
class LIF(IntegrateFire):
    r"""Leaky integrate-and-fire: :math:`H_t = \beta V_{t-1} + I_t` (or :math:`(1-\beta) I_t` with decay_input), :math:`S_t = \Theta(H_t - V_{th})`, then reset.

    ``decay`` is :math:`\beta \in (0, 1]` (snnTorch's ``beta``), or give ``tau`` for
    :math:`\beta = 1 - 1/\tau` (SpikingJelly's convention); default :math:`\beta = 0.5`.
    ``decay_shape``: one :math:`\beta` for the layer, one per channel, or one per neuron.
    ``learn_decay`` makes it a parameter, clamped to [0, 1] in the forward pass as
    snnTorch does.
    """

    def __init__(
        self,
        decay: float | None = None,
        tau: float | None = None,
        decay_input: bool = False,
        decay_shape: DecayShape = "scalar",
        learn_decay: bool = False,
        threshold: float = 1.0,
        learn_threshold: bool = False,
        reset: Reset = "subtract",
        v_reset: float = 0.0,
        detach_reset: bool = False,
        reset_delay: bool = False,
        graded_spikes_factor: float = 1.0,
        learn_graded_spikes_factor: bool = False,
        inhibition: bool = False,
        surrogate: Surrogate | None = None,
        shape: tuple[int, ...] | None = None,
    ):
        beta = shaped(decay_from(decay, tau), decay_shape, shape)
        super().__init__(
            beta, learn_decay, decay_input, reset_delay, threshold=threshold, learn_threshold=learn_threshold,
            reset=reset, v_reset=v_reset, detach_reset=detach_reset, graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor, inhibition=inhibition, surrogate=surrogate,
        )


@register("neuron", "if")
class IF(IntegrateFire):
    r"""Integrate-and-fire: :math:`H_t = V_{t-1} + I_t` (LIF with :math:`\beta = 1`), :math:`S_t = \Theta(H_t - V_{th})`, then reset."""

    def __init__(
        self,
        threshold: float = 1.0,
        learn_threshold: bool = False,
        reset: Reset = "subtract",
        v_reset: float = 0.0,
        detach_reset: bool = False,
        reset_delay: bool = False,
        graded_spikes_factor: float = 1.0,
        learn_graded_spikes_factor: bool = False,
        inhibition: bool = False,
        surrogate: Surrogate | None = None,
    ):
        super().__init__(
            torch.tensor(1.0), False, False, reset_delay, threshold=threshold, learn_threshold=learn_threshold,
            reset=reset, v_reset=v_reset, detach_reset=detach_reset, graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor, inhibition=inhibition, surrogate=surrogate,
        )
