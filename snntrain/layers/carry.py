r"""Truncated BPTT: one sequence run as consecutive chunks, the state carried from chunk to chunk.

Outside this module's context manager every forward pass starts from rest (the rule of
the package). Inside it, a model runs a long sequence :math:`x_{1..T}` in chunks of
:math:`K` steps, each starting where the previous one ended::

    with carry_state(model) as carry:
        for x_chunk in x_seq.split(K):
            out = model(x_chunk)          # continues from the state the last chunk left
            loss_fn(out, y).backward()    # the graph of this chunk only
            carry.next_chunk()            # detach: gradients stop at the chunk boundary

Truncated BPTT (Williams & Peng 1990) of an SNN: chunk :math:`c` covering steps
:math:`t_0 .. t_0 + K - 1` computes exactly what the whole-sequence forward computes for
those steps; only the gradient is cut, :math:`\partial V_{t_0} / \partial V_{t_0 - 1}`
is treated as 0. With :math:`K \ge T` there is one chunk and everything equals full BPTT.

The carried state is held in one place, the :class:`Carry` object (``carry.states``, one
entry per module), never in the modules. Each kind of module declares its own case:

* a module with ``forward_chunk(x_seq, state, t0) -> (y, state)`` runs that (every
  :class:`~snntrain.neurons.SpikingNeuron`, on its own backend from the carried state,
  through :func:`snntrain.backends.run`; the time-indexed norms ``bntt`` and ``tebn``,
  which pick the parameters of steps :math:`t_0 ..`);
* a stateful layer (``stateful = True``: dropout masks, synapse filters, recurrent
  containers, NeuNorm's auxiliary neuron) runs its streaming ``step(x, state)`` over the
  chunk from the carried state (the one loop over T, :func:`snntrain.backends.loop.scan`),
  so a dropout mask stays the same over all T steps;
* every other module treats each step on its own and runs unchanged (on ``[K*B, ...]``).

Statistics taken over time and batch (``tdbn``, ``tebn``, ``bn``) are taken over the
chunk, as any chunked training must.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from torch import Tensor, nn

from ..backends.loop import scan
from ..neurons.base import detach_state
from .containers import is_stateful


class Carry:
    """The state carried between chunks: one entry per module, and ``t0``, the first step of the current chunk."""

    def __init__(self) -> None:
        self.states: dict[nn.Module, Any] = {}
        self.t0 = 0
        self.steps = 0  # steps of the current chunk (set by the first module that runs)

    def next_chunk(self) -> None:
        """Move to the next chunk: ``t0`` advances and the states are detached from this chunk's graph."""
        self.t0 += self.steps
        self.steps = 0
        self.states = {m: detach_state(s) for m, s in self.states.items()}


def chunk_runner(module: nn.Module):
    """How ``module`` runs one chunk: ``(x_seq, state, t0) -> (y, state)``, or None if it needs no state."""
    own = getattr(module, "forward_chunk", None)
    if own is not None:
        return own
    if is_stateful(module):
        return lambda x_seq, state, t0: scan(module.step, state, x_seq)[:2]
    return None


@contextmanager
def carry_state(model: nn.Module) -> Iterator[Carry]:
    """Inside the block, ``model(x_chunk)`` continues each module's state from the previous chunk (see the module doc).

    Modules nested in a stateful module (a neuron inside a recurrent container) are run
    by their parent's ``step`` and need nothing of their own.
    """
    carry = Carry()
    installed: list[nn.Module] = []
    skip: set[int] = set()
    for m in model.modules():
        if id(m) in skip:
            continue
        run = chunk_runner(m)
        if run is None:
            continue
        skip.update(id(c) for c in m.modules())

        def forward(x_seq: Tensor, *, _m: nn.Module = m, _run: Any = run) -> Tensor:
            if x_seq.dim() < 2:
                raise ValueError(f"carry_state: {type(_m).__name__} expected a chunk [K, B, ...], got {tuple(x_seq.shape)}")
            carry.steps = x_seq.shape[0]
            y, carry.states[_m] = _run(x_seq, carry.states.get(_m), carry.t0)
            return y

        m.forward = forward  # the instance attribute shadows the class's forward until the block ends
        installed.append(m)
    try:
        yield carry
    finally:
        for m in installed:
            del m.forward


__all__ = ["Carry", "carry_state", "chunk_runner"]
