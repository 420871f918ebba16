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

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from ..surrogates import Surrogate
from .base import SpikingNeuron
from .lif import IntegrateFire, Reset


@register("neuron", "plif")
class PLIF(IntegrateFire):
    r"""Parametric LIF (Fang et al. 2021): LIF with a learnt time constant, :math:`1/\tau = \sigma(w)`.

    ``init_tau`` :math:`> 1` is the initial time constant (:math:`w = -\ln(\tau_0 - 1)`);
    ``decay_input`` scales the input by :math:`1/\tau` (SpikingJelly's default, ``True``).
    ``decay`` and ``tau`` are read-only views of the current :math:`w`.
    """

    def __init__(
        self,
        init_tau: float = 2.0,
        decay_input: bool = True,
        threshold: float = 1.0,
        learn_threshold: bool = False,
        reset: Reset = "subtract",
        v_reset: float = 0.0,
        detach_reset: bool = False,
        graded_spikes_factor: float = 1.0,
        learn_graded_spikes_factor: bool = False,
        inhibition: bool = False,
        surrogate: Surrogate | None = None,
    ):
        check(init_tau > 1, "init_tau", f"must be > 1 (1/tau = sigmoid(w) in (0, 1)), got {init_tau}")
        # IntegrateFire.__init__ would register a fixed ``decay`` buffer; here the decay
        # is derived from ``w``, so only the shared base is initialised.
        SpikingNeuron.__init__(
            self, threshold=threshold, learn_threshold=learn_threshold, reset=reset, v_reset=v_reset,
            detach_reset=detach_reset, graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor, inhibition=inhibition, surrogate=surrogate,
        )
        self.decay_input, self.reset_delay = decay_input, False
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))

    @property
    def decay(self) -> Tensor:
        """:math:`\\beta = 1 - \\sigma(w)` (differentiable)."""
        return 1 - self.w.sigmoid()

    @property
    def tau(self) -> float:
        return float(1 / self.w.detach().sigmoid())

    def charge(self, v: Tensor, x: Tensor) -> Tensor:
        q = self.w.sigmoid()  # 1/tau; written as SpikingJelly does, for bit-near parity
        vr = self.v_reset
        return v + (x - (v - vr)) * q if self.decay_input else v - (v - vr) * q + x

    def extra_repr(self) -> str:
        return f"tau={self.tau:.4g}, decay_input={self.decay_input}, " + SpikingNeuron.extra_repr(self)
