"""Common machinery of spiking neurons: fresh state per sequence, explicit streaming.

Every neuron is a module with two entry points:

* ``forward(x_seq)`` takes a whole sequence ``[T, B, ...]`` and returns the spikes
  ``[T, B, ...]``. The state is created inside the call from zeros, so two calls never
  share state: there is nothing to reset.
* ``step(x, state)`` is the streaming API: one time step ``[B, ...]`` in, ``(spikes,
  new_state)`` out. ``state=None`` starts from rest. The state lives with the caller,
  the one place it is held; for truncated BPTT detach it between chunks with
  :func:`detach_state`. Running ``step`` over a sequence gives exactly ``forward``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..surrogates import ATan, Surrogate


def detach_state(state: Any) -> Any:
    """Detach a neuron state (a tensor or a tuple of tensors) from the graph."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state


class SpikingNeuron(nn.Module):
    """Base class: subclasses implement ``init_state(x)`` and ``step(x, state)``."""

    def __init__(self, surrogate: Surrogate | None = None):
        super().__init__()
        self.surrogate = surrogate if surrogate is not None else ATan()

    def init_state(self, x: Tensor) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x_seq: Tensor) -> Tensor:
        state = self.init_state(x_seq[0])
        spikes = []
        for x in x_seq:
            s, state = self.step(x, state)
            spikes.append(s)
        return torch.stack(spikes)
