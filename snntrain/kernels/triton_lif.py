r"""Triton kernels (GPU) for the fused lif-kind neurons: ``neuron.backend=triton``.

The same two loops as the C++ CPU kernel (:mod:`snntrain.kernels.cpu`) and the eager
fused lif form (:mod:`snntrain.backends.lif`), one program per block of elements, the
loop over T inside:

* forward: :math:`H_t = C(V_{t-1}, I_t)` (``lif``: :math:`\beta (V - V_{reset}) + V_{reset} + c I`;
  ``plif``: with :math:`1/\tau = \sigma(w)`), :math:`S_t = [H_t - V_{th} \ge 0]`,
  :math:`V_t = \mathrm{reset}(H_t, S_t)`; it writes :math:`S`, the trace :math:`V` if kept,
  and what the backward needs: :math:`H` (``grad_storage=exact``) or one compact code per
  element and step holding :math:`g'(z_t)` and :math:`S_t` (``bf16``: the bf16 bits of
  :math:`g'`, rounded to nearest even, with :math:`S` in the sign bit; ``int8``: :math:`S`
  in the top bit, :math:`\mathrm{round}(127\,g'/g'_{max})` in the low seven);
* backward: the reverse loop, :math:`\bar H_t` from :math:`\bar S_t`, :math:`\bar V_t` and
  :math:`g'(z_t)` (the surrogate's closed form, chosen at compile time), and the
  threshold's gradient per element.

The input and parameter gradients then follow from :math:`\bar H` in the fused backend's
vectorised charge call, as on the CPU. Runs on CUDA tensors; with ``TRITON_INTERPRET=1``
(set before this module is imported) Triton's interpreter runs the same kernels on the
CPU, which is how the tests check them on a machine without a GPU.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch
import triton
import triton.language as tl
from torch import Tensor

#: surrogate class name -> id in :func:`_sg` (the C++ kernel's numbering)

STORES = {"exact": 0, "bf16": 1, "int8": 2}


def _block(n: int) -> int:
    """Elements per program: 1024, or the next power of two of a smaller layer (the interpreter's tests)."""
    return max(16, min(1024, triton.next_power_of_2(n)))


#: whether the kernels below run under Triton's interpreter (decided when they are decorated, at import)
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def interpreting() -> bool:
    return INTERPRET


@contextmanager
def _launch() -> Iterator[None]:
    """Kernels decorated for the interpreter run (and import their helpers) with TRITON_INTERPRET=1 set."""
    if not INTERPRET or os.environ.get("TRITON_INTERPRET") == "1":
        yield
        return
    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = before


def unavailable() -> str | None:
    """Why the kernels cannot run in this process, or None."""
    if interpreting() or torch.cuda.is_available():
        return None
    return "the triton kernels run on a CUDA GPU and none is available here (TRITON_INTERPRET=1 runs them on the CPU, slowly)"


@triton.jit
def _sg(z, a, SG: tl.constexpr):
    """The surrogate derivative :math:`g'(z)`; ``SG``: the surrogate's ``kernel_id`` (:mod:`snntrain.surrogates`), ``a`` its one parameter."""
    az = tl.abs(z)
    if SG == 0:  # atan
        u = 1.5707963267948966 * a * z
        r = (a / 2) / (1 + u * u)
    elif SG == 1:  # sigmoid
        s = 1.0 / (1.0 + tl.exp(-a * z))
        r = a * s * (1 - s)
    elif SG == 2:  # fast_sigmoid
        d = 1 + a * az
        r = 1.0 / (d * d)
    elif SG == 3:  # triangle
        r = tl.maximum(a - az, 0.0) / (a * a)
    elif SG == 4:  # piecewise_quadratic
        r = tl.maximum(a - a * a * az, 0.0)
    elif SG == 5:  # rectangular
        r = tl.where(az < a / 2, 1.0 / a, 0.0)
    elif SG == 6:  # erf
        r = a * 0.5641895835477563 * tl.exp(-(a * z) * (a * z))
    elif SG == 7:  # gaussian
        u = z / a
        r = tl.exp(-0.5 * u * u) / (a * 2.5066282746310002)
    elif SG == 8:  # straight_through (a <= 0: no window)
        r = tl.where((a <= 0) | (az <= a), 1.0, 0.0)
    else:  # heaviside
        r = az * 0.0  # +0, never -0 (the bf16 code keeps the spike in the sign bit)
    return r


@triton.jit
def _lif_fwd(x_ptr, b_ptr, b_stride, s_ptr, v_ptr, save_ptr, v0_ptr, T, N, q, theta, vr, a, qscale,
             KIND: tl.constexpr, DECAY_INPUT: tl.constexpr, HAS_VR: tl.constexpr, RESET: tl.constexpr,
             KEEP: tl.constexpr, STORE: tl.constexpr, SG: tl.constexpr, HAS_V0: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    b = tl.load(b_ptr + offs * b_stride, mask=m, other=0.0)  # b_stride 0: one decay for the layer
    if HAS_V0:  # a truncated-BPTT chunk continues from the membrane the previous one left
        v = tl.load(v0_ptr + offs, mask=m, other=0.0)
    else:
        v = tl.zeros([BLOCK], dtype=tl.float32) + vr
    xp, sp, vp, hp = x_ptr + offs, s_ptr + offs, v_ptr + offs, save_ptr + offs
    for _ in range(T):
        x = tl.load(xp, mask=m, other=0.0)
        if KIND == 0:  # lif, if
            if HAS_VR:
                leak = b * (v - vr) + vr
            else:
                leak = b * v
            if DECAY_INPUT:
                h = leak + (1.0 - b) * x
            else:
                h = leak + x
        elif KIND == 1:  # plif, decay_input
            h = v + (x - (v - vr)) * q
        else:  # plif
            h = v - (v - vr) * q + x
        z = h - theta
        s = z >= 0
        tl.store(sp, s.to(tl.float32), mask=m)
        if RESET == 0:
            v = tl.where(s, z, h)
        elif RESET == 1:
            v = tl.where(s, vr, h)
        else:
            v = h
        if KEEP:
            tl.store(vp, v, mask=m)
        if STORE == 0:
            tl.store(hp, h, mask=m)
        else:
            d = _sg(z, a, SG)
            if STORE == 1:  # bf16 bits, round to nearest even, S in the sign bit
                u = d.to(tl.uint32, bitcast=True) & 0x7FFFFFFF  # g' >= 0
                u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
                u = u | (s.to(tl.uint32) << 15)
                tl.store(hp, u.to(tl.int32).to(tl.int16), mask=m)
            else:  # 7-bit code, S in the top bit
                c = tl.minimum(tl.maximum(d * qscale + 0.5, 0.0), 127.0).to(tl.int32)  # round half up (d >= 0)
                tl.store(hp, (c | (s.to(tl.int32) << 7)).to(tl.uint8), mask=m)
        xp += N
        sp += N
        vp += N
        hp += N


@triton.jit
def _lif_bwd(save_ptr, gs_ptr, gt_ptr, b_ptr, b_stride, gh_ptr, th_ptr, T, N, theta, vr, a, dscale,
             RESET: tl.constexpr, DETACH: tl.constexpr, STORE: tl.constexpr, SG: tl.constexpr,
             HAS_TRACE: tl.constexpr, LEARN_THETA: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    b = tl.load(b_ptr + offs * b_stride, mask=m, other=0.0)  # b_stride 0: one decay for the layer
    gv = tl.zeros([BLOCK], dtype=tl.float32)
    th = tl.zeros([BLOCK], dtype=tl.float32)
    last = (T - 1) * N
    hp, gp, tp, op = save_ptr + last + offs, gs_ptr + last + offs, gt_ptr + last + offs, gh_ptr + last + offs
    for _ in range(T):
        if STORE == 0:
            h = tl.load(hp, mask=m, other=0.0)
            z = h - theta
            d = _sg(z, a, SG)
            s = z >= 0
        elif STORE == 1:
            u = tl.load(hp, mask=m, other=0).to(tl.int32) & 0xFFFF
            d = ((u & 0x7FFF) << 16).to(tl.float32, bitcast=True)
            s = (u >> 15) != 0
        else:
            u = tl.load(hp, mask=m, other=0).to(tl.int32)
            d = (u & 127).to(tl.float32) * dscale
            s = u >= 128
        gS = tl.load(gp, mask=m, other=0.0)
        gV = gv
        if HAS_TRACE:
            gV = gV + tl.load(tp, mask=m, other=0.0)
        if RESET == 0:  # subtract
            if not DETACH:
                gS = gS - theta * gV
            g = gV + gS * d
            if LEARN_THETA:
                th += gS * d + tl.where(s, gV, 0.0)
        elif RESET == 1:  # zero
            if not DETACH:
                gS = gS + gV * (vr - h)
            g = tl.where(s, 0.0, gV) + gS * d
            if LEARN_THETA:
                th += gS * d
        else:
            g = gV + gS * d
            if LEARN_THETA:
                th += gS * d
        tl.store(op, g, mask=m)
        gv = b * g
        hp -= N
        gp -= N
        tp -= N
        op -= N
    if LEARN_THETA:
        tl.store(th_ptr + offs, th, mask=m)


def _scalar(a: float | None) -> float:
    return -1.0 if a is None else float(a)  # straight_through without a window


def forward(x: Tensor, beta: Tensor, kind: int, decay_input: bool, q: float, theta: float, reset: int, vr: float,
            keep: bool, store: str, sg: int, a: float | None, gmax: float,
            v0: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """x ``[T, N]`` float32 contiguous, beta ``[N]`` or ``[1]``, v0 ``[N]`` or None (rest): ``(saved, S, V or None)``; saved is H, or the compact codes."""
    T, N = x.shape
    S = torch.empty_like(x)
    V = torch.empty_like(x) if keep else S
    sid, BLOCK = STORES[store], _block(N)
    saved = torch.empty_like(x) if sid == 0 else torch.empty(x.shape, dtype=torch.int16 if sid == 1 else torch.uint8, device=x.device)
    with _launch():
        _lif_fwd[(triton.cdiv(N, BLOCK),)](
                x, beta, 1 if beta.numel() > 1 else 0, S, V, saved, S if v0 is None else v0, T, N, float(q), float(theta), float(vr), _scalar(a), 127.0 / gmax if gmax > 0 else 0.0,
            KIND=kind, DECAY_INPUT=bool(decay_input), HAS_VR=vr != 0.0, RESET=reset, KEEP=keep, STORE=sid, SG=sg, HAS_V0=v0 is not None, BLOCK=BLOCK,
        )
    return (saved.view(torch.bfloat16) if sid == 1 else saved), S, (V if keep else None)


def backward(saved: Tensor, gs: Tensor, gt: Tensor | None, beta: Tensor, theta: float, reset: int, detach: bool,
             vr: float, store: str, sg: int, a: float | None, gmax: float, learn_theta: bool) -> tuple[Tensor, Tensor | None]:
    """``(dL/dH [T, N], -dL/dV_th per element [N] or None)``."""
    T, N = gs.shape
    gH = torch.empty_like(gs)
    th = torch.empty(N if learn_theta else 1, dtype=gs.dtype, device=gs.device)
    sid, BLOCK = STORES[store], _block(N)
    with _launch():
        _lif_bwd[(triton.cdiv(N, BLOCK),)](
            saved.view(torch.int16) if sid == 1 else saved, gs, gs if gt is None else gt, beta, 1 if beta.numel() > 1 else 0,
            gH, th, T, N,
            float(theta), float(vr), _scalar(a), gmax / 127.0,
            RESET=reset, DETACH=bool(detach), STORE=sid, SG=sg, HAS_TRACE=gt is not None, LEARN_THETA=learn_theta, BLOCK=BLOCK,
        )
    return gH, (th if learn_theta else None)
