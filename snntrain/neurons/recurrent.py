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

from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from ..surrogates import Surrogate
from .lif import DecayShape, Reset, shaped
from .synaptic import SnnTorchNeuron, _fmt, decay_check

VShape = Literal["scalar", "channel", "neuron"]


class Recurrent(SnnTorchNeuron):
    """Shared construction of the recurrent weight :math:`V` of ``rleaky``/``rsynaptic``."""

    def __init__(
        self,
        all_to_all: bool,
        kernel_size: int,
        recurrent_bias: bool,
        V: float,
        V_shape: str,
        learn_V: bool,
        shape: tuple[int, ...] | None,
        reset_delay: bool,
        **base,
    ):
        super().__init__(reset_delay, **base)
        self.all_to_all = all_to_all
        if all_to_all:
            check(shape is not None, "all_to_all", "needs the layer shape; build the neuron inside a model")
            check(len(shape) in (1, 3), "all_to_all", f"needs a dense (F,) or conv (C, H, W) layer, got shape {tuple(shape)}")
            check(kernel_size >= 1, "kernel_size", f"must be >= 1, got {kernel_size}")
            if len(shape) == 1:
                self.recurrent: nn.Module = nn.Linear(shape[0], shape[0], bias=recurrent_bias)
            else:
                self.recurrent = nn.Conv2d(shape[0], shape[0], kernel_size, padding="same", bias=recurrent_bias)
            self.recurrent.requires_grad_(learn_V)
        else:
            check(shape is not None or V_shape == "scalar", "V_shape", f"{V_shape!r} needs the layer shape; build the neuron inside a model")
            self._param_or_buffer("V", shaped(V, V_shape, shape), learn_V)

    def feedback(self, spk: Tensor) -> Tensor:
        """:math:`V S_{t-1}`: the recurrent input from last step's (emitted) spikes."""
        return self.recurrent(spk) if self.all_to_all else spk * self.V

    def extra_repr(self) -> str:
        rec = "all_to_all" if self.all_to_all else f"V={_fmt(self.V)}"
        return f"beta={_fmt(self.beta)}, {rec}, " + super().extra_repr()


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

    def __init__(
        self,
        beta: float = 0.5,
        learn_beta: bool = False,
        decay_shape: DecayShape = "scalar",
        all_to_all: bool = True,
        kernel_size: int = 3,
        recurrent_bias: bool = True,
        V: float = 1.0,
        V_shape: VShape = "neuron",
        learn_V: bool = True,
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
        b = decay_check(beta, "beta")
        super().__init__(
            all_to_all, kernel_size, recurrent_bias, V, V_shape, learn_V, shape, reset_delay,
            threshold=threshold, learn_threshold=learn_threshold, reset=reset, detach_reset=detach_reset,
            graded_spikes_factor=graded_spikes_factor, learn_graded_spikes_factor=learn_graded_spikes_factor,
            inhibition=inhibition, surrogate=surrogate,
        )
        self._param_or_buffer("beta", shaped(b, decay_shape, shape), learn_beta)

    def init_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.zeros_like(x), torch.zeros_like(x)

    def step(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        spk, mem = self.init_state(x) if state is None else state
        r = self.pending_reset(mem)
        h = self.beta.clamp(0, 1) * mem + x + self.feedback(spk)
        s, mem = self.settle(h, r)
        out = self.emit(s)
        return out, (out, mem)


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

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        decay_shape: DecayShape = "scalar",
        all_to_all: bool = True,
        kernel_size: int = 3,
        recurrent_bias: bool = True,
        V: float = 1.0,
        V_shape: VShape = "neuron",
        learn_V: bool = True,
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
            all_to_all, kernel_size, recurrent_bias, V, V_shape, learn_V, shape, reset_delay,
            threshold=threshold, learn_threshold=learn_threshold, reset=reset, detach_reset=detach_reset,
            graded_spikes_factor=graded_spikes_factor, learn_graded_spikes_factor=learn_graded_spikes_factor,
            inhibition=inhibition, surrogate=surrogate,
        )
        self._param_or_buffer("alpha", shaped(a, decay_shape, shape), learn_alpha)
        self._param_or_buffer("beta", shaped(b, decay_shape, shape), learn_beta)

    def init_state(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x)

    def step(self, x: Tensor, state: tuple[Tensor, Tensor, Tensor] | None = None):
        spk, syn, mem = self.init_state(x) if state is None else state
        r = self.pending_reset(mem)
        syn = self.alpha.clamp(0, 1) * syn + x + self.feedback(spk)
        s, mem = self.settle(self.beta.clamp(0, 1) * mem + syn, r)
        out = self.emit(s)
        return out, (out, self.quant(syn), mem)

    def extra_repr(self) -> str:
        return f"alpha={_fmt(self.alpha)}, " + super().extra_repr()
