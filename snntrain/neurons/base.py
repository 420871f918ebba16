r"""Common machinery of spiking neurons: shared options, the reset rule, backends.

Every neuron is a module with two entry points:

* ``forward(x_seq)`` takes a whole sequence ``[T, B, ...]`` and returns the spikes
  ``[T, B, ...]``. The state is created inside the call from rest, so two calls never
  share state: there is nothing to reset. ``forward(x_seq, return_state=True)`` also
  returns the state traces, e.g. ``{"mem": [T, B, ...]}``.
* ``step(x, state)`` is the streaming API: one time step ``[B, ...]`` in, ``(spikes,
  new_state)`` out. ``state=None`` starts from rest. The state lives with the caller,
  the one place it is held; for truncated BPTT detach it between chunks with
  :func:`detach_state`. Running ``step`` over a sequence gives exactly ``forward``.

A neuron is its state (a tensor for one entry, a named tuple such as ``SynapticState``
otherwise) plus a pure step function ``step_fn(p, state, x) -> (spikes, state)`` of
its parameters ``p`` (a named tuple built by ``params()``, with the shared options in
``p.k``, a :class:`Spiking`). The module only holds the parameters and wraps that
function, as in norse's functional/module split, so the same definition runs in the
``torch`` backend (a Python loop over T with autograd) and in the ``fused`` backend
(one custom autograd function per sequence): :mod:`snntrain.backends` runs it, for
``forward``, ``step`` and truncated-BPTT chunks alike. A neuron lists the backends it
supports in ``supported_backends`` (see :mod:`snntrain.backends` for how to declare them).

Options shared by all neurons (snnTorch's names where it has them), defined once in
:class:`SpikeOptions` and flattened by the registry into every neuron's config keys:

* ``threshold`` :math:`V_{th}` (``learn_threshold`` makes it a parameter);
* ``reset``: ``subtract`` (:math:`V \leftarrow H - V_{th} S`), ``zero`` (hard reset,
  :math:`V \leftarrow (1-S) H + S\,V_{reset}`, with ``v_reset`` = 0 by default) or ``none``;
  the rule is :func:`reset`, the one place it is written;
* ``reset_delay``: snnTorch's delayed reset (see :func:`settle`);
* ``detach_reset``: no gradient through the spike in the reset term;
* ``graded_spikes_factor`` :math:`g` (``learn_graded_spikes_factor``): emitted spikes are
  :math:`g S` (the reset uses :math:`S`);
* ``inhibition``: per sample, only the neuron with the highest membrane may fire
  (winner-take-all over all features; meant for dense layers, as in snnTorch);
* ``backend``: ``torch``, ``fused``, ``triton`` (CUDA) or ``auto`` (see :mod:`snntrain.backends`);
* ``grad_storage``: ``exact``, or ``bf16`` / ``int8`` to keep the surrogate derivative for the
  backward in 16 or 8 bits (fused and triton, lif form; see :mod:`snntrain.backends.codes`);
* ``state_quant`` (Python only, not a config key): a callable applied to the membrane
  after charging (e.g. a fake-quantizer), snnTorch's state-quantization hook.

A neuron class sets ``option_defaults`` (its own defaults of shared options) and
``fixed_options`` (shared options it does not offer, with their fixed value); arguments
that several neurons share (a decay, the recurrent weights) are *option groups*,
dataclasses listed in ``option_groups`` and flattened the same way (:meth:`SpikingNeuron.take`).

Traces of every neuron in a model can be recorded with :func:`record_states`.
"""
from __future__ import annotations

import inspect
import logging
import typing
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, Iterator, Literal, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import check
from ..surrogates import ATan, Derivative, Surrogate, spike

log = logging.getLogger(__name__)

Reset = Literal["subtract", "zero", "none"]
Backend = Literal["auto", "torch", "fused", "triton"]
GradStorage = Literal["exact", "bf16", "int8"]
RESETS = typing.get_args(Reset)
BACKENDS = typing.get_args(Backend)
GRAD_STORAGES = typing.get_args(GradStorage)


@dataclass(frozen=True)
class SpikeOptions:
    """The options every spiking neuron shares (see the module docstring)."""

    threshold: float = 1.0
    learn_threshold: bool = False
    reset: Reset = "subtract"
    v_reset: float = 0.0
    detach_reset: bool = False
    reset_delay: bool = False
    graded_spikes_factor: float = 1.0
    learn_graded_spikes_factor: bool = False
    inhibition: bool = False
    backend: Backend = "auto"
    grad_storage: GradStorage = "exact"

    def __post_init__(self) -> None:
        check(self.threshold > 0, "threshold", f"must be > 0, got {self.threshold}")
        g = self.graded_spikes_factor
        check(g > 0, "graded_spikes_factor", f"must be > 0 (the spike amplitude), got {g}")
        check(self.reset in RESETS, "reset", f"must be one of {', '.join(RESETS)}, got {self.reset!r}")
        check(self.backend in BACKENDS, "backend", f"must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        check(self.grad_storage in GRAD_STORAGES, "grad_storage", f"must be one of {', '.join(GRAD_STORAGES)}, got {self.grad_storage!r}")


_OPTION_HINTS = typing.get_type_hints(SpikeOptions)


class Spiking(NamedTuple):
    """The shared options as a step function sees them: tensors and plain values, no modules."""

    threshold: Tensor
    reset: str
    v_reset: float
    detach: bool
    delayed: bool
    derivative: Derivative  # the surrogate's g'(x, *sg_args)
    sg_args: tuple
    inhibition: bool
    quant: Callable[[Tensor], Tensor] | None
    kernel: tuple[int, float] | None = None  # the surrogate in the compiled kernels: (id, parameter); None: Python only


# ---------------------------------------------------------------- the pure pieces
def fire(k: Spiking, z: Tensor) -> Tensor:
    r"""Binary spikes :math:`S = \Theta(z)`, :math:`z = H - V_{th}`, with the surrogate gradient (and inhibition)."""
    s = spike(z, k.derivative, k.sg_args)
    if k.inhibition:
        winner = z.flatten(1).argmax(1)
        mask = torch.zeros_like(s.flatten(1)).scatter_(1, winner[:, None], 1.0)
        s = s * mask.view_as(s)
    return s


def reset(k: Spiking, v: Tensor, r: Tensor, threshold: Tensor | None = None) -> Tensor:
    r"""The reset rule, the one place it is written: the membrane ``v`` after spikes ``r``.

    .. math::
        \text{subtract: } v - V_{th} r, \qquad \text{zero: } (1 - r)\,v + r\,V_{reset},
        \qquad \text{none: } v,

    with ``r`` detached under ``detach_reset``. ``threshold`` overrides :math:`V_{th}`
    (ALIF subtracts its adapted threshold).
    """
    r = r.detach() if k.detach else r
    if k.reset == "subtract":
        return v - r * (k.threshold if threshold is None else threshold)
    if k.reset == "zero":
        return v * (1 - r) + r * k.v_reset
    return v


def quant(k: Spiking, v: Tensor) -> Tensor:
    return k.quant(v) if k.quant is not None else v


def settle(k: Spiking, leak: Tensor, drive: Tensor | None, mem: Tensor, at_leak: bool = False) -> tuple[Tensor, Tensor]:
    r"""Fire and reset a charged membrane: ``(spikes, new membrane state)``.

    The charged membrane is :math:`H_t = L_t + D_t` (``leak``: the previous membrane
    after its decay, ``drive``: this step's input current; ``drive=None`` when ``leak``
    already is :math:`H_t`); ``mem`` is the previous membrane state :math:`U_{t-1}`.

    * Immediate (``reset_delay=False``): :math:`S_t = \Theta(H_t - V_{th})`, state
      :math:`V_t = \mathrm{reset}(H_t, S_t)`.
    * Delayed (snnTorch's ``reset_delay=True``): the reset signal is recomputed from the
      previous membrane state, :math:`R_t = \Theta(U_{t-1} - V_{th})`, and applied before
      firing: :math:`U_t = \mathrm{reset}(H_t, R_t)`, :math:`S_t = \Theta(U_t - V_{th})`;
      the state is the membrane before the next reset. ``at_leak=True`` (``lif``/``if``,
      snnTorch's ``Leaky``) applies it to the decayed membrane before the input is added,
      :math:`U_t = \mathrm{reset}(L_t, R_t) + D_t`: the same for ``subtract``, but a
      ``zero`` reset then keeps this step's input, where snnTorch's ``Synaptic`` family
      clears it too (a one-step refractory period). Each neuron declares which it is
      (``delayed_reset_at_leak``).

    ``state_quant`` is applied to the membrane before firing.
    """
    h = leak if drive is None else leak + drive
    if not k.delayed or k.reset == "none":
        h = quant(k, h)
        if k.delayed:
            return fire(k, h - k.threshold), h
        s = fire(k, h - k.threshold)
        return s, reset(k, h, s)
    r = spike(mem - k.threshold, k.derivative, k.sg_args)
    u = reset(k, leak, r) + drive if at_leak and drive is not None else reset(k, h, r)
    u = quant(k, u)
    return fire(k, u - k.threshold), u


# ---------------------------------------------------------------- states
def detach_state(state: Any) -> Any:
    """Detach a neuron state (a tensor or a (named) tuple of tensors) from the graph."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(detach_state(s) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state


def unroll(step: Callable[[Tensor, Any], tuple[Tensor, Any]], x_seq: Tensor) -> Tensor:
    """Run a streaming ``step(x, state) -> (y, state)`` over ``[T, B, ...]`` from a fresh state (:func:`snntrain.backends.loop.unroll`)."""
    from ..backends.loop import unroll as run_steps

    return run_steps(step, x_seq)


def _value(v: float | Tensor, learn: bool) -> Tensor | nn.Parameter:
    t = torch.as_tensor(v, dtype=torch.get_default_dtype()).clone()
    return nn.Parameter(t) if learn else t


# ---------------------------------------------------------------- the module
class SpikingNeuron(nn.Module):
    """Base class: subclasses implement ``params()``, ``init_state(x)`` and ``step_fn``.

    ``state_names`` names the entries of the state in recorded traces.
    ``supported_backends``: the backends that can run the neuron (see
    :mod:`snntrain.backends`). ``delayed_reset_at_leak``: where the delayed reset acts (:func:`settle`).
    """

    state_names: ClassVar[tuple[str, ...]] = ("mem",)
    option_defaults: ClassVar[dict[str, Any]] = {}
    fixed_options: ClassVar[dict[str, Any]] = {}
    supported_backends: ClassVar[tuple[str, ...]] = ("torch",)
    delayed_reset_at_leak: ClassVar[bool] = False

    option_groups: ClassVar[tuple[type, ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        """Publish the config signature: the class's own arguments, its option groups, the shared options."""
        super().__init_subclass__(**kw)
        own = inspect.signature(cls.__init__)
        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # unresolvable forward refs: keep the raw annotations
            hints = {}
        params = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in list(own.parameters.values())[1:]
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "surrogate"
        ]
        KW = inspect.Parameter.KEYWORD_ONLY
        params.append(inspect.Parameter("surrogate", KW, default=None, annotation=Surrogate | None))
        if any(p.kind is p.VAR_KEYWORD for p in own.parameters.values()):
            for group in (*cls.option_groups, SpikeOptions):
                group_hints = typing.get_type_hints(group)
                params += [
                    inspect.Parameter(f.name, KW, default=cls.option_defaults.get(f.name, f.default), annotation=group_hints[f.name])
                    for f in fields(group)
                    if f.name not in cls.fixed_options
                ]
        cls.__signature__ = inspect.Signature(params)  # what the registry lists and validates

    @classmethod
    def take(cls, group: type, options: dict[str, Any]) -> Any:
        """Pop the fields of an option group (a dataclass) from ``options``, with this class's defaults."""
        names = {f.name for f in fields(group)}
        mine = {k: v for k, v in cls.option_defaults.items() if k in names}
        return group(**{**mine, **{k: options.pop(k) for k in list(options) if k in names}})

    def __init__(self, surrogate: Surrogate | None = None, **options: Any):
        super().__init__()
        unknown = set(options) & set(self.fixed_options)
        check(not unknown, next(iter(unknown), ""), f"is not an option of {type(self).__name__}")
        rest = {**options, **self.fixed_options}
        opts = self.take(SpikeOptions, rest)
        if rest:
            raise TypeError(f"{type(self).__name__} got unexpected argument(s): {', '.join(sorted(rest))}")
        self.surrogate = surrogate if surrogate is not None else ATan()
        self._param_or_buffer("threshold", opts.threshold, opts.learn_threshold)
        self._param_or_buffer("graded_spikes_factor", opts.graded_spikes_factor, opts.learn_graded_spikes_factor)
        self.reset, self.v_reset, self.detach_reset = opts.reset, float(opts.v_reset), opts.detach_reset
        self.reset_delay, self.inhibition, self.backend = opts.reset_delay, opts.inhibition, opts.backend
        self.grad_storage = opts.grad_storage
        self._graded = opts.learn_graded_spikes_factor or opts.graded_spikes_factor != 1.0
        self.state_quant: Callable[[Tensor], Tensor] | None = None
        self.recorder: dict[str, Tensor] | None = None  # set by record_states()
        from ..backends.support import validate  # imported on first use: the dependency goes neurons -> backends

        validate(self)  # a backend that can never run this neuron fails here, before any model exists

    def _param_or_buffer(self, name: str, value: float | Tensor, learn: bool) -> None:
        t = _value(value, learn)
        if learn:
            setattr(self, name, t)
        else:
            self.register_buffer(name, t)

    def spiking(self) -> Spiking:
        """The shared options for a step function."""
        derivative, args = self.surrogate.spec()
        return Spiking(
            self.threshold, self.reset, self.v_reset, self.detach_reset, self.reset_delay,
            derivative, args, self.inhibition, self.state_quant, self.surrogate.kernel(),
        )

    def emit(self, s: Tensor) -> Tensor:
        """Spikes as sent downstream: binary, or graded by :math:`g`."""
        return s * self.graded_spikes_factor if self._graded else s

    # ---- interface -----------------------------------------------------------------
    def params(self) -> Any:  # pragma: no cover - abstract
        """This neuron's parameters as a named tuple (``k``: the :class:`Spiking` options)."""
        raise NotImplementedError

    @staticmethod
    def step_fn(p: Any, state: Any, x: Tensor) -> tuple[Tensor, Any]:  # pragma: no cover - abstract
        """Pure step: binary spikes and the new state."""
        raise NotImplementedError

    def init_state(self, x: Tensor) -> Any:
        return torch.zeros_like(x)

    def step(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One time step ``[B, ...]`` from ``state`` (None: rest): ``(spikes, new state)``, on this neuron's backend."""
        from ..backends import run

        r = run(self, x.unsqueeze(0), state, final=True)
        return r.spikes[0], r.state

    def forward_chunk(self, x_seq: Tensor, state: Any, t0: int = 0) -> tuple[Tensor, Any]:
        """Truncated BPTT (:func:`snntrain.layers.carry.carry_state`): ``x_seq`` from ``state`` (None: rest), on this neuron's backend.

        Returns the spikes and the state after the last step; ``t0`` (the chunk's first step) is unused.
        """
        from ..backends import run

        r = run(self, x_seq, state, final=True)
        return r.spikes, r.state

    def forward(self, x_seq: Tensor, return_state: bool = False):
        from ..backends import run

        keep = return_state or self.recorder is not None
        r = run(self, x_seq, traces=keep)
        if not keep:
            return r.spikes
        if self.recorder is not None:
            self.recorder.update(r.traces)
        return (r.spikes, r.traces) if return_state else r.spikes

    def options_repr(self) -> str:
        return f"threshold={float(self.threshold):g}, reset={self.reset}, detach_reset={self.detach_reset}" + (
            ", reset_delay=True" if self.reset_delay and "reset_delay" not in self.fixed_options else ""
        ) + ("" if self.backend == "auto" else f", backend={self.backend}")

    def extra_repr(self) -> str:
        return self.options_repr()


def neuron_layers(model: nn.Module) -> dict[str, SpikingNeuron]:
    """Spiking layers of ``model`` by stage: ``stage1``, ``stage2``, ... in the order of ``named_modules()``.

    The name says where the layer sits in the network, not which neuron or norm it uses
    (a NeuNorm placed after the neuron shifts module indices; the stage does not move),
    so TensorBoard tags such as ``firing_rate/stage2`` of runs with different norms and
    neurons overlay. A neuron nested inside another (a recurrent container) has its own stage.
    """
    layers = [m for m in model.modules() if isinstance(m, SpikingNeuron)]
    return {f"stage{i}": m for i, m in enumerate(layers, 1)}


@contextmanager
def record_states(model: nn.Module) -> Iterator[dict[str, dict[str, Tensor]]]:
    """Record the state traces of every neuron layer during the forward passes inside.

    ::

        with record_states(model) as traces:
            out = model(x_seq)
        traces["stage1"]["mem"]  # [T, B, ...], still attached to the graph (usable in a loss)

    The recorder is the one place the traces are held; it is removed on exit.
    """
    layers = neuron_layers(model)
    traces: dict[str, dict[str, Tensor]] = {name: {} for name in layers}
    for name, m in layers.items():
        m.recorder = traces[name]
    try:
        yield traces
    finally:
        for m in layers.values():
            m.recorder = None


__all__ = [
    "SpikeOptions", "Spiking", "SpikingNeuron", "fire", "reset", "settle", "quant", "detach_state", "unroll",
    "neuron_layers", "record_states",
]
