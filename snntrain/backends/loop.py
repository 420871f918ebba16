"""The one Python loop over time steps.

Every sequence that runs step by step in Python goes through :func:`scan`: the ``torch``
backend of a neuron (``step_fn`` with autograd per step), the forward of the generic fused
form (the same loop without a graph), a stateful layer's streaming ``step`` (dropout masks,
synapse filters, recurrent containers), and a truncated-BPTT chunk of either.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

Step = Callable[[Tensor, Any], "tuple[Tensor, Any]"]


def scan(step: Step, state: Any, x_seq: Tensor, keep: bool = False) -> tuple[Tensor, Any, list]:
    """``y_t, state = step(x_t, state)`` for every ``t`` of ``x_seq [T, ...]``: ``(y [T, ...], last state, states)``.

    ``state=None`` is passed to the first step as is (the step starts from rest);
    ``states`` lists the state after every step when ``keep``, else it is empty.
    """
    ys, states = [], []
    for x in x_seq:
        y, state = step(x, state)
        ys.append(y)
        if keep:
            states.append(state)
    return torch.stack(ys), state, states


def unroll(step: Step, x_seq: Tensor) -> Tensor:
    """Run a streaming ``step(x, state) -> (y, state)`` over ``[T, B, ...]`` from a fresh state."""
    return scan(step, None, x_seq)[0]


__all__ = ["scan", "unroll"]
