r"""The fused generic form (``alif``, ``synaptic``, ``alpha``, ``lapicque``, and ``if``/``lif`` with ``reset_delay``).

One custom autograd function per sequence, exact for any pure ``step_fn``, every
surrogate and reset rule. The forward runs :func:`snntrain.backends.loop.scan` without a
graph and saves the input and the state after each step; the backward re-runs each step
with autograd, in reverse, and chains the vector-Jacobian products

.. math::
    (\bar x_t, \bar s_{t-1}, \bar\theta_t) = \mathrm{vjp}\big(\mathrm{step}(\theta, s_{t-1}, x_t)\big)(\bar S_t, \bar s_t),

summing :math:`\bar\theta_t` over t; :math:`\bar s_0` is the gradient of the initial state
(a truncated-BPTT chunk). It keeps one value more per element and step than there are
state entries.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import torch
from torch import Tensor

from .loop import scan
from .params import flat_state, split

if TYPE_CHECKING:
    from ..neurons.base import SpikingNeuron


class Meta(NamedTuple):
    rebuild: Callable[[list[Tensor]], Any]
    step: Callable  # step_fn(p, state, x)
    state: Callable[[list[Tensor]], Any]  # the state from its tensors
    n_state: int
    keep: bool  # return the state traces


class GenericFused(torch.autograd.Function):
    """Inputs ``(meta, x_seq, *initial state tensors, *parameter tensors)``."""

    @staticmethod
    def forward(ctx, meta: Meta, x_seq: Tensor, *tensors: Tensor):  # type: ignore[override]
        init, params = list(tensors[: meta.n_state]), list(tensors[meta.n_state :])
        p = meta.rebuild(params)
        with torch.no_grad():
            spikes, _, states = scan(lambda x, s: meta.step(p, s, x), meta.state(init), x_seq, keep=True)
        traces = [torch.stack([flat_state(s)[0][i] for s in states]) for i in range(meta.n_state)]
        ctx.meta = meta
        ctx.save_for_backward(x_seq, *init, *traces, *params)
        return (spikes, *traces) if meta.keep else spikes

    @staticmethod
    def backward(ctx, g_spikes: Tensor, *g_traces: Tensor):  # type: ignore[override]
        meta: Meta = ctx.meta
        n = meta.n_state
        x_seq, *rest = ctx.saved_tensors
        init, traces, params = rest[:n], rest[n : 2 * n], rest[2 * n :]
        leaves = [t.detach().requires_grad_(need) for t, need in zip(params, ctx.needs_input_grad[2 + n :])]
        learn = [l for l in leaves if l.requires_grad]
        g_params = [torch.zeros_like(l) for l in learn]
        g_x = torch.empty_like(x_seq)
        zero = torch.zeros_like(x_seq[0])
        g_state = [zero] * n
        for t in range(x_seq.shape[0] - 1, -1, -1):
            prev = [tr[t - 1] if t > 0 else i for tr, i in zip(traces, init)]
            with torch.enable_grad():
                prev_l = [v.detach().requires_grad_() for v in prev]
                xt = x_seq[t].detach().requires_grad_()
                s, new = meta.step(meta.rebuild(leaves), meta.state(prev_l), xt)
                outs, gouts = [s], [g_spikes[t]]
                for i, v in enumerate(flat_state(new)[0]):
                    g = g_state[i] + g_traces[i][t] if meta.keep and g_traces[i] is not None else g_state[i]
                    if v.requires_grad:
                        outs.append(v)
                        gouts.append(g)
                got = torch.autograd.grad(outs, [xt, *prev_l, *learn], gouts, allow_unused=True)
            g_x[t] = got[0] if got[0] is not None else 0
            g_state = [g if g is not None else zero for g in got[1 : 1 + n]]
            for acc, g in zip(g_params, got[1 + n :]):
                if g is not None:
                    acc += g
        g_init = [g.expand_as(i) if need else None for g, i, need in zip(g_state, init, ctx.needs_input_grad[2 : 2 + n])]
        it = iter(g_params)
        return (None, g_x, *g_init, *(next(it) if l.requires_grad else None for l in leaves))


def run(neuron: "SpikingNeuron", x_seq: Tensor, state: Any, keep: bool) -> tuple[Tensor, list[Tensor] | None]:
    """``(spikes, state traces or None)`` of the generic form from ``state`` (None: rest)."""
    p = neuron.params()
    params, rebuild = split(p)
    init, as_state = flat_state(neuron.init_state(x_seq[0]) if state is None else state)
    init = [s.expand_as(x_seq[0]) for s in init]
    meta = Meta(rebuild, neuron.step_fn, as_state, len(init), keep)
    out = GenericFused.apply(meta, x_seq, *init, *params)
    return (out[0], list(out[1:])) if keep else (out, None)


__all__ = ["GenericFused", "run"]
