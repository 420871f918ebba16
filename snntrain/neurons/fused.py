r"""Neuron backends: ``torch`` (the reference loop), ``fused`` (one autograd function per sequence), ``triton``.

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
    input only, and recomputes :math:`H` at the start of the backward. Three engines run
    these two loops: a C++ kernel on the CPU (:mod:`snntrain.kernels.cpu`; float32,
    built-in surrogates), PyTorch operations otherwise (any device, dtype, surrogate),
    and the Triton kernels of the ``triton`` backend.
  - ``generic`` (``alif``, ``synaptic``, ``alpha``, ``lapicque``, and ``if``/``lif``
    with ``reset_delay``): the forward saves the input and the state after each step;
    the backward re-runs each step with autograd, in reverse, and chains the
    vector-Jacobian products. Exact for any pure ``step_fn``, every surrogate and reset
    rule; it keeps one value more per element and step than there are state entries.

  Both forwards run the very operations of ``step_fn``, so spikes and states equal the
  ``torch`` backend's bit for bit; gradients agree up to float rounding (summation order).
* ``triton``: the lif kind on a CUDA GPU (:mod:`snntrain.kernels.triton_lif`), the same
  two loops as GPU kernels, one thread per element, T inside; every built-in surrogate,
  reset rule, ``detach_reset``, learnable threshold and decay (through the charge call
  above). ``pip install "snntrain[triton]"``. Elsewhere it is an error naming the option.
* ``auto``: the fastest valid one. ``triton`` on CUDA, else ``fused``, for the lif kind
  (``if``, ``lif``, ``plif`` with an immediate reset); ``torch`` for the others, where
  the generic fused form (which re-runs every step in its backward) measured slower on
  the CPU. An option the chosen backend cannot run (below) falls back, with one log line
  saying why.

The fused and triton backends do not run ``inhibition`` (a winner-take-all across
features), a ``state_quant`` hook (an arbitrary callable) or reduced-precision inputs
(autocast), and not the neurons with a recurrent weight or an LSTM cell (``rleaky``,
``rsynaptic``, ``slstm``, ``sconv2dlstm``); asking for one of those is an error naming it.

**Compact gradient storage** (``neuron.grad_storage``, lif kind, fused and triton; off by
default). Under ``exact`` the backward keeps :math:`H_t` (fp32). It only needs
:math:`d_t = g'(z_t)` and :math:`S_t` from it (for subtract and none resets, and zero with
``detach_reset``), so ``bf16`` and ``int8`` keep one code per element and step instead:

* ``bf16`` (2 bytes): :math:`d_t` rounded to nearest bf16, :math:`S_t` in the sign bit
  (:math:`g' \ge 0`). Stored error :math:`|\hat d - d| \le u\,d`, :math:`u = 2^{-8}`.
* ``int8`` (1 byte): :math:`S_t` in the top bit, :math:`q = \lfloor 127\,d/g'_{max} + \tfrac12\rfloor`
  in the low seven, :math:`\hat d = q\,g'_{max}/127`, with :math:`g'_{max}` the surrogate's
  peak (:meth:`snntrain.surrogates.Surrogate.peak`, :math:`g'(0)`). Stored error
  :math:`|\hat d - d| \le g'_{max}/254`.

The forward (spikes, membranes) is unchanged. Error of the gradients: with
:math:`\delta_t` the stored error, :math:`a_t = \partial V_t/\partial H_t`,
:math:`c_t = \partial V_t/\partial S_t` and :math:`\bar S_t` the exact gradient of the
spike, the gradient w.r.t. :math:`H` (the input's, times the constant input gain)
satisfies

.. math::
    |\hat{\bar H}_t - \bar H_t| \le E_t, \qquad
    E_t = \beta\,E_{t+1}\,(|a_t| + |c_t|\,(d_t + \delta_t)) + |\bar S_t|\,\delta_t, \quad E_{T+1} = 0,

i.e. the exact backward run on absolute values with the per-step sources
:math:`|\bar S_t|\,\delta_t`: for bf16 at most :math:`u (1+u)^T` times that
absolute-value backward of :math:`|\bar S_t|\,d_t` (a relative :math:`2^{-8}` where the
terms do not cancel), for int8 :math:`g'_{max}/254` times the same backward with
:math:`d_t` replaced by 1 in the sources (``tests/test_grad_storage.py`` checks both
against the exact path). The threshold's gradient, a sum of the same terms, gets the sum
of their errors. Not possible, and refused naming the key (``auto``: runs exact, one log
line): a zero reset without ``detach_reset`` (its gradient needs :math:`V_{reset} - H`
itself), a learnt decay (its gradient needs the input, which the backward then keeps in
fp32 anyway), the generic form, and the ``torch`` backend.
"""
from __future__ import annotations

import logging
from functools import partial
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import SpikingNeuron, reset, torch_loop

log = logging.getLogger(__name__)

Runner = Callable[[SpikingNeuron, Tensor, bool], "tuple[Tensor, dict[str, Tensor]]"]


# ---------------------------------------------------------------- support and choice
def why_not(neuron: SpikingNeuron, backend: str, storage: str, x_seq: Tensor | None = None) -> tuple[str, str] | None:
    """``(option, reason)`` if ``backend`` cannot run ``neuron`` with ``grad_storage=storage`` (on ``x_seq``), else None."""
    name = type(neuron).__name__
    if backend == "torch":
        if storage != "exact":
            return "grad_storage", (f"the torch backend keeps what autograd saves; grad_storage={storage} needs backend "
                                    "fused or triton (if, lif, plif), or auto; or use grad_storage=exact")
        return None
    if neuron.fused is None:
        return "backend", f"{name} has no fused implementation (it runs a module inside its step)"
    if neuron.inhibition:
        return "inhibition", "winner-take-all across features is not fused"
    if neuron.state_quant is not None:
        return "state_quant", "a state-quantization hook is an arbitrary callable and is not fused"
    lif_now = neuron.fused == "lif" and not neuron.reset_delay
    if backend == "triton":
        if not lif_now:
            return "backend", f"the triton kernels run if, lif and plif with an immediate reset, not {name}" + (
                " with reset_delay" if neuron.fused == "lif" else "") + "; use backend fused or auto"
        if _surrogate_ids().get(neuron.surrogate.spec()[0]) is None:
            return "surrogate", "a user-defined surrogate has no triton derivative; use backend fused or auto"
        try:
            from ..kernels import triton_lif
        except ImportError as e:
            return "backend", f"triton does not import ({e}); pip install 'snntrain[triton]'"
        why = triton_lif.unavailable()
        if why is not None:
            return "backend", why
    if storage != "exact":
        if not lif_now:
            return "grad_storage", f"compact storage is implemented for if, lif and plif with an immediate reset, not {name}" + (
                " with reset_delay" if neuron.fused == "lif" else "") + "; use grad_storage=exact"
        if neuron.reset == "zero" and not neuron.detach_reset:
            return "grad_storage", ("a zero reset's gradient needs H itself (dV/dS = V_reset - H), not only g'(H - V_th); "
                                    "set detach_reset=true, or grad_storage=exact")
    if x_seq is None:
        return None
    if x_seq.dtype not in (torch.float32, torch.float64):  # mixed precision (autocast)
        return "backend", f"it runs float32/float64 inputs, got {x_seq.dtype} (mixed precision)"
    if backend == "triton":
        from ..kernels import triton_lif

        if not (x_seq.is_cuda or triton_lif.interpreting()) or x_seq.dtype != torch.float32:
            return "backend", f"the triton kernels run float32 CUDA tensors, got {x_seq.dtype} on {x_seq.device.type}"
    if storage != "exact" and torch.is_grad_enabled():
        learnt = [n for n, p in neuron.named_parameters() if p.requires_grad and n not in ("threshold", "graded_spikes_factor")]
        if learnt:
            return "grad_storage", (f"its {learnt[0]} is learnt: that gradient needs the input, which the backward then keeps "
                                    "in fp32 (nothing left to compact); freeze it or use grad_storage=exact")
    return None


def unsupported(neuron: SpikingNeuron, backend: str | None = None) -> tuple[str, str] | None:
    """``(option, reason)`` if ``backend`` (default: the neuron's) cannot run ``neuron`` as configured, else None."""
    backend = backend or neuron.backend
    return why_not(neuron, "fused" if backend == "auto" else backend, neuron.grad_storage)


def choose(neuron: SpikingNeuron, x_seq: Tensor) -> Runner:
    """The runner for ``neuron.backend``: an error naming the option if the chosen backend cannot run it.

    ``auto``: triton on CUDA, else fused, for the lif kind with an immediate reset; the
    torch loop for the others (the generic fused form measured slower). A compact
    ``grad_storage`` that cannot be honoured runs exact; each fallback says why in one log line.
    """
    backend, storage = neuron.backend, neuron.grad_storage
    if backend == "torch":
        return torch_loop
    if backend != "auto":
        why = why_not(neuron, backend, storage, x_seq)
        if why is not None:
            option, reason = why
            raise ConfigError(
                f"neuron.{option}: the {backend} backend cannot run this neuron: {reason}. "
                f"neuron.backend=auto runs what it can and says in the log what it could not."
            )
        return partial(fused_run, engine=backend, storage=storage)
    notes: list[tuple[str, str]] = []
    chosen = "torch"
    lif_now = neuron.fused == "lif" and not neuron.reset_delay
    for b in (("triton", "fused") if x_seq.is_cuda and lif_now else ("fused",)):
        why = why_not(neuron, b, "exact", x_seq)
        if why is None:
            chosen = b
            break
        notes.append(why)
    if not lif_now:
        chosen = "torch"  # measured: the generic fused form (per-step VJPs) is slower than the torch loop
    if storage != "exact":
        why = why_not(neuron, chosen, storage, x_seq)
        if why is not None:
            notes.append(why)
            storage = "exact"
    if notes and not getattr(neuron, "_fallback_logged", False):
        log.info("neuron backend auto: %s runs on %s%s (%s)", type(neuron).__name__, chosen,
                 " with grad_storage=exact" if storage != neuron.grad_storage else "",
                 "; ".join(f"{o}: {r}" for o, r in notes))
        neuron._fallback_logged = True
    return torch_loop if chosen == "torch" else partial(fused_run, engine=chosen, storage=storage)


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
    engine: Any = None  # lif kind: _Eager, _Cpu or _Triton
    storage: str = "exact"  # grad_storage
    gmax: float = 1.0  # the surrogate's peak (int8 scale)


def _surrogate_ids() -> dict[Callable, int]:
    from .. import surrogates
    from ..kernels.cpu import SURROGATES

    return {getattr(surrogates, name).derivative: i for name, i in SURROGATES.items()}


# ---------------------------------------------------------------- compact storage of g'(z) and S
def encode(d: Tensor, s: Tensor, storage: str, gmax: float) -> Tensor:
    """One code per element: ``bf16``: :math:`g'` rounded to bf16, S in the sign bit; ``int8``: S, then 7 bits of :math:`g'`."""
    if storage == "bf16":
        return torch.where(s, -d, d).to(torch.bfloat16)
    q = (d * (127.0 / gmax) + 0.5).floor_().clamp_(0, 127) if gmax > 0 else torch.zeros_like(d)
    return q.to(torch.uint8) | (s.to(torch.uint8) << 7)


def decode(code: Tensor, storage: str, gmax: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(g'(z), S as bool)`` from :func:`encode`'s codes."""
    if storage == "bf16":
        return code.abs().to(dtype), torch.signbit(code)
    return (code & 127).to(dtype) * (gmax / 127.0), code >= 128


# ---------------------------------------------------------------- lif kind: three engines, one interface
def _flat_beta(p: Any, x_seq: Tensor) -> Tensor:
    """The decay for the kernels: ``[1]`` (one for the layer) or one per element ``[N]``."""
    beta = p.decay.detach()
    return beta.reshape(1) if beta.numel() == 1 else beta.expand(x_seq.shape[1:]).contiguous().view(-1)


class _Eager:
    """The lif-kind loops as PyTorch operations (any device, dtype and surrogate)."""

    @staticmethod
    def forward(p: Any, meta: _Meta, x_seq: Tensor) -> tuple[Any, Tensor | None, Tensor]:
        r"""``(saved, V or None, spikes)``; saved: the list of :math:`H_t` (exact) or the codes ``[T, ...]``.

        The operations are the torch backend's: :math:`S = [H - V_{th} \ge 0]` and, where
        :math:`S = 1`, :math:`H - V_{th}` (subtract) or :math:`V_{reset}` (zero), else :math:`H`.
        """
        k = p.k
        theta = k.threshold
        fired = torch.empty(x_seq.shape, dtype=torch.bool, device=x_seq.device)
        V = torch.empty_like(x_seq) if meta.keep else None
        compact = meta.storage != "exact"
        codes = torch.empty(x_seq.shape, dtype=torch.bfloat16 if meta.storage == "bf16" else torch.uint8, device=x_seq.device) if compact else None
        v = meta.init(x_seq[0])
        hs = []
        with torch.no_grad():
            for t in range(x_seq.shape[0]):
                h = meta.charge(p, v, x_seq[t])
                s = torch.ge(h - theta, 0, out=fired[t])
                if compact:
                    codes[t] = encode(k.derivative(h - theta, *k.sg_args), s, meta.storage, meta.gmax)
                else:
                    hs.append(h)
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
        return (codes if compact else hs), V, fired.to(x_seq.dtype)

    @staticmethod
    def backward(p: Any, meta: _Meta, saved: Any, g_spikes: Tensor, g_trace: Tensor | None, learn_theta: bool):
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
    """A compiled engine (C++ on the CPU, Triton on CUDA): ``(charge kind, 1/tau, surrogate id)`` of this call."""

    def __init__(self, neuron: SpikingNeuron, p: Any):
        self.kind, self.q = neuron.cpu_charge_kind(p)
        self.sg = _surrogate_ids()[p.k.derivative]
        a = p.k.sg_args[0] if p.k.sg_args else 0.0
        self.a = -1.0 if a is None else float(a)  # straight_through without a window


class _Cpu(_Kernel):
    """The C++ kernel of :mod:`snntrain.kernels.cpu` (float32 CPU tensors, built-in surrogates)."""

    def __init__(self, neuron: SpikingNeuron, p: Any, module: Any):
        super().__init__(neuron, p)
        self.module = module

    def forward(self, p: Any, meta: _Meta, x_seq: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        k = p.k
        flat = x_seq.reshape(x_seq.shape[0], -1).contiguous()
        H, S, V = self.module.forward(flat, _flat_beta(p, x_seq), self.kind, p.decay_input, self.q, float(k.threshold),
                                      RESET_IDS[k.reset], k.v_reset, meta.keep)
        H, S = H.view(x_seq.shape), S.view(x_seq.shape)
        if meta.storage != "exact":
            z = H - k.threshold
            H = encode(k.derivative(z, *k.sg_args), z >= 0, meta.storage, meta.gmax)
        return H, V.view(x_seq.shape) if meta.keep else None, S

    def backward(self, p: Any, meta: _Meta, saved: Tensor, g_spikes: Tensor, g_trace: Tensor | None, learn_theta: bool):
        k = p.k
        T = saved.shape[0]
        beta = _flat_beta(p, saved)
        gt = g_trace.reshape(T, -1).contiguous() if g_trace is not None else g_spikes.new_empty(0)
        gs = g_spikes.reshape(T, -1).contiguous()
        if meta.storage == "exact":
            gH, gth = self.module.backward(saved.reshape(T, -1), gs, gt, beta, float(k.threshold), RESET_IDS[k.reset],
                                           k.detach, k.v_reset, self.sg, self.a, learn_theta)
        else:
            code = saved.view(torch.int16) if meta.storage == "bf16" else saved
            gH, gth = self.module.backward_compact(code.reshape(T, -1), gs, gt, beta, float(k.threshold), RESET_IDS[k.reset],
                                                   k.detach, STORE_IDS[meta.storage], meta.gmax / 127.0, learn_theta)
        return gH.view(g_spikes.shape), (-gth.view(g_spikes.shape[1:]) if learn_theta else None)


class _Triton(_Kernel):
    """The Triton kernels of :mod:`snntrain.kernels.triton_lif` (float32 CUDA tensors, built-in surrogates)."""

    def forward(self, p: Any, meta: _Meta, x_seq: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        from ..kernels import triton_lif

        k = p.k
        flat = x_seq.reshape(x_seq.shape[0], -1).contiguous()
        saved, S, V = triton_lif.forward(flat, _flat_beta(p, x_seq), self.kind, p.decay_input, self.q, float(k.threshold),
                                         RESET_IDS[k.reset], k.v_reset, meta.keep, meta.storage, self.sg, self.a, meta.gmax)
        return saved.view(x_seq.shape), V.view(x_seq.shape) if meta.keep else None, S.view(x_seq.shape)

    def backward(self, p: Any, meta: _Meta, saved: Tensor, g_spikes: Tensor, g_trace: Tensor | None, learn_theta: bool):
        from ..kernels import triton_lif

        k = p.k
        T = saved.shape[0]
        gt = g_trace.reshape(T, -1).contiguous() if g_trace is not None else None
        gH, gth = triton_lif.backward(saved.reshape(T, -1), g_spikes.reshape(T, -1).contiguous(), gt, _flat_beta(p, saved),
                                      float(k.threshold), RESET_IDS[k.reset], k.detach, k.v_reset, meta.storage, self.sg,
                                      self.a, meta.gmax, learn_theta)
        return gH.view(g_spikes.shape), (-gth.view(g_spikes.shape[1:]) if learn_theta else None)


RESET_IDS = {"subtract": 0, "zero": 1, "none": 2}
STORE_IDS = {"bf16": 0, "int8": 1}


def _engine(neuron: SpikingNeuron, p: Any, x_seq: Tensor, backend: str) -> Any:
    """The lif-kind engine for this call: triton (asked for), the C++ kernel (float32 CPU, built-in surrogate), or eager."""
    if backend == "triton":
        return _Triton(neuron, p)
    if x_seq.device.type != "cpu" or x_seq.dtype != torch.float32 or not hasattr(neuron, "cpu_charge_kind"):
        return _Eager
    if p.k.derivative not in _surrogate_ids():  # a user-defined surrogate: the eager path evaluates its Python derivative
        return _Eager
    from ..kernels.cpu import kernel

    module = kernel()
    return _Eager if module is None else _Cpu(neuron, p, module)


# ---------------------------------------------------------------- lif kind: hand-written backward
class _LIFFused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, meta: _Meta, x_seq: Tensor, *tensors: Tensor):  # type: ignore[override]
        p = meta.rebuild(list(tensors))
        charge_needs_grad = any(
            n for i, n in enumerate(ctx.needs_input_grad[2:]) if i != meta.threshold_index
        )
        if charge_needs_grad:  # the backward recomputes H from the input (choose() refuses a compact storage here)
            meta = meta._replace(storage="exact")
        saved, V, spikes = meta.engine.forward(p, meta, x_seq)
        ctx.meta, ctx.charge_needs_grad, ctx.stacked = meta, charge_needs_grad, isinstance(saved, Tensor)
        if charge_needs_grad:  # keep the input only; H is recomputed at the start of the backward (exact storage)
            ctx.save_for_backward(x_seq, *tensors)
        else:  # keep H only, or its compact codes
            ctx.save_for_backward(*((saved,) if ctx.stacked else saved), *tensors)
        return (spikes, V) if meta.keep else spikes

    @staticmethod
    def backward(ctx, g_spikes: Tensor, g_trace: Tensor | None = None):  # type: ignore[override]
        meta: _Meta = ctx.meta
        saved = ctx.saved_tensors
        if ctx.charge_needs_grad:
            x_seq, tensors = saved[0], list(saved[1:])
            p = meta.rebuild(tensors)
            hs, _, _ = meta.engine.forward(p, meta._replace(keep=False), x_seq)
        else:
            n = 1 if ctx.stacked else g_spikes.shape[0]
            x_seq, hs, tensors = None, saved[:n], list(saved[n:])
            hs = hs[0] if ctx.stacked else hs
            p = meta.rebuild(tensors)
        learn_theta = ctx.needs_input_grad[2 + meta.threshold_index]
        gH_all, g_theta = meta.engine.backward(p, meta, hs, g_spikes, g_trace, learn_theta)
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
def fused_run(neuron: SpikingNeuron, x_seq: Tensor, keep: bool, engine: str = "fused", storage: str = "exact") -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``neuron`` over ``x_seq`` with one fused autograd function (``engine``: fused or triton)."""
    p = neuron.params()
    tensors, rebuild = split(p)
    theta_index = next(i for i, t in enumerate(tensors) if t is p.k.threshold)
    names = neuron.state_names
    if neuron.fused == "lif" and not p.k.delayed:
        gmax = neuron.surrogate.peak() if storage == "int8" else 1.0
        meta = _Meta(rebuild, neuron.step_fn, neuron.charge, neuron.gain, neuron.init_state, keep, theta_index,
                     _engine(neuron, p, x_seq, engine), storage, gmax)
        out = _LIFFused.apply(meta, x_seq, *tensors)
        return (out[0], {names[0]: out[1]}) if keep else (out, {})
    meta = _Meta(rebuild, neuron.step_fn, None, None, neuron.init_state, keep, theta_index)
    out = _GenericFused.apply(meta, len(names), x_seq, *tensors)
    return (out[0], dict(zip(names, out[1:]))) if keep else (out, {})
