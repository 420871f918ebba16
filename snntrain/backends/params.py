"""A neuron's parameters (a nested named tuple) as the flat tensor list an autograd function takes, and back."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor


class _Slot(NamedTuple):
    index: int


class _Node(NamedTuple):
    cls: type
    values: list


def split(p: tuple) -> tuple[list[Tensor], Callable[[list[Tensor]], Any]]:
    """The tensors in a (nested) named tuple of parameters, and a function that puts others in their place."""
    tensors: list[Tensor] = []

    def walk(nt: tuple) -> _Node:
        values: list = []
        for v in nt:
            if isinstance(v, Tensor):
                tensors.append(v)
                values.append(_Slot(len(tensors) - 1))
            elif isinstance(v, tuple) and hasattr(v, "_fields"):
                values.append(walk(v))
            else:
                values.append(v)
        return _Node(type(nt), values)

    tree = walk(p)

    def rebuild(ts: list[Tensor], node: _Node = tree) -> Any:
        return node.cls(*[
            ts[v.index] if isinstance(v, _Slot) else rebuild(ts, v) if isinstance(v, _Node) else v for v in node.values
        ])

    return tensors, rebuild


def sum_to(g: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast gradient back to ``shape``."""
    while g.dim() > len(shape):
        g = g.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdim=True)
    return g


def flat_state(state: Any) -> tuple[list[Tensor], Callable[[list[Tensor]], Any]]:
    """A state (a tensor or a named tuple of tensors) as a list, and the function that rebuilds it."""
    if isinstance(state, Tensor):
        return [state], lambda ts: ts[0]
    return list(state), lambda ts: type(state)(*ts)


__all__ = ["split", "sum_to", "flat_state"]
