r"""The fused lif form (``if``, ``lif``, ``plif`` with an immediate reset): a hand-written backward.

One custom autograd function per sequence. Its forward loops over T without building a
graph and saves only what the backward needs; its backward is one reverse loop over T
(backpropagation through time written out). With the charged membrane
:math:`H_t = C(V_{t-1}, I_t)` (affine in :math:`V`, :math:`\partial H_t/\partial V_{t-1} = \beta`),
:math:`z_t = H_t - V_{th}`, :math:`S_t = \Theta(z_t)`, :math:`V_t = \mathrm{reset}(H_t, S_t)`
and incoming gradients :math:`\bar S_t, \bar V_t`:

.. math::
    \bar V_t &\mathrel{+}= \beta\,\bar H_{t+1}, \qquad
    \bar S_t \mathrel{+}= \bar V_t \frac{\partial V_t}{\partial S_t}, \qquad
    \bar H_t = \bar V_t \frac{\partial V_t}{\partial H_t} + \bar S_t\, g'(z_t),

with :math:`\partial V/\partial S = -V_{th}` (subtract), :math:`V_{reset} - H` (zero), 0
(none, or ``detach_reset``) and :math:`\partial V/\partial H = 1`, or :math:`1 - S` for
zero; :math:`\bar V_{th} = -\sum_t \bar S_t g'(z_t)` (:math:`-\sum \bar V_t S_t` more for
subtract); the initial state (a truncated-BPTT chunk) gets :math:`\bar V_0 = \beta \bar H_1`.
The input and parameter gradients follow from :math:`\bar H` in one vectorised call of the
charge function. It saves :math:`H` only (one value per element and step), or its compact
codes (:mod:`snntrain.backends.codes`), or, when a decay parameter is learnt, the input
only, and recomputes :math:`H` at the start of the backward.

Three engines run these two loops: a C++ kernel on the CPU (:mod:`snntrain.kernels.cpu`;
float32, built-in surrogates), PyTorch operations otherwise (any device, dtype,
surrogate), and the Triton kernels of the ``triton`` backend
(:mod:`snntrain.kernels.triton_lif`). The forward runs the very operations of
``step_fn``, so spikes and states equal the ``torch`` backend's bit for bit; gradients agree
up to float rounding (summation order).

A neuron of this form declares ``charge(p, v, x) -> H``, ``gain(p)`` (:math:`\partial H /
\partial I`, None for 1), and for the compiled kernels ``kernel_charge(p) -> (kind, 1/tau)``
(0: lif's charge; 1, 2: plif's with and without ``decay_input``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import torch
from torch import Tensor

from .codes import STORE_IDS, code_dtype, decode, encode
from .params import split, sum_to

if TYPE_CHECKING:
    from ..neurons.base import SpikingNeuron

RESET_IDS = {"subtract": 0, "zero": 1, "none": 2}


class Meta(NamedTuple):
    rebuild: Callable[[list[Tensor]], Any]
    charge: Callable  # H = charge(p, V, x)
    gain: Callable  # dH/dx as a function of p (None: 1)
    init: Callable[[Tensor], Tensor]  # the state at rest
    keep: bool  # return the membrane trace V
    threshold_index: int
    engine: Any  # _Eager, _Cpu or _Triton
    storage: str = "exact"  # grad_storage
    gmax: float = 1.0  # the surrogate's peak (int8 scale)
    pool_w: int = 0  # W: the spikes leave through a fused 2x2 average pool of maps W wide (C++ engine only)


def flat_beta(p: Any, x_seq: Tensor) -> Tensor:
    """The decay for the kernels: ``[1]`` (one for the layer) or one per element ``[N]``."""
    beta = p.decay.detach()
    return beta.reshape(1) if beta.numel() == 1 else beta.expand(x_seq.shape[1:]).contiguous().view(-1)


def after_reset(k: Any, h: Tensor, s: Tensor, out: Tensor | None = None) -> Tensor:
    r"""The reset as the engines write it: where :math:`S = 1`, :math:`H - V_{th}` (subtract) or :math:`V_{reset}` (zero), else :math:`H`."""
    if k.reset == "subtract":
        return torch.where(s, h - k.threshold, h, out=out)
    v = h.masked_fill(s, k.v_reset) if k.reset == "zero" else h
    if out is not None:
        out.copy_(v)
    return v


class _Eager:
    """The lif-form loops as PyTorch operations (any device, dtype and surrogate)."""

    @staticmethod
    def forward(p: Any, meta: Meta, x_seq: Tensor, v0: Tensor | None) -> tuple[Any, Tensor | None, Tensor]:
        r"""``(saved, V or None, spikes)``; saved: the list of :math:`H_t` (exact) or the codes ``[T, ...]``.

        The operations are the torch backend's: :math:`S = [H - V_{th} \ge 0]` and, where
        :math:`S = 1`, :math:`H - V_{th}` (subtract) or :math:`V_{reset}` (zero), else :math:`H`.
        """
        k = p.k
        theta = k.threshold
        fired = torch.empty(x_seq.shape, dtype=torch.bool, device=x_seq.device)
        V = torch.empty_like(x_seq) if meta.keep else None
        compact = meta.storage != "exact"
        codes = torch.empty(x_seq.shape, dtype=code_dtype(meta.storage), device=x_seq.device) if compact else None
        v = meta.init(x_seq[0]) if v0 is None else v0
        hs = []
        with torch.no_grad():
            for t in range(x_seq.shape[0]):
                h = meta.charge(p, v, x_seq[t])
                s = torch.ge(h - theta, 0, out=fired[t])
                if compact:
                    codes[t] = encode(k.derivative(h - theta, *k.sg_args), s, meta.storage, meta.gmax)
                else:
                    hs.append(h)
                v = after_reset(k, h, s, out=V[t] if V is not None else None)
        return (codes if compact else hs), V, fired.to(x_seq.dtype)

    @staticmethod
    def backward(p: Any, meta: Meta, saved: Any, g_spikes: Tensor, g_trace: Tensor | None, learn_theta: bool):
        """``(dL/dH [T, ...], dL/dV_th per element or None)``: the reverse loop of the module docstring."""
        k = p.k
        theta, beta = k.threshold, p.decay
        th = float(theta)
        g_theta = torch.zeros_like(g_spikes[0]) if learn_theta else None
        gH_all = torch.empty_like(g_spikes)  # dL/dH; dL/dx when the input gain is 1
        g_v = torch.zeros_like(g_spikes[0])
        subtract, zero = k.reset == "subtract", k.reset == "zero"
        compact = meta.storage != "exact"
        for t in range(g_spikes.shape[0] - 1, -1, -1):
            if compact:
                sg, s = decode(saved[t], meta.storage, meta.gmax, g_spikes.dtype)
            else:
                h = saved[t]
                sg, s = k.derivative(h - theta, *k.sg_args), h >= theta  # g'(z), z = H - V_th
            gV = g_v + g_trace[t] if g_trace is not None else g_v
            if zero:
                gS = g_spikes[t] if k.detach else torch.addcmul(g_spikes[t], gV, k.v_reset - h)
                gH = torch.addcmul(gV.masked_fill(s, 0.0), gS, sg, out=gH_all[t])
            else:
                gS = g_spikes[t] if k.detach or not subtract else torch.add(g_spikes[t], gV, alpha=-th)
                gH = torch.addcmul(gV, gS, sg, out=gH_all[t])
            if learn_theta:
                g_theta.addcmul_(gS, sg, value=-1.0)
                if subtract:
                    g_theta.sub_(gV.masked_fill(~s, 0.0))
            g_v = beta * gH
        return gH_all, g_theta


class _Kernel:
    """A compiled engine (C++ on the CPU, Triton on CUDA): ``(charge kind, 1/tau)`` and the surrogate's kernel id of this call."""

    def __init__(self, neuron: "SpikingNeuron", p: Any):
        self.kind, self.q = neuron.kernel_charge(p)
        self.sg, self.a = p.k.kernel


def _flat(x_seq: Tensor) -> Tensor:
    return x_seq.reshape(x_seq.shape[0], -1).contiguous()


def _flat_v0(v0: Tensor | None, x_seq: Tensor) -> Tensor | None:
    return None if v0 is None else v0.detach().expand(x_seq.shape[1:]).reshape(-1).contiguous()


class _Cpu(_Kernel):
    """The C++ kernel of :mod:`snntrain.kernels.cpu` (float32 CPU tensors, built-in surrogates)."""

    def __init__(self, neuron: "SpikingNeuron", p: Any, module: Any):
        super().__init__(neuron, p)
        self.module = module

    def forward(self, p: Any, meta: Meta, x_seq: Tensor, v0: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor]:
        k = p.k
        v0f = _flat_v0(v0, x_seq)
        store = STORE_IDS.get(meta.storage, -1)  # -1: H itself (exact), else the compact codes
        saved, S, V = self.module.forward(_flat(x_seq), flat_beta(p, x_seq), self.kind, p.decay_input, self.q,
                                          float(k.threshold), RESET_IDS[k.reset], k.v_reset, meta.keep,
                                          x_seq.new_empty(0) if v0f is None else v0f, meta.pool_w, store, self.sg, self.a,
                                          127.0 / meta.gmax if meta.gmax > 0 else 0.0)
        S = S.view(pooled_shape(x_seq.shape) if meta.pool_w else x_seq.shape)
        return saved.view(x_seq.shape), V.view(x_seq.shape) if meta.keep else None, S

    def backward(self, p: Any, meta: Meta, saved: Tensor, g_spikes: Tensor, g_trace: Tensor | None, learn_theta: bool):
        k = p.k
        T = saved.shape[0]
        beta = flat_beta(p, saved)
        gt = g_trace.reshape(T, -1).contiguous() if g_trace is not None else g_spikes.new_empty(0)
        gs = g_spikes.reshape(T, -1).contiguous()
        if meta.storage == "exact":
            gH, gth = self.module.backward(saved.reshape(T, -1), gs, gt, beta, float(k.threshold), RESET_IDS[k.reset],
                                           k.detach, k.v_reset, self.sg, self.a, learn_theta, meta.pool_w)
        else:
            code = saved.view(torch.int16) if meta.storage == "bf16" else saved
            gH, gth = self.module.backward_compact(code.reshape(T, -1), gs, gt, beta, float(k.threshold), RESET_IDS[k.reset],
                                                   k.detach, STORE_IDS[meta.storage], meta.gmax / 127.0, learn_theta,
                                                   meta.pool_w)
        return gH.view(saved.shape), (-gth.view(saved.shape[1:]) if learn_theta else None)


class _Triton(_Kernel):
    """The Triton kernels of :mod:`snntrain.kernels.triton_lif` (float32 CUDA tensors, built-in surrogates)."""

    def forward(self, p: Any, meta: Meta, x_seq: Tensor, v0: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor]:
        from ..kernels import triton_lif

        k = p.k
        saved, S, V = triton_lif.forward(_flat(x_seq), flat_beta(p, x_seq), self.kind, p.decay_input, self.q, float(k.threshold),
                                         RESET_IDS[k.reset], k.v_reset, meta.keep, meta.storage, self.sg, self.a, meta.gmax,
                                         _flat_v0(v0, x_seq))
        return saved.view(x_seq.shape), V.view(x_seq.shape) if meta.keep else None, S.view(x_seq.shape)

    def backward(self, p: Any, meta: Meta, saved: Tensor, g_spikes: Tensor, g_trace: Tensor | None, learn_theta: bool):
        from ..kernels import triton_lif

        k = p.k
        T = saved.shape[0]
        gt = g_trace.reshape(T, -1).contiguous() if g_trace is not None else None
        gH, gth = triton_lif.backward(saved.reshape(T, -1), g_spikes.reshape(T, -1).contiguous(), gt, flat_beta(p, saved),
                                      float(k.threshold), RESET_IDS[k.reset], k.detach, k.v_reset, meta.storage, self.sg,
                                      self.a, meta.gmax, learn_theta)
        return gH.view(g_spikes.shape), (-gth.view(g_spikes.shape[1:]) if learn_theta else None)


def engine(neuron: "SpikingNeuron", p: Any, x_seq: Tensor, backend: str) -> Any:
    """The engine for this call: triton (asked for), the C++ kernel (float32 CPU, built-in surrogate), or eager."""
    if backend == "triton":
        return _Triton(neuron, p)
    if x_seq.device.type != "cpu" or x_seq.dtype != torch.float32 or p.k.kernel is None:
        return _Eager  # a user-defined surrogate: the eager path evaluates its Python derivative
    from ..kernels.cpu import kernel

    module = kernel()
    return _Eager if module is None else _Cpu(neuron, p, module)


class LIFFused(torch.autograd.Function):
    """The lif form's autograd function: inputs ``(meta, x_seq, v0 or None, *parameter tensors)``."""

    @staticmethod
    def forward(ctx, meta: Meta, x_seq: Tensor, v0: Tensor | None, *tensors: Tensor):  # type: ignore[override]
        p = meta.rebuild(list(tensors))
        charge_needs_grad = any(n for i, n in enumerate(ctx.needs_input_grad[3:]) if i != meta.threshold_index)
        if charge_needs_grad:  # the backward recomputes H from the input (support refuses a compact storage here)
            meta = meta._replace(storage="exact")
        saved, V, spikes = meta.engine.forward(p, meta, x_seq, v0)
        ctx.meta, ctx.charge_needs_grad, ctx.stacked = meta, charge_needs_grad, isinstance(saved, Tensor)
        ctx.v0_shape = None if v0 is None else v0.shape
        if charge_needs_grad:  # keep the input only; H is recomputed at the start of the backward (exact storage)
            ctx.save_for_backward(x_seq, v0, *tensors)
        else:  # keep H only, or its compact codes
            ctx.save_for_backward(*((saved,) if ctx.stacked else saved), *tensors)
        return (spikes, V) if meta.keep else spikes

    @staticmethod
    def backward(ctx, g_spikes: Tensor, g_trace: Tensor | None = None):  # type: ignore[override]
        meta: Meta = ctx.meta
        saved = ctx.saved_tensors
        v0 = None
        if ctx.charge_needs_grad:
            x_seq, v0, tensors = saved[0], saved[1], list(saved[2:])
            p = meta.rebuild(tensors)
            hs, _, _ = meta.engine.forward(p, meta._replace(keep=False), x_seq, v0)
        else:
            n = 1 if ctx.stacked else g_spikes.shape[0]
            x_seq, hs, tensors = None, saved[:n], list(saved[n:])
            hs = hs[0] if ctx.stacked else hs
            p = meta.rebuild(tensors)
        learn_theta = ctx.needs_input_grad[3 + meta.threshold_index]
        gH_all, g_theta = meta.engine.backward(p, meta, hs, g_spikes, g_trace, learn_theta)
        return LIFFused.finish(ctx, meta, p, tensors, x_seq, v0, hs, gH_all, g_theta)

    @staticmethod
    def finish(ctx, meta, p, tensors, x_seq, v0, hs, gH_all, g_theta):  # type: ignore[no-untyped-def]
        """Input, initial-state and parameter gradients from dL/dH (and the threshold's)."""
        k = p.k
        theta = k.threshold
        grads: list[Tensor | None] = [None] * len(tensors)
        if g_theta is not None:
            grads[meta.threshold_index] = sum_to(g_theta, theta.shape)
        g_v0 = None
        if ctx.needs_input_grad[2]:  # dH_1/dV_0 = beta
            g_v0 = sum_to(gH_all[0] * p.decay.detach(), ctx.v0_shape)
        if ctx.charge_needs_grad:
            # dH/dx and dH/dparams in one vectorised call of the charge function
            H = hs if isinstance(hs, Tensor) else torch.stack(hs)
            V = after_reset(k, H, H >= theta)
            v_prev = torch.cat([(meta.init(H[0]) if v0 is None else v0.expand_as(H[0]))[None], V[:-1]])
            with torch.enable_grad():
                leaves = [t.detach().requires_grad_(n) for t, n in zip(tensors, ctx.needs_input_grad[3:])]
                xl = x_seq.detach().requires_grad_()
                h = meta.charge(meta.rebuild(leaves), v_prev, xl)
                wrt = [xl] + [l for l in leaves if l.requires_grad]
                got = list(torch.autograd.grad(h, wrt, gH_all, allow_unused=True))
            g_x = got.pop(0)
            for i, l in enumerate(leaves):
                if l.requires_grad:
                    g = got.pop(0)
                    if i != meta.threshold_index:
                        grads[i] = g if g is None else sum_to(g, l.shape)
        else:
            gain = meta.gain(p)
            g_x = gH_all if gain is None else gH_all.mul_(gain)
        return (None, g_x, g_v0, *grads)


def pooled_shape(shape: torch.Size) -> tuple[int, ...]:
    """``[..., H, W]`` after a 2x2 average pool of stride 2: ``[..., H/2, W/2]``."""
    return (*shape[:-2], shape[-2] // 2, shape[-1] // 2)


def run(neuron: "SpikingNeuron", x_seq: Tensor, v0: Tensor | None, keep: bool, backend: str, storage: str,
        pool_w: int = 0) -> tuple[Tensor, Tensor | None] | None:
    """``(spikes, V [T, ...] or None)`` of the lif form from ``v0`` (None: rest); ``V`` is returned when ``keep``.

    ``pool_w``: the spikes leave through a 2x2 average pool of maps that wide, fused into the C++ kernel
    (:mod:`snntrain.backends.pool`); None where this call's engine is another one.
    """
    p = neuron.params()
    eng = engine(neuron, p, x_seq, backend)
    if pool_w and not isinstance(eng, _Cpu):
        return None
    tensors, rebuild = split(p)
    theta_index = next(i for i, t in enumerate(tensors) if t is p.k.threshold)
    gmax = neuron.surrogate.peak() if storage == "int8" else 1.0
    meta = Meta(rebuild, neuron.charge, neuron.gain, neuron.init_state, keep, theta_index, eng, storage, gmax, pool_w)
    out = LIFFused.apply(meta, x_seq, v0, *tensors)
    return (out[0], out[1]) if keep else (out, None)


__all__ = ["LIFFused", "run", "engine", "after_reset", "RESET_IDS"]
