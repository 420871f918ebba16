r"""Recurrent spiking neurons: ``rleaky`` and ``rsynaptic`` (snnTorch's ``RLeaky``, ``RSynaptic``).

The output spikes of step :math:`t-1` are fed back into the neuron's own input at step
:math:`t` through a recurrent weight :math:`V`:

* ``all_to_all=true`` (default, as snnTorch): :math:`V` is a dense ``Linear(F, F)``
  for a layer of shape ``(F,)``, or a ``Conv2d(C, C, kernel_size, padding="same")`` for
  a layer of shape ``(C, H, W)``, built from the ``shape`` the model passes. Both have
  a bias (``recurrent_bias``), as snnTorch's, which adds a constant current at every
  step, the first included.
* ``all_to_all=false``: one weight per neuron back onto itself,
  :math:`V S_{t-1}` elementwise, with :math:`V` a scalar, one per channel or one per
  neuron (``V_shape``), initialised to ``V``.

``learn_V`` (default true, snnTorch's ``learn_recurrent``) makes the recurrent weights
learnable. The fed-back spikes are the emitted ones (times ``graded_spikes_factor``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from .base import SpikingNeuron, Spiking, quant, settle
from .lif import DecayShape, shaped
from .synaptic import Decays, _fmt, decay_check

VShape = Literal["scalar", "channel", "neuron"]


@dataclass(frozen=True)
class RecurrentWeights:
    """The recurrent weight :math:`V` of ``rleaky``/``rsynaptic`` (an option group; see the module docstring)."""

    all_to_all: bool = True
    kernel_size: int = 3
    recurrent_bias: bool = True
    V: float = 1.0
    V_shape: VShape = "neuron"
    learn_V: bool = True


class Recurrent(SpikingNeuron):
    """Shared construction of ``rleaky``/``rsynaptic``: the recurrent weight :math:`V`."""

    fixed_options = {"v_reset": 0.0}

    def build_recurrent(self, w: RecurrentWeights, shape: tuple[int, ...] | None) -> None:
        self.all_to_all = w.all_to_all
        if w.all_to_all:
            check(shape is not None, "all_to_all", "needs the layer shape; build the neuron inside a model")
            check(len(shape) in (1, 3), "all_to_all", f"needs a dense (F,) or conv (C, H, W) layer, got shape {tuple(shape)}")
            check(w.kernel_size >= 1, "kernel_size", f"must be >= 1, got {w.kernel_size}")
            if len(shape) == 1:
                self.recurrent: nn.Module = nn.Linear(shape[0], shape[0], bias=w.recurrent_bias)
            else:
                self.recurrent = nn.Conv2d(shape[0], shape[0], w.kernel_size, padding="same", bias=w.recurrent_bias)
            self.recurrent.requires_grad_(w.learn_V)
        else:
            check(shape is not None or w.V_shape == "scalar", "V_shape", f"{w.V_shape!r} needs the layer shape; build the neuron inside a model")
            self._param_or_buffer("V", shaped(w.V, w.V_shape, shape), w.learn_V)

    def feedback(self, spk: Tensor) -> Tensor:
        """:math:`V S_{t-1}`: the recurrent input from last step's (emitted) spikes."""
        return self.recurrent(spk) if self.all_to_all else spk * self.V

    def params(self) -> "RecurrentParams":
        alpha = self.alpha.clamp(0, 1) if hasattr(self, "alpha") else None
        return RecurrentParams(self.spiking(), alpha, self.beta.clamp(0, 1), self.feedback, self.emit)

    def init_state(self, x: Tensor) -> tuple[Tensor, ...]:
        return type(self).State(*(torch.zeros_like(x) for _ in self.state_names))  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        rec = "all_to_all" if self.all_to_all else f"V={_fmt(self.V)}"
        a = f"alpha={_fmt(self.alpha)}, " if hasattr(self, "alpha") else ""
        return f"{a}beta={_fmt(self.beta)}, {rec}, " + self.options_repr()


class RecurrentParams(NamedTuple):
    k: Spiking
    alpha: Tensor | None
    beta: Tensor
    feedback: Callable[[Tensor], Tensor]  # V S_{t-1}
    emit: Callable[[Tensor], Tensor]  # the spikes as fed back (graded)


class RLeakyState(NamedTuple):
    spk: Tensor
    mem: Tensor


class RSynapticState(NamedTuple):
    spk: Tensor
    syn: Tensor
    mem: Tensor


def rleaky_step(p: RecurrentParams, state: RLeakyState, x: Tensor) -> tuple[Tensor, RLeakyState]:
    """One ``rleaky`` step: :math:`H = \\beta U + I + V S_{t-1}`, fire and reset (:func:`settle`)."""
    spk, mem = state
    s, mem = settle(p.k, p.beta * mem + x + p.feedback(spk), None, mem)
    return s, RLeakyState(p.emit(s), mem)


def rsynaptic_step(p: RecurrentParams, state: RSynapticState, x: Tensor) -> tuple[Tensor, RSynapticState]:
    """One ``rsynaptic`` step: :math:`I = \\alpha I + X + V S_{t-1}`, :math:`H = \\beta U + I`, fire and reset."""
    spk, syn, mem = state
    syn = p.alpha * syn + x + p.feedback(spk)
    s, mem = settle(p.k, p.beta * mem + syn, None, mem)
    return s, RSynapticState(p.emit(s), quant(p.k, syn), mem)


@register("neuron", "rleaky")
class RLeaky(Recurrent):
    r"""Recurrent LIF: :math:`H_t = \beta U_{t-1} + I_t + V S_{t-1}`, :math:`S_t = \Theta(H_t - V_{th})`, then reset.

    .. math::
        H_t = \beta U_{t-1} + I_t + V S_{t-1}, \qquad S_t = \Theta(H_t - V_{th}),

    then :math:`U_t = H_t - V_{th} S_t` (subtract), :math:`(1-S_t) H_t` (zero) or
    :math:`H_t` (none); :math:`U_0 = 0`, :math:`S_0 = 0`. :math:`V` is a dense/conv
    layer (``all_to_all``) or an elementwise weight (see the module docstring).
    ``beta`` in (0, 1], clamped to [0, 1] when learned (``learn_beta``); ``decay_shape``
    as in ``lif``. State ``(spk, mem)`` (``spk``: the emitted spikes, fed back).
    Source: snnTorch ``RLeaky`` (Eshraghian et al., Proc. IEEE 2023).

    **Mapping to snnTorch** ``RLeaky(beta, V, all_to_all, linear_features,
    conv2d_channels, kernel_size, learn_recurrent, reset_mechanism, reset_delay=True)``:
    same ``beta``, ``V``, ``all_to_all``, ``kernel_size`` (odd; snnTorch's ``k // 2``
    padding equals ``same`` for odd kernels and breaks the shape for even ones),
    ``learn_V=learn_recurrent``, ``reset=reset_mechanism``; ``linear_features`` /
    ``conv2d_channels`` come from the layer shape; ``V_shape="scalar"`` for a scalar
    ``V``. With ``reset_delay=True, detach_reset=True`` the spikes and membrane are
    snnTorch's: :math:`U_t = \beta U_{t-1} + I_t + V S_{t-1} - V_{th} R_t` (subtract) or
    :math:`(1 - R_t)(\beta U_{t-1} + I_t + V S_{t-1})` (zero),
    :math:`R_t = \Theta(U_{t-1} - V_{th})`, :math:`S_t = \Theta(U_t - V_{th})`;
    copy ``recurrent`` (``all_to_all``) or ``V`` across to start from the same weights.
    """

    state_names = ("spk", "mem")
    State = RLeakyState

    option_groups = (RecurrentWeights,)

    def __init__(
        self, beta: float = 0.5, learn_beta: bool = False, decay_shape: DecayShape = "scalar",
        shape: tuple[int, ...] | None = None, **options: Any,
    ):
        b = decay_check(beta, "beta")
        w = self.take(RecurrentWeights, options)
        super().__init__(**options)
        self._param_or_buffer("beta", shaped(b, decay_shape, shape), learn_beta)
        self.build_recurrent(w, shape)

    step_fn = staticmethod(rleaky_step)


@register("neuron", "rsynaptic")
class RSynaptic(Recurrent):
    r"""Recurrent synaptic LIF: :math:`I^{syn}_t = \alpha I^{syn}_{t-1} + X_t + V S_{t-1}`, :math:`H_t = \beta U_{t-1} + I^{syn}_t`, :math:`S_t = \Theta(H_t - V_{th})`.

    ``synaptic`` with the output spikes fed back into the synaptic current:

    .. math::
        I^{syn}_t = \alpha I^{syn}_{t-1} + X_t + V S_{t-1}, \qquad
        H_t = \beta U_{t-1} + I^{syn}_t, \qquad S_t = \Theta(H_t - V_{th}),

    then the membrane (not the current) is reset: :math:`U_t = H_t - V_{th} S_t`
    (subtract), :math:`(1-S_t) H_t` (zero) or :math:`H_t` (none). :math:`V` as in
    ``rleaky``. State ``(spk, syn, mem)``. Source: snnTorch ``RSynaptic``.

    **Mapping to snnTorch** ``RSynaptic(alpha, beta, V, all_to_all, linear_features,
    conv2d_channels, kernel_size, learn_recurrent, reset_mechanism)``: as for
    ``rleaky``, plus ``alpha``/``learn_alpha``. ``reset_delay=True,
    detach_reset=True`` reproduce snnTorch's default ``reset_delay=True``:
    :math:`U_t = \beta U_{t-1} + I^{syn}_t - V_{th} R_t` (subtract) or
    :math:`(1 - R_t)(\beta U_{t-1} + I^{syn}_t)` (zero). (snnTorch's own
    ``reset_delay=False`` is broken for ``RSynaptic``: it raises a TypeError, or has no
    effect when states are passed in; ``reset_delay=False`` here is a true immediate
    reset.)
    """

    state_names = ("spk", "syn", "mem")
    State = RSynapticState

    option_groups = (Decays, RecurrentWeights)

    def __init__(self, shape: tuple[int, ...] | None = None, **options: Any):
        d, w = self.take(Decays, options), self.take(RecurrentWeights, options)
        super().__init__(**options)
        d.register(self, shape)
        self.build_recurrent(w, shape)

    step_fn = staticmethod(rsynaptic_step)
