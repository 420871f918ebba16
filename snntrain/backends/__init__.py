r"""Neuron backends: how a spiking neuron's pure ``step_fn`` runs over a sequence.

One entry, :func:`run`, runs a neuron over ``x_seq [T, B, ...]`` from a state (None: rest)
for every caller: ``SpikingNeuron.forward`` (a whole sequence), ``SpikingNeuron.step``
(streaming, one step), and a truncated-BPTT chunk (:mod:`snntrain.layers.carry`). The
backend is ``neuron.backend``:

* ``torch``: ``step_fn`` in the one Python loop over T (:mod:`snntrain.backends.loop`),
  autograd per step; the reference.
* ``fused``: one custom autograd function per sequence, in the lif form
  (:mod:`snntrain.backends.lif`: hand-written backward, a C++ kernel on the CPU) or the
  generic form (:mod:`snntrain.backends.generic`: per-step vector-Jacobian products).
* ``triton``: the lif form as Triton kernels on a CUDA GPU (:mod:`snntrain.kernels.triton_lif`).
* ``auto``: the fastest valid one (:mod:`snntrain.backends.support`).

Compact gradient storage (``neuron.grad_storage=bf16|int8``) is :mod:`snntrain.backends.codes`;
a neuron and the 2x2 average pool after it as one kernel pass is :mod:`snntrain.backends.pool`.

**How a neuron declares its backends** (a subclass of
:class:`snntrain.neurons.base.SpikingNeuron`)::

    class MyNeuron(SpikingNeuron):
        supported_backends = ("torch", "fused")   # default ("torch",)
        step_fn = staticmethod(my_step)           # pure: (p, state, x) -> (spikes, state)

``("torch",)`` (the default) suits a neuron whose step runs a module (a recurrent weight, an
LSTM cell) or that has its own ``forward``. ``"fused"`` runs any pure ``step_fn`` in the
generic form. The lif form (and ``"triton"``) is for a neuron whose membrane charges
affinely, :math:`H = C(V, I)` with :math:`\partial H/\partial V = \beta` (``p.decay``), and
resets immediately: it declares ``charge(p, v, x) -> H``, ``gain(p)`` (:math:`\partial
H/\partial I`, None for 1) and ``kernel_charge(p) -> (kind, 1/tau)`` as ``lif`` does. The
support table (:func:`snntrain.backends.support.why_not`) decides the rest; a named
backend that can never run the neuron is refused when it is built.

The package imports nothing from :mod:`snntrain.neurons` at run time; the neurons import
it when they first run (never at module level), so the dependency goes one way.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from .loop import scan
from .params import flat_state
from .support import LOW, choose, form

if TYPE_CHECKING:
    from ..neurons.base import SpikingNeuron


class Result(NamedTuple):
    spikes: Tensor  # [T, B, ...], as emitted (graded by the neuron's factor)
    state: Any  # the state after the last step (None unless asked for)
    traces: dict[str, Tensor]  # state name -> [T, B, ...] (empty unless asked for)


def run(neuron: "SpikingNeuron", x_seq: Tensor, state: Any = None, *, traces: bool = False, final: bool = False) -> Result:
    """Run ``neuron`` over ``x_seq [T, B, ...]`` from ``state`` (None: rest) on the backend that ``neuron.backend`` picks.

    ``traces``: also the state after every step, by name; ``final``: also the state after
    the last step (what a truncated-BPTT chunk or a streaming step carries on).
    """
    backend, storage = choose(neuron, x_seq)
    names = neuron.state_names
    if backend == "torch":
        p = neuron.params()
        start = neuron.init_state(x_seq[0]) if state is None else state
        spikes, last, states = scan(lambda x, s: neuron.step_fn(p, s, x), start, x_seq, keep=traces)
        rows = [flat_state(s)[0] for s in states]
        trace = {n: torch.stack([r[i] for r in rows]) for i, n in enumerate(names)} if traces else {}
        return Result(neuron.emit(spikes), last if final else None, trace)
    keep = traces or final
    dtype = x_seq.dtype
    if dtype in LOW:  # mixed precision: the membrane is integrated in float32, the spikes leave in the input's dtype
        x_seq = x_seq.float()
        state = None if state is None else _cast(state, torch.float32)
    if form(neuron) == "lif":
        from . import lif

        spikes, V = lif.run(neuron, x_seq, state, keep, backend, storage)
        stacked = [V] if keep else None
    else:
        from . import generic

        spikes, stacked = generic.run(neuron, x_seq, state, keep)
    last = None
    if final:
        template = neuron.init_state(x_seq[0]) if state is None else state
        last = flat_state(template)[1]([tr[-1] for tr in stacked])
    trace = dict(zip(names, stacked)) if traces else {}
    if dtype in LOW:
        spikes, last, trace = spikes.to(dtype), _cast(last, dtype), {n: t.to(dtype) for n, t in trace.items()}
    return Result(neuron.emit(spikes), last, trace)


def _cast(state: Any, dtype: torch.dtype) -> Any:
    if state is None:
        return None
    tensors, rebuild = flat_state(state)
    return rebuild([t.to(dtype) for t in tensors])


__all__ = ["run", "Result", "choose", "form"]
