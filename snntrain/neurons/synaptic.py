r"""Second-order neurons with a synaptic current: ``synaptic`` and snnTorch's ``alpha``.

Both come from snnTorch (Eshraghian et al., "Training Spiking Neural Networks Using
Lessons From Deep Learning", Proc. IEEE 2023). This module also holds
:class:`SnnTorchNeuron`, the reset logic shared by the snnTorch-derived neurons
(``synaptic``, ``alpha``, ``lapicque``, ``rleaky``, ``rsynaptic``, ``slstm``,
``sconv2dlstm``):

* immediate reset (``reset_delay=False``, the default, as in ``lif``): charge to
  :math:`H_t`, fire :math:`S_t = \Theta(H_t - V_{th})`, then reset the membrane state
  :math:`U_t` = ``apply_reset``\ :math:`(H_t, S_t)` (subtract / zero / none);
* snnTorch's delayed reset (``reset_delay=True``): the reset signal is recomputed from
  the previous membrane, :math:`R_t = \Theta(U_{t-1} - V_{th})`, and applied to the
  freshly charged membrane, :math:`U_t = H_t - V_{th} R_t` (subtract) or
  :math:`U_t = (1 - R_t) H_t` (zero: the whole new membrane, input included, is
  cleared, a one-step refractory period; snnTorch's ``Leaky`` clears only
  :math:`U_{t-1}`), then :math:`S_t = \Theta(U_t - V_{th})`.
  The state is the membrane before the next reset. snnTorch always detaches
  :math:`R_t`; ``detach_reset=True`` does the same here.

snnTorch's own ``reset_delay=False`` (``Synaptic``, ``RLeaky``) with ``reset="zero"`` is
exactly the immediate reset here with ``detach_reset=False`` (its reset goes through the
spike's surrogate gradient). With ``reset="subtract"`` it is a hybrid that is not
reproduced: it still subtracts the delayed :math:`V_{th} R_t` before firing and adds it
back after, so the stored membrane is the immediate-reset one but the spike after a
membrane that stayed above threshold is tested against :math:`2 V_{th}`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import check
from ..registry import register
from ..surrogates import Surrogate
from .base import SpikingNeuron
from .lif import DecayShape, Reset, shaped

__all__ = ["SnnTorchNeuron", "Synaptic", "Alpha", "decay_check"]


def decay_check(value: float, name: str, closed: bool = True) -> float:
    """A decay rate in (0, 1] (or (0, 1) with ``closed=False``)."""
    ok = 0 < value <= 1 if closed else 0 < value < 1
    check(ok, name, f"must be in (0, 1{']' if closed else ')'}, got {value}")
    return float(value)


class SnnTorchNeuron(SpikingNeuron):
    """Base of the snnTorch-derived neurons: immediate or snnTorch's delayed reset.

    A subclass's ``step`` computes ``r = self.pending_reset(mem_prev)`` before charging,
    the charged membrane ``h``, and then ``s, mem = self.settle(h, r)``.
    """

    def __init__(self, reset_delay: bool = False, **base):
        super().__init__(**base)
        self.reset_delay = reset_delay

    def pending_reset(self, mem: Tensor) -> Tensor | None:
        """snnTorch's delayed reset signal :math:`R_t = \\Theta(U_{t-1} - V_{th})` (None if unused)."""
        if not self.reset_delay or self.reset == "none":
            return None
        r = self.surrogate(mem - self.threshold)
        return r.detach() if self.detach_reset else r

    def delayed(self, h: Tensor, r: Tensor | None) -> Tensor:
        """Apply the pending reset to a freshly charged membrane (snnTorch's state functions)."""
        if r is None:
            return h
        if self.reset == "subtract":
            return h - r * self.threshold
        return h - r * h  # zero: snnTorch's ``mem - reset * mem``

    def settle(self, h: Tensor, r: Tensor | None) -> tuple[Tensor, Tensor]:
        """Binary spikes and the membrane state from the charged membrane ``h``."""
        if self.reset_delay:
            h = self.quant(self.delayed(h, r))
            return self.fire(h), h
        h = self.quant(h)
        s = self.fire(h)
        return s, self.apply_reset(h, s)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", reset_delay=True" if self.reset_delay else "")


def _fmt(t: Tensor) -> str:
    return f"{float(t):g}" if t.numel() == 1 else f"{tuple(t.shape)}"


@register("neuron", "synaptic")
class Synaptic(SnnTorchNeuron):
    r"""Synaptic-current LIF: :math:`I^{syn}_t = \alpha I^{syn}_{t-1} + X_t`, :math:`H_t = \beta U_{t-1} + I^{syn}_t`, :math:`S_t = \Theta(H_t - V_{th})`.

    A second-order (current-based) LIF neuron: the input :math:`X_t` charges a synaptic
    current that decays with :math:`\alpha`; the current charges the membrane, which
    decays with :math:`\beta`:

    .. math::
        I^{syn}_t = \alpha I^{syn}_{t-1} + X_t, \qquad
        H_t = \beta U_{t-1} + I^{syn}_t, \qquad
        S_t = \Theta(H_t - V_{th}),

    then the membrane is reset, :math:`U_t = H_t - V_{th} S_t` (subtract),
    :math:`(1 - S_t) H_t` (zero) or :math:`H_t` (none), with :math:`I^{syn}_0 = U_0 = 0`.
    The synaptic current is never reset. State ``(syn, mem)``.
    Source: snnTorch ``Synaptic`` (Eshraghian et al., Proc. IEEE 2023); the model is the
    current-based LIF of Gerstner & Kistler, *Spiking Neuron Models* (2002), and of
    Zenke & Ganguli, "SuperSpike", Neural Comput. 2018.

    ``alpha``, ``beta``: decay rates in (0, 1], clamped to [0, 1] in the forward pass when
    learned (``learn_alpha``, ``learn_beta``), as in snnTorch. ``decay_shape``: one rate
    for the layer, one per channel or one per neuron (both rates).

    **Mapping to snnTorch** ``Synaptic(alpha, beta, threshold, reset_mechanism,
    learn_alpha, learn_beta, learn_threshold, reset_delay=True)``: same ``alpha``,
    ``beta``, ``threshold``, ``reset=reset_mechanism``, plus ``reset_delay=True`` and
    ``detach_reset=True``; then spikes, ``syn`` and ``mem`` are snnTorch's, step for
    step: :math:`I^{syn}_t = \alpha I^{syn}_{t-1} + X_t`,
    :math:`U_t = \beta U_{t-1} + I^{syn}_t - V_{th} R_t` (subtract) or
    :math:`(1 - R_t)(\beta U_{t-1} + I^{syn}_t)` (zero),
    :math:`R_t = \Theta(U_{t-1} - V_{th})`, :math:`S_t = \Theta(U_t - V_{th})`.
    ``state_quant`` is applied to both ``syn`` and ``mem``, as in snnTorch.
    """

    state_names = ("syn", "mem")

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        decay_shape: DecayShape = "scalar",
        threshold: float = 1.0,
        learn_threshold: bool = False,
        reset: Reset = "subtract",
        detach_reset: bool = False,
        reset_delay: bool = False,
        graded_spikes_factor: float = 1.0,
        learn_graded_spikes_factor: bool = False,
        inhibition: bool = False,
        surrogate: Surrogate | None = None,
        shape: tuple[int, ...] | None = None,
    ):
        a, b = decay_check(alpha, "alpha"), decay_check(beta, "beta")
        super().__init__(
            reset_delay, threshold=threshold, learn_threshold=learn_threshold, reset=reset,
            detach_reset=detach_reset, graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor, inhibition=inhibition, surrogate=surrogate,
        )
        self._param_or_buffer("alpha", shaped(a, decay_shape, shape), learn_alpha)
        self._param_or_buffer("beta", shaped(b, decay_shape, shape), learn_beta)

    def init_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.zeros_like(x), torch.zeros_like(x)

    def step(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        syn, mem = self.init_state(x) if state is None else state
        r = self.pending_reset(mem)
        syn = self.alpha.clamp(0, 1) * syn + x
        h = self.beta.clamp(0, 1) * mem + syn
        s, mem = self.settle(h, r)
        return self.emit(s), (self.quant(syn), mem)

    def extra_repr(self) -> str:
        return f"alpha={_fmt(self.alpha)}, beta={_fmt(self.beta)}, " + super().extra_repr()


@register("neuron", "alpha")
class Alpha(SnnTorchNeuron):
    r"""Alpha-function neuron: :math:`U_t = \tau_\alpha (I^{exc}_t + I^{inh}_t)`, :math:`I^{exc}_t = \alpha I^{exc}_{t-1} + X_t`, :math:`I^{inh}_t = \beta I^{inh}_{t-1} - X_t`.

    The input drives an excitatory current decaying with :math:`\alpha` and an
    inhibitory copy decaying faster with :math:`\beta < \alpha`; their sum is a
    difference of exponentials, so one input pulse gives a delayed, alpha-shaped
    membrane response:

    .. math::
        I^{exc}_t = \alpha I^{exc}_{t-1} + X_t, \qquad
        I^{inh}_t = \beta I^{inh}_{t-1} - X_t, \qquad
        U_t = \tau_\alpha (I^{exc}_t + I^{inh}_t), \qquad
        \tau_\alpha = \frac{\ln\alpha}{\ln\beta - \ln\alpha} + 1,

    :math:`S_t = \Theta(U_t - V_{th})`. The reset always acts one step late, as in
    snnTorch (the membrane is a read-out of the currents, not an integrator), with
    :math:`R_t = \Theta(U_{t-1} - V_{th})` applied after charging:

    * ``zero`` (default, as snnTorch): :math:`I^{exc}_t, I^{inh}_t, U_t \leftarrow (1-R_t)\,\cdot`;
    * ``subtract``: :math:`I^{exc}_t \leftarrow I^{exc}_t - V_{th} R_t`,
      :math:`I^{inh}_t \leftarrow (1 - R_t) I^{inh}_t`,
      :math:`U_t \leftarrow U_t + R_t I^{inh}_{t-1}` (snnTorch's rule, kept as is);
    * ``none``.

    State ``(syn_exc, syn_inh, mem)``. Source: snnTorch ``Alpha`` (Eshraghian et al.,
    Proc. IEEE 2023); alpha synapses: Rall (1967), Gerstner & Kistler (2002).
    :math:`\tau_\alpha` is the formula of snnTorch's code (its docstring prints a
    different one). Requires :math:`0 < \beta < \alpha \le 1`.

    **Mapping to snnTorch** ``Alpha(alpha, beta, threshold, reset_mechanism,
    learn_beta, learn_threshold)``: same arguments plus ``detach_reset=True`` (snnTorch
    detaches :math:`R_t`) gives the same spikes and ``syn_exc``, ``syn_inh``, ``mem``.
    ``learn_alpha`` works here (snnTorch's ``learn_alpha=True`` raises a TypeError).
    """

    state_names = ("syn_exc", "syn_inh", "mem")

    def __init__(
        self,
        alpha: float = 0.9,
        beta: float = 0.8,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        decay_shape: DecayShape = "scalar",
        threshold: float = 1.0,
        learn_threshold: bool = False,
        reset: Reset = "zero",
        detach_reset: bool = False,
        graded_spikes_factor: float = 1.0,
        learn_graded_spikes_factor: bool = False,
        inhibition: bool = False,
        surrogate: Surrogate | None = None,
        shape: tuple[int, ...] | None = None,
    ):
        a, b = decay_check(alpha, "alpha"), decay_check(beta, "beta", closed=False)
        check(b < a, "beta", f"must be smaller than alpha (the inhibitory current decays faster), got alpha={a}, beta={b}")
        super().__init__(
            True, threshold=threshold, learn_threshold=learn_threshold, reset=reset,
            detach_reset=detach_reset, graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor, inhibition=inhibition, surrogate=surrogate,
        )
        self._param_or_buffer("alpha", shaped(a, decay_shape, shape), learn_alpha)
        self._param_or_buffer("beta", shaped(b, decay_shape, shape), learn_beta)

    def tau_alpha(self) -> Tensor:
        la, lb = torch.log(self.alpha.clamp(0, 1)), torch.log(self.beta.clamp(0, 1))
        return la / (lb - la) + 1

    def init_state(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x)

    def step(self, x: Tensor, state: tuple[Tensor, Tensor, Tensor] | None = None):
        exc0, inh0, mem0 = self.init_state(x) if state is None else state
        r = self.pending_reset(mem0)
        exc = self.alpha.clamp(0, 1) * exc0 + x
        inh = self.beta.clamp(0, 1) * inh0 - x
        mem = self.tau_alpha() * (exc + inh)
        if r is not None and self.reset == "subtract":
            exc, inh, mem = exc - self.threshold * r, inh - inh * r, mem + inh0 * r
        elif r is not None:  # zero
            exc, inh, mem = exc - exc * r, inh - inh * r, mem - mem * r
        exc, inh, mem = self.quant(exc), self.quant(inh), self.quant(mem)
        return self.emit(self.fire(mem)), (exc, inh, mem)

    def extra_repr(self) -> str:
        return f"alpha={_fmt(self.alpha)}, beta={_fmt(self.beta)}, " + super().extra_repr()

