r"""Neuron backends: ``torch`` (the reference loop) and ``fused`` (one autograd function per sequence).

``neuron.backend`` picks how ``forward(x_seq)`` runs a neuron's pure ``step_fn``:

* ``torch``: :func:`snntrain.neurons.base.torch_loop`, ``step_fn`` in a Python loop over
  T; autograd records every step (the reference).
* ``fused``: a custom ``torch.autograd.Function`` per sequence. Its forward loops over T
  without building a graph and saves only what the backward needs; its backward is one
  reverse loop over T (backpropagation through time written out). Two forms:

  - ``lif`` kind (``if``, ``lif``, ``plif``; immediate reset): the backward is written
    by hand. With the charged membrane :math:`H_t = C(V_{t-1}, I_t)` (affine in
    :math:`V`, :math:`\partial H_t/\partial V_{t-1} = \beta`), :math:`z_t = H_t - V_{th}`,
    :math:`S_t = \Theta(z_t)`, :math:`V_t = \mathrm{reset}(H_t, S_t)` and incoming
    gradients :math:`\bar S_t, \bar V_t`:

    .. math::
        \bar V_t &\mathrel{+}= \beta\,\bar H_{t+1}, \qquad
        \bar S_t \mathrel{+}= \bar V_t \frac{\partial V_t}{\partial S_t}, \qquad
        \bar H_t = \bar V_t \frac{\partial V_t}{\partial H_t} + \bar S_t\, g'(z_t),

    with :math:`\partial V/\partial S = -V_{th}` (subtract), :math:`V_{reset} - H`
    (zero), 0 (none, or ``detach_reset``) and :math:`\partial V/\partial H = 1`, or
    :math:`1 - S` for zero; :math:`\bar V_{th} = -\sum_t \bar S_t g'(z_t)` (:math:`-\sum
    \bar V_t S_t` more for subtract). The input and parameter gradients follow from
    :math:`\bar H` in one vectorised call of the charge function. It saves :math:`H`
    only (one value per element and step), or, when a decay parameter is learnt, the
    input only, and recomputes :math:`H` at the start of the backward.
  - ``generic`` (``alif``, ``synaptic``, ``alpha``, ``lapicque``, and ``if``/``lif``
    with ``reset_delay``): the forward saves the input and the state after each step;
    the backward re-runs each step with autograd, in reverse, and chains the
    vector-Jacobian products. Exact for any pure ``step_fn``, every surrogate and reset
    rule; it keeps one value more per element and step than there are state entries.

  Both forwards run the very operations of ``step_fn``, so spikes and states equal the
  ``torch`` backend's bit for bit; gradients agree up to float rounding (summation order).
* ``auto``: the fastest valid one. ``fused`` for the lif kind (``if``, ``lif``, ``plif``
  with an immediate reset), where it is faster than the loop; ``torch`` for the others,
  where the generic fused form (which re-runs every step in its backward) measured slower
  on the CPU. An option the fused backend cannot run (below) also falls back to ``torch``,
  with one log line saying why.

The fused backend does not run ``inhibition`` (a winner-take-all across features), a
``state_quant`` hook (an arbitrary callable) or reduced-precision inputs (autocast), and not the neurons with a recurrent
weight or an LSTM cell (``rleaky``, ``rsynaptic``, ``slstm``, ``sconv2dlstm``);
``backend="fused"`` with one of those is an error naming it.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import SpikingNeuron, reset, torch_loop

log = logging.getLogger(__name__)

Runner = Callable[[SpikingNeuron, Tensor, bool], "tuple[Tensor, dict[str, Tensor]]"]


# ---------------------------------------------------------------- support and choice
def unsupported(neuron: SpikingNeuron) -> tuple[str, str] | None:
    """``(option, reason)`` if the fused backend cannot run ``neuron`` as configured, else None."""
    name = type(neuron).__name__
    if neuron.fused is None:
        return "backend", f"{name} has no fused implementation (it runs a module inside its step)"
    if neuron.inhibition:
        return "inhibition", "winner-take-all across features is not fused"
    if neuron.state_quant is not None:
        return "state_quant", "a state-quantization hook is an arbitrary callable and is not fused"
    return None


def choose(neuron: SpikingNeuron, x_seq: Tensor) -> Runner:
    """The runner for ``neuron.backend``: an error naming the option if ``fused`` cannot run it."""
    if neuron.backend == "torch":
        return torch_loop
    why = unsupported(neuron)
    if why is None and x_seq.dtype not in (torch.float32, torch.float64):  # mixed precision (autocast)
        why = ("backend", f"it runs float32/float64 inputs, got {x_seq.dtype} (mixed precision)")
    if why is None and neuron.backend == "auto" and not (neuron.fused == "lif" and not neuron.reset_delay):
        return torch_loop  # measured: the generic fused form (per-step VJPs) is slower than the torch loop
    if why is None:
        return fused_run
    if neuron.backend == "fused":
        option, reason = why
        raise ConfigError(
            f"neuron.{option}: the fused backend cannot run this neuron: {reason}. "
            f"Use neuron.backend=torch (or auto, which falls back to torch), or drop the option."
        )
    if not getattr(neuron, "_fallback_logged", False):
        log.info("neuron backend auto: %s runs on torch (%s: %s)", type(neuron).__name__, *why)
        neuron._fallback_logged = True
    return torch_loop


# ---------------------------------------------------------------- parameters in and out
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


def _sum_to(g: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast gradient back to ``shape``."""
    while g.dim() > len(shape):
        g = g.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdim=True)
    return g


class _Meta(NamedTuple):
    rebuild: Callable[[list[Tensor]], Any]
    step: Callable
    charge: Callable | None  # lif kind: H = charge(p, V, x)
    gain: Callable | None  # lif kind: dH/dx as a function of p
    init: Callable[[Tensor], Any]
    keep: bool
    threshold_index: int
    cpu: Any = None  # lif kind on the CPU: (kernel module, charge kind, surrogate id) or None


def _surrogate_ids() -> dict[Callable, int]:
    from .. import surrogates
    from ..kernels.cpu import SURROGATES

    return {getattr(surrogates, name).derivative: i for name, i in SURROGATES.items()}


def _cpu_kernel(neuron: SpikingNeuron, p: Any, x_seq: Tensor) -> Any:
    """``(module, charge kind, surrogate id)`` when the C++ lif kernel can run this call, else None."""
    if x_seq.device.type != "cpu" or x_seq.dtype != torch.float32 or not hasattr(neuron, "cpu_charge_kind"):
        return None
    sg = _surrogate_ids().get(p.k.derivative)
    if sg is None:  # a user-defined surrogate: the eager path evaluates its Python derivative
        return None
    from ..kernels.cpu import kernel

    module = kernel()
    return None if module is None else (module, neuron.cpu_charge_kind(p), sg)


# ---------------------------------------------------------------- lif kind: hand-written backward
class _LIFFused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, meta: _Meta, x_seq: Tensor, *tensors: Tensor):  # type: ignore[override]
        p = meta.rebuild(list(tensors))
        charge_needs_grad = any(
            n for i, n in enumerate(ctx.needs_input_grad[2:]) if i != meta.threshold_index
        )
        hs, V, spikes = _lif_forward(p, meta, x_seq)
        ctx.meta, ctx.charge_needs_grad, ctx.stacked = meta, charge_needs_grad, isinstance(hs, Tensor)
        if charge_needs_grad:  # keep the input only; H is recomputed at the start of the backward
            ctx.save_for_backward(x_seq, *tensors)
        else:  # keep H only
            ctx.save_for_backward(*((hs,) if ctx.stacked else hs), *tensors)
        return (spikes, V) if meta.keep else spikes

    @staticmethod
    def backward(ctx, g_spikes: Tensor, g_trace: Tensor | None = None):  # type: ignore[override]
        meta: _Meta = ctx.meta
        saved = ctx.saved_tensors
        if ctx.charge_needs_grad:
            x_seq, tensors = saved[0], list(saved[1:])
            p = meta.rebuild(tensors)
            hs, _, _ = _lif_forward(p, meta._replace(keep=False), x_seq)
        else:
            n = 1 if ctx.stacked else g_spikes.shape[0]
            x_seq, hs, tensors = None, saved[:n], list(saved[n:])
            hs = hs[0] if ctx.stacked else hs
            p = meta.rebuild(tensors)
        k = p.k
        theta, beta = k.threshold, p.decay
        th = float(theta)
        learn_theta = ctx.needs_input_grad[2 + meta.threshold_index]
        if meta.cpu is not None:
            gH_all, g_theta = _cpu_backward(meta, p, hs, g_spikes, g_trace)
            return _LIFFused.finish(ctx, meta, p, tensors, x_seq, hs, gH_all, g_theta if learn_theta else None)
        g_theta = torch.zeros_like(hs[0]) if learn_theta else None
        gH_all = torch.empty_like(g_spikes)  # dL/dH; dL/dx when the input gain is 1
        g_v = torch.zeros_like(hs[0])
        has_trace = g_trace is not None
        subtract, zero = k.reset == "subtract", k.reset == "zero"
        for t in range(len(hs) - 1, -1, -1):
            h = hs[t]
            sg = k.derivative(h - theta, *k.sg_args)  # g'(z), z = H - V_th
            gV = g_v + g_trace[t] if has_trace else g_v
            if zero:
                s = h >= theta
                gS = g_spikes[t] if k.detach else torch.addcmul(g_spikes[t], gV, k.v_reset - h)
                gH = torch.addcmul(gV.masked_fill(s, 0.0), gS, sg, out=gH_all[t])
            else:
                gS = g_spikes[t] if k.detach or not subtract else torch.add(g_spikes[t], gV, alpha=-th)
                gH = torch.addcmul(gV, gS, sg, out=gH_all[t])
            if learn_theta:
                g_theta.addcmul_(gS, sg, value=-1.0)
                if subtract:
                    g_theta.sub_(gV.masked_fill(h < theta, 0.0))
            g_v = beta * gH
        return _LIFFused.finish(ctx, meta, p, tensors, x_seq, hs, gH_all, g_theta)

    @staticmethod
    def finish(ctx, meta, p, tensors, x_seq, hs, gH_all, g_theta):  # type: ignore[no-untyped-def]
        """Input and parameter gradients from dL/dH (and the threshold's)."""
        k = p.k
        theta = k.threshold
        grads: list[Tensor | None] = [None] * len(tensors)
        if g_theta is not None:
            grads[meta.threshold_index] = _sum_to(g_theta, theta.shape)
        if ctx.charge_needs_grad:
            # dH/dx and dH/dparams in one vectorised call of the charge function
            H = hs if isinstance(hs, Tensor) else torch.stack(hs)
            V = reset(k, H, (H >= theta).to(H.dtype))
            v_prev = torch.cat([meta.init(H[0])[None], V[:-1]])
            with torch.enable_grad():
                leaves = [t.detach().requires_grad_(n) for t, n in zip(tensors, ctx.needs_input_grad[2:])]
                xl = x_seq.detach().requires_grad_()
                h = meta.charge(meta.rebuild(leaves), v_prev, xl)
                wrt = [xl] + [l for l in leaves if l.requires_grad]
                got = list(torch.autograd.grad(h, wrt, gH_all, allow_unused=True))
            g_x = got.pop(0)
            for i, l in enumerate(leaves):
                if l.requires_grad:
                    g = got.pop(0)
                    if i != meta.threshold_index:
                        grads[i] = g if g is None else _sum_to(g, l.shape)
        else:
            gain = meta.gain(p)
            g_x = gH_all if gain is None else gH_all.mul_(gain)
        return (None, g_x, *grads)


def _lif_forward(p: Any, meta: _Meta, x_seq: Tensor) -> tuple[list[Tensor], Tensor | None, Tensor]:
    """The lif-kind forward without a graph: the charged membranes H (one tensor a step), the trace V (if kept), spikes.

    The operations are the torch backend's: :math:`S = [H - V_{th} \\ge 0]` and, where
    :math:`S = 1`, :math:`H - V_{th}` (subtract) or :math:`V_{reset}` (zero), else :math:`H`.
    """
    k = p.k
    theta = k.threshold
    if meta.cpu is not None:
        module, (kind, q), _ = meta.cpu
        flat = x_seq.reshape(x_seq.shape[0], -1).contiguous()
        beta = p.decay.detach().expand(x_seq.shape[1:]).contiguous().view(-1)
        H, S, V = module.forward(flat, beta, kind, p.decay_input, q, float(theta), RESET_IDS[k.reset], k.v_reset, meta.keep)
        return H.view(x_seq.shape), V.view(x_seq.shape) if meta.keep else None, S.view(x_seq.shape)
    fired = torch.empty(x_seq.shape, dtype=torch.bool, device=x_seq.device)
    V = torch.empty_like(x_seq) if meta.keep else None
    v = meta.init(x_seq[0])
    hs = []
    with torch.no_grad():
        for t in range(x_seq.shape[0]):
            h = meta.charge(p, v, x_seq[t])
            hs.append(h)
            s = torch.ge(h - theta, 0, out=fired[t])
            if k.reset == "subtract":
                v = torch.where(s, h - theta, h, out=V[t] if V is not None else None)
            elif k.reset == "zero":
                v = h.masked_fill(s, k.v_reset)
                if V is not None:
                    V[t] = v
            else:
                v = h
                if V is not None:
                    V[t] = v
    return hs, V, fired.to(x_seq.dtype)


RESET_IDS = {"subtract": 0, "zero": 1, "none": 2}


def _cpu_backward(meta: _Meta, p: Any, H: Tensor, g_spikes: Tensor, g_trace: Tensor | None) -> tuple[Tensor, Tensor]:
    """dL/dH and dL/dV_th (per element) from the C++ kernel."""
    module, _, sg = meta.cpu
    k = p.k
    T = H.shape[0]
    a = k.sg_args[0] if k.sg_args else 0.0
    a = -1.0 if a is None else float(a)  # straight_through without a window
    beta = p.decay.detach().expand(H.shape[1:]).contiguous().view(-1)
    gt = g_trace.reshape(T, -1).contiguous() if g_trace is not None else H.new_empty(0)
    gH, gth = module.backward(
        H.reshape(T, -1), g_spikes.reshape(T, -1).contiguous(), gt, beta, float(k.threshold), RESET_IDS[k.reset],
        k.detach, k.v_reset, sg, a,
    )
    return gH.view(H.shape), -gth.view(H.shape[1:])


# ---------------------------------------------------------------- generic: per-step vector-Jacobian products
class _GenericFused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, meta: _Meta, n_state: int, x_seq: Tensor, *tensors: Tensor):  # type: ignore[override]
        p = meta.rebuild(list(tensors))
        state = meta.init(x_seq[0])
        single = not isinstance(state, tuple)
        spikes = torch.empty_like(x_seq)
        traces = [torch.empty_like(x_seq) for _ in range(n_state)]
        with torch.no_grad():
            for t in range(x_seq.shape[0]):
                s, state = meta.step(p, state, x_seq[t])
                spikes[t] = s
                for tr, st in zip(traces, (state,) if single else state):
                    tr[t] = st
        ctx.meta, ctx.single = meta, single
        ctx.save_for_backward(x_seq, *traces, *tensors)
        ctx.n_state = n_state
        return (spikes, *traces) if meta.keep else spikes

    @staticmethod
    def backward(ctx, g_spikes: Tensor, *g_traces: Tensor):  # type: ignore[override]
        meta: _Meta = ctx.meta
        x_seq, *rest = ctx.saved_tensors
        traces, tensors = rest[: ctx.n_state], rest[ctx.n_state :]
        needs = ctx.needs_input_grad[3:]
        leaves = [t.detach().requires_grad_(n) for t, n in zip(tensors, needs)]
        learn = [l for l in leaves if l.requires_grad]
        g_params = [torch.zeros_like(l) for l in learn]
        g_x = torch.empty_like(x_seq)
        init = meta.init(x_seq[0])
        state_type = type(init)
        init = (init,) if ctx.single else tuple(init)
        g_state = [torch.zeros_like(x_seq[0]) for _ in range(ctx.n_state)]
        for t in range(x_seq.shape[0] - 1, -1, -1):
            prev = [tr[t - 1] if t > 0 else i for tr, i in zip(traces, init)]
            with torch.enable_grad():
                prev_l = [v.detach().requires_grad_() for v in prev]
                xt = x_seq[t].detach().requires_grad_()
                state = prev_l[0] if ctx.single else state_type(*prev_l)
                s, new = meta.step(meta.rebuild(leaves), state, xt)
                new = (new,) if ctx.single else tuple(new)
                outs, gouts = [s], [g_spikes[t]]
                for i, n in enumerate(new):
                    g = g_state[i] + g_traces[i][t] if meta.keep and g_traces[i] is not None else g_state[i]
                    if n.requires_grad:
                        outs.append(n)
                        gouts.append(g)
                got = torch.autograd.grad(outs, [xt, *prev_l, *learn], gouts, allow_unused=True)
            g_x[t] = got[0] if got[0] is not None else 0
            g_state = [g if g is not None else torch.zeros_like(x_seq[0]) for g in got[1 : 1 + ctx.n_state]]
            for acc, g in zip(g_params, got[1 + ctx.n_state :]):
                if g is not None:
                    acc += g
        grads: list[Tensor | None] = []
        it = iter(g_params)
        for l in leaves:
            grads.append(next(it) if l.requires_grad else None)
        return (None, None, g_x, *grads)


# ---------------------------------------------------------------- the runner
def fused_run(neuron: SpikingNeuron, x_seq: Tensor, keep: bool) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``neuron`` over ``x_seq`` with one fused autograd function."""
    p = neuron.params()
    tensors, rebuild = split(p)
    theta_index = next(i for i, t in enumerate(tensors) if t is p.k.threshold)
    names = neuron.state_names
    if neuron.fused == "lif" and not p.k.delayed:
        cpu = _cpu_kernel(neuron, p, x_seq)
        meta = _Meta(rebuild, neuron.step_fn, neuron.charge, neuron.gain, neuron.init_state, keep, theta_index, cpu)
        out = _LIFFused.apply(meta, x_seq, *tensors)
        return (out[0], {names[0]: out[1]}) if keep else (out, {})
    meta = _Meta(rebuild, neuron.step_fn, None, None, neuron.init_state, keep, theta_index)
    out = _GenericFused.apply(meta, len(names), x_seq, *tensors)
    return (out[0], dict(zip(names, out[1:]))) if keep else (out, {})
