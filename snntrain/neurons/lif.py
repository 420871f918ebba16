r"""Leaky and non-leaky integrate-and-fire neurons.

Per time step, with input current :math:`I_t`, decay :math:`\beta`, threshold
:math:`V_{th}` and surrogate spike function :math:`\Theta`:

.. math::
    H_t = \beta V_{t-1} + I_t, \qquad S_t = \Theta(H_t - V_{th})

    V_t = \begin{cases} H_t - V_{th} S_t & \text{subtract (soft reset)}\\
                        H_t (1 - S_t)  & \text{zero (hard reset to 0)}\\
                        H_t            & \text{none} \end{cases}

:math:`V_0 = 0`. IF is the case :math:`\beta = 1` (Gerstner & Kistler, *Spiking Neuron
Models*, 2002). The reset acts on the charged potential :math:`H_t`, as in SpikingJelly's
``LIFNode(decay_input=False, v_reset=None|0)`` with :math:`\beta = 1 - 1/\tau`.
``detach_reset`` cuts the gradient through :math:`S_t` in the reset term (Zenke &
Vogels 2021 found it harmless and cheaper).
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


class _IntegrateFire(SpikingNeuron):
    def __init__(
        self,
        decay: float,
        threshold: float,
        reset: str,
        detach_reset: bool,
        learn_decay: bool,
        learn_threshold: bool,
        surrogate: Surrogate | None,
    ):
        super().__init__(surrogate)
        check(threshold > 0, "threshold", f"must be > 0, got {threshold}")
        decay_t = torch.tensor(float(decay))
        thr_t = torch.tensor(float(threshold))
        if learn_decay:
            self.decay = nn.Parameter(decay_t)
        else:
            self.register_buffer("decay", decay_t)
        if learn_threshold:
            self.threshold = nn.Parameter(thr_t)
        else:
            self.register_buffer("threshold", thr_t)
        self.reset = reset
        self.detach_reset = detach_reset

    def init_state(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def step(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v = self.init_state(x) if state is None else state
        h = self.decay.clamp(0, 1) * v + x
        s = self.surrogate(h - self.threshold)
        r = s.detach() if self.detach_reset else s
        if self.reset == "subtract":
            v = h - r * self.threshold
        elif self.reset == "zero":
            v = h * (1 - r)
        else:
            v = h
        return s, v

    def extra_repr(self) -> str:
        return (
            f"decay={float(self.decay):g}, threshold={float(self.threshold):g}, "
            f"reset={self.reset}, detach_reset={self.detach_reset}"
        )


@register("neuron", "lif")
class LIF(_IntegrateFire):
    r"""Leaky integrate-and-fire: :math:`H_t = \beta V_{t-1} + I_t`, spike when :math:`H_t \ge V_{th}`, then reset.

    ``decay`` is :math:`\beta \in (0, 1]` (snnTorch's ``beta``; SpikingJelly's
    :math:`1 - 1/\tau`). ``learn_decay`` makes it a parameter, clamped to [0, 1] in the
    forward pass as snnTorch does; ``learn_threshold`` likewise for :math:`V_{th}`.
    """

    def __init__(
        self,
        decay: float = 0.5,
        threshold: float = 1.0,
        reset: Reset = "subtract",
        detach_reset: bool = False,
        learn_decay: bool = False,
        learn_threshold: bool = False,
        surrogate: Surrogate | None = None,
    ):
        check(0 < decay <= 1, "decay", f"must be in (0, 1], got {decay}")
        super().__init__(decay, threshold, reset, detach_reset, learn_decay, learn_threshold, surrogate)


@register("neuron", "if")
class IF(_IntegrateFire):
    r"""Integrate-and-fire: :math:`H_t = V_{t-1} + I_t` (LIF with :math:`\beta = 1`), spike at :math:`V_{th}`, then reset."""

    def __init__(
        self,
        threshold: float = 1.0,
        reset: Reset = "subtract",
        detach_reset: bool = False,
        learn_threshold: bool = False,
        surrogate: Surrogate | None = None,
    ):
        super().__init__(1.0, threshold, reset, detach_reset, False, learn_threshold, surrogate)
