r"""Second-order neurons with a synaptic current: ``synaptic`` and snnTorch's ``alpha``.

Both come from snnTorch (Eshraghian et al., "Training Spiking Neural Networks Using
Lessons From Deep Learning", Proc. IEEE 2023). The snnTorch-derived neurons
(``synaptic``, ``alpha``, ``lapicque``, ``rleaky``, ``rsynaptic``, ``slstm``,
``sconv2dlstm``) fire and reset with :func:`snntrain.neurons.base.settle`, the rule
every neuron shares:

* immediate reset (``reset_delay=False``, the default, as in ``lif``): charge to
  :math:`H_t`, fire :math:`S_t = \Theta(H_t - V_{th})`, then reset the membrane state
  :math:`U_t = \mathrm{reset}(H_t, S_t)` (subtract / zero / none);
* snnTorch's delayed reset (``reset_delay=True``): the reset signal is recomputed from
  the previous membrane, :math:`R_t = \Theta(U_{t-1} - V_{th})`, and applied to the
  freshly charged membrane, :math:`U_t = \mathrm{reset}(H_t, R_t)` (for ``zero`` the
  whole new membrane, input included, is cleared, a one-step refractory period;
  snnTorch's ``Leaky``, our ``lif``, clears only :math:`U_{t-1}`), then
  :math:`S_t = \Theta(U_t - V_{th})`. The state is the membrane before the next
  reset. snnTorch always detaches :math:`R_t`; ``detach_reset=True`` does the same here.

snnTorch's own ``reset_delay=False`` (``Synaptic``, ``RLeaky``) with ``reset="zero"`` is
exactly the immediate reset here with ``detach_reset=False`` (its reset goes through the
spike's surrogate gradient). With ``reset="subtract"`` it is a hybrid that is not
reproduced: it still subtracts the delayed :math:`V_{th} R_t` before firing and adds it
back after, so the stored membrane is the immediate-reset one but the spike after a
membrane that stayed above threshold is tested against :math:`2 V_{th}`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import check
from ..registry import register
from ..surrogates import spike
from .base import SpikingNeuron, Spiking, fire, quant, reset, settle
from .lif import DecayShape, shaped

__all__ = ["Decays", "TwoDecays", "Synaptic", "Alpha", "decay_check"]


def decay_check(value: float, name: str, closed: bool = True) -> float:
    """A decay rate in (0, 1] (or (0, 1) with ``closed=False``)."""
    ok = 0 < value <= 1 if closed else 0 < value < 1
    check(ok, name, f"must be in (0, 1{']' if closed else ')'}, got {value}")
    return float(value)


def _fmt(t: Tensor) -> str:
    return f"{float(t):g}" if t.numel() == 1 else f"{tuple(t.shape)}"


@dataclass(frozen=True)
class Decays:
    """Two decay rates (an option group of ``synaptic``, ``alpha``, ``rsynaptic``)."""

    alpha: float = 0.5
    beta: float = 0.5
    learn_alpha: bool = False
    learn_beta: bool = False
    decay_shape: DecayShape = "scalar"

    def register(self, neuron: SpikingNeuron, shape: tuple[int, ...] | None, beta_closed: bool = True) -> None:
        """Check the rates and give ``neuron`` its ``alpha`` and ``beta`` (parameters or buffers)."""
        a, b = decay_check(self.alpha, "alpha"), decay_check(self.beta, "beta", closed=beta_closed)
        neuron._param_or_buffer("alpha", shaped(a, self.decay_shape, shape), self.learn_alpha)
        neuron._param_or_buffer("beta", shaped(b, self.decay_shape, shape), self.learn_beta)


class TwoDecays(SpikingNeuron):
    """A neuron with two decay rates ``alpha`` and ``beta`` (``synaptic``, ``alpha``), no rest potential."""

    option_groups = (Decays,)
    fixed_options = {"v_reset": 0.0}
    supported_backends = ("torch", "fused")
    beta_closed = True  # beta in (0, 1]; alpha: (0, 1)

    def __init__(self, shape: tuple[int, ...] | None = None, **options: Any):
        d = self.take(Decays, options)
        self.check_decays(d)
        super().__init__(**options)
        d.register(self, shape, self.beta_closed)

    def check_decays(self, d: Decays) -> None:
        """Extra checks of a subclass on its decays."""

    def init_state(self, x: Tensor) -> tuple[Tensor, ...]:
        return type(self).State(*(torch.zeros_like(x) for _ in self.state_names))  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        return f"alpha={_fmt(self.alpha)}, beta={_fmt(self.beta)}, " + self.options_repr()


class SynapticState(NamedTuple):
    syn: Tensor
    mem: Tensor


class DecayParams(NamedTuple):
    k: Spiking
    alpha: Tensor
    beta: Tensor


def synaptic_step(p: DecayParams, state: SynapticState, x: Tensor) -> tuple[Tensor, SynapticState]:
    """One ``synaptic`` step: :math:`I = \\alpha I + X`, :math:`H = \\beta U + I`, fire and reset (:func:`settle`)."""
    syn, mem = state
    syn = p.alpha * syn + x
    s, mem2 = settle(p.k, p.beta * mem + syn, None, mem)
    return s, SynapticState(quant(p.k, syn), mem2)


@register("neuron", "synaptic")
class Synaptic(TwoDecays):
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
    State = SynapticState

    def params(self) -> DecayParams:
        return DecayParams(self.spiking(), self.alpha.clamp(0, 1), self.beta.clamp(0, 1))

    step_fn = staticmethod(synaptic_step)


class AlphaState(NamedTuple):
    syn_exc: Tensor
    syn_inh: Tensor
    mem: Tensor


class AlphaParams(NamedTuple):
    k: Spiking
    alpha: Tensor
    beta: Tensor
    tau: Tensor  # tau_alpha


def alpha_step(p: AlphaParams, state: AlphaState, x: Tensor) -> tuple[Tensor, AlphaState]:
    """One ``alpha`` step: both currents charge, the membrane reads them out, snnTorch's delayed reset."""
    exc0, inh0, mem0 = state
    k = p.k
    exc = p.alpha * exc0 + x
    inh = p.beta * inh0 - x
    mem = p.tau * (exc + inh)
    if k.reset != "none":
        r = spike(mem0 - k.threshold, k.derivative, k.sg_args)  # R_t
        zero = k._replace(reset="zero")
        if k.reset == "subtract":  # snnTorch's rule: exc loses V_th, inh is cleared, mem gets inh0 back
            exc, inh, mem = reset(k, exc, r), reset(zero, inh, r), mem + inh0 * (r.detach() if k.detach else r)
        else:
            exc, inh, mem = reset(k, exc, r), reset(k, inh, r), reset(k, mem, r)
    exc, inh, mem = quant(k, exc), quant(k, inh), quant(k, mem)
    return fire(k, mem - k.threshold), AlphaState(exc, inh, mem)


@register("neuron", "alpha")
class Alpha(TwoDecays):
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
    State = AlphaState
    option_defaults = {"reset": "zero", "alpha": 0.9, "beta": 0.8}
    fixed_options = {"v_reset": 0.0, "reset_delay": True}
    beta_closed = False

    def check_decays(self, d: Decays) -> None:
        a, b = decay_check(d.alpha, "alpha"), decay_check(d.beta, "beta", closed=False)
        check(b < a, "beta", f"must be smaller than alpha (the inhibitory current decays faster), got alpha={a}, beta={b}")

    def tau_alpha(self) -> Tensor:
        la, lb = torch.log(self.alpha.clamp(0, 1)), torch.log(self.beta.clamp(0, 1))
        return la / (lb - la) + 1

    def params(self) -> AlphaParams:
        return AlphaParams(self.spiking(), self.alpha.clamp(0, 1), self.beta.clamp(0, 1), self.tau_alpha())

    step_fn = staticmethod(alpha_step)
