r"""Trace-based spike-timing-dependent plasticity (STDP), SpikingJelly's rule exactly.

Pair-based STDP (Bi & Poo, 1998, J. Neurosci. 18:10464) strengthens a synapse when
the presynaptic spike comes shortly *before* the postsynaptic one (LTP) and weakens
it when it comes *after* (LTD), with an effect that fades with the time between them.
The trace formulation (Morrison, Diesmann & Gerstner, 2008, Biol. Cybern. 98:459)
replaces the sum over spike pairs with one low-pass trace per neuron, in discrete time
with SpikingJelly's Euler decay :math:`1 - 1/\tau` (``spikingjelly.activation_based.
learning.STDPLearner`` / ``functional.learning.stdp_linear_step``, v2.0.0):

.. math::

    tr_{pre}[t]  &= tr_{pre}[t-1]  - tr_{pre}[t-1] / \tau_{pre}   + s_{pre}[t] \\
    tr_{post}[t] &= tr_{post}[t-1] - tr_{post}[t-1] / \tau_{post} + s_{post}[t] \\
    \Delta W[t]  &= f_{post}(W) \odot \big(s_{post}[t]^\top tr_{pre}[t]\big)
                  - f_{pre}(W)  \odot \big(tr_{post}[t]^\top s_{pre}[t]\big)

with :math:`W` of shape ``[out, in]``, spikes as row vectors per sample, traces
starting at 0 and the outer products **summed over the batch** (and over the output
positions of a convolution). Sign conventions, exactly SpikingJelly's:

* the traces are updated *first*, so they include the spike of the current step;
* a **post** spike potentiates by :math:`+f_{post}(W)\,tr_{pre}` (pre came before:
  LTP), a **pre** spike depresses by :math:`-f_{pre}(W)\,tr_{post}` (post came
  before: LTD). ``f_pre``/``f_post`` are named after the spike that *triggers* the
  term, not after the sign;
* a pre and a post spike in the same step give both terms, :math:`f_{post}-f_{pre}`;
* pre at :math:`t_0`, post at :math:`t_0+\Delta` (alone): :math:`\Delta W =
  +f_{post}(W)(1-1/\tau_{pre})^{\Delta}`; post first, then pre :math:`\Delta` steps
  later: :math:`\Delta W = -f_{pre}(W)(1-1/\tau_{post})^{\Delta}`;
* over a sequence ``[T, B, ...]`` the weight is held fixed and the per-step updates
  are summed (SpikingJelly's multi-step mode), so :math:`f(W)` is evaluated once.
  SpikingJelly returns this sum and leaves applying it to the caller (an optimizer on
  ``-ΔW``); :meth:`STDPLearner.apply` does :math:`W \leftarrow W + lr\,\Delta W`.

Extras that do not change the rule: ``a_pre``/``a_post`` scale the two terms (both 1
gives SpikingJelly's rule), ``reduction="mean"`` divides by the batch size instead of
summing, and ``apply`` can clamp to ``[w_min, w_max]``.

Weight dependence (``f_pre``/``f_post``), by name or as an element-wise callable:

* ``identity``: :math:`f(w) = w` (SpikingJelly's default);
* ``constant``: :math:`f(w) = 1`, additive STDP (Song, Miller & Abbott, 2000; keep the
  weights bounded by clamping);
* ``multiplicative``: soft bounds (van Rossum, Bi & Turrigiano, 2000; Gütig et al.,
  2003 with :math:`\mu = 1`): :math:`f_{post}(w) = w_{max} - w`,
  :math:`f_{pre}(w) = w - w_{min}`, so potentiation vanishes at :math:`w_{max}` and
  depression at :math:`w_{min}`;
* ``soft_upper`` (:math:`w_{max} - w`) and ``soft_lower`` (:math:`w - w_{min}`) name
  the two soft bounds explicitly, for either branch.

There is no hidden state: :meth:`STDPLearner.delta` processes a whole sequence from
fresh (zero) traces; :meth:`STDPLearner.step` is the streaming API, with the traces
passed in and returned, and reads the synapse's current weight at every call.
"""
from __future__ import annotations

import math
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WeightFn = Callable[[Tensor], Tensor]
Synapse = Union[nn.Linear, nn.Conv1d, nn.Conv2d]
Traces = tuple[Tensor, Tensor]

#: names accepted for ``f_pre`` / ``f_post``
WEIGHT_FUNCTIONS = ("identity", "constant", "multiplicative", "soft_upper", "soft_lower")
REDUCTIONS = ("sum", "mean")


def weight_function(spec: str | WeightFn, branch: str, w_min: float = 0.0, w_max: float = 1.0) -> WeightFn:
    """``f_pre``/``f_post`` from a name in :data:`WEIGHT_FUNCTIONS` (or a callable, returned as is).

    ``branch`` is ``"pre"`` or ``"post"``; it only matters for ``multiplicative``
    (``w - w_min`` for pre, ``w_max - w`` for post).
    """
    if callable(spec):
        return spec
    if branch not in ("pre", "post"):
        raise ValueError(f"branch must be 'pre' or 'post', got {branch!r}")
    if spec == "multiplicative":
        spec = "soft_lower" if branch == "pre" else "soft_upper"
    if spec == "identity":
        return lambda w: w
    if spec == "constant":
        return lambda w: torch.ones_like(w)
    if spec == "soft_upper":
        return lambda w: w_max - w
    if spec == "soft_lower":
        return lambda w: w - w_min
    raise ValueError(f"f_{branch}: unknown weight dependence {spec!r}; valid: {', '.join(WEIGHT_FUNCTIONS)} or a callable")


def trace_step(trace: Tensor, spike: Tensor, tau: float) -> Tensor:
    r""":math:`tr \leftarrow tr - tr/\tau + s`, written exactly as SpikingJelly does."""
    return trace - trace / tau + spike


class STDPLearner:
    """STDP for the weight of a ``Linear``, ``Conv1d`` or ``Conv2d`` synapse (see the module docs).

    ``learner.delta(s_pre_seq, s_post_seq)`` gives :math:`\\Delta W` for one sequence
    (``[T, B, in...]`` spikes into the synapse, ``[T, B, out...]`` spikes of the
    neurons it drives); ``learner.apply(dw, lr)`` adds ``lr * dw`` to the weight
    in place. ``learner.learn`` does both. Only the weight is learned (not the bias),
    as in SpikingJelly. Convolutions need ``groups=1`` and ``dilation=1``.
    """

    def __init__(
        self,
        synapse: Synapse,
        tau_pre: float,
        tau_post: float,
        f_pre: str | WeightFn = "identity",
        f_post: str | WeightFn = "identity",
        w_min: float = 0.0,
        w_max: float = 1.0,
        a_pre: float = 1.0,
        a_post: float = 1.0,
        reduction: str = "sum",
    ):
        for name, tau in (("tau_pre", tau_pre), ("tau_post", tau_post)):
            if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau < 1:
                raise ValueError(f"{name} must be finite and >= 1 time steps, got {tau!r}")
        if not isinstance(synapse, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            raise NotImplementedError(f"STDP supports nn.Linear, nn.Conv1d and nn.Conv2d synapses, got {type(synapse).__name__}")
        if isinstance(synapse, (nn.Conv1d, nn.Conv2d)) and (synapse.groups != 1 or any(d != 1 for d in synapse.dilation)):
            raise NotImplementedError("convolutional STDP needs groups=1 and dilation=1")
        if not w_min < w_max:
            raise ValueError(f"w_min must be < w_max, got {w_min} and {w_max}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.synapse = synapse
        self.tau_pre, self.tau_post = float(tau_pre), float(tau_post)
        self.w_min, self.w_max = float(w_min), float(w_max)
        self.f_pre = weight_function(f_pre, "pre", w_min, w_max)
        self.f_post = weight_function(f_post, "post", w_min, w_max)
        self.a_pre, self.a_post = float(a_pre), float(a_post)
        self.reduction = reduction

    # ---- shapes -------------------------------------------------------------------
    @property
    def weight(self) -> Tensor:
        return self.synapse.weight

    def _pad(self, pre: Tensor) -> Tensor:
        """Pad a conv input ``[N, C, ...]`` as the synapse does (SpikingJelly pads the spikes before the trace)."""
        syn = self.synapse
        if isinstance(syn, nn.Linear) or not any(syn._reversed_padding_repeated_twice):
            return pre
        mode = "constant" if syn.padding_mode == "zeros" else syn.padding_mode
        return F.pad(pre, syn._reversed_padding_repeated_twice, mode=mode)

    def _check(self, pre: Tensor, post: Tensor, time_dim: bool) -> None:
        ndim = (2 if isinstance(self.synapse, nn.Linear) else self.weight.dim()) + int(time_dim)
        if pre.dim() != ndim or post.dim() != ndim:
            what = "[T, B, ...]" if time_dim else "[B, ...]"
            raise ValueError(f"spikes must be {what} with {ndim} dimensions for {type(self.synapse).__name__}, "
                             f"got pre {tuple(pre.shape)} and post {tuple(post.shape)}")
        c = int(time_dim) + 1
        if pre.shape[c] != self.weight.shape[1] or post.shape[c] != self.weight.shape[0] or pre.shape[:c] != post.shape[:c]:
            raise ValueError(f"spike shapes pre {tuple(pre.shape)} / post {tuple(post.shape)} do not match the "
                             f"weight {tuple(self.weight.shape)} (or differ in T/batch)")

    def _correlate(self, post_like: Tensor, pre_like: Tensor) -> Tensor:
        """:math:`\\sum_{n,pos} post[n, o, pos]\\, pre[n, i, pos + k]` as a weight-shaped tensor, n over T*B."""
        if isinstance(self.synapse, nn.Linear):
            return post_like.transpose(0, 1) @ pre_like  # [O, N] @ [N, I]
        w = self.weight
        if isinstance(self.synapse, nn.Conv1d):  # as a Conv2d with height 1
            pre_like, post_like = pre_like.unsqueeze(2), post_like.unsqueeze(2)
            kernel, stride = (1, w.shape[2]), (1, self.synapse.stride[0])
        else:
            kernel, stride = tuple(w.shape[2:]), tuple(self.synapse.stride)
        cols = F.unfold(pre_like, kernel, stride=stride)  # [N, I*kh*kw, L]
        if cols.shape[2] != post_like.shape[2] * post_like.shape[3]:
            raise ValueError(f"post spikes {tuple(post_like.shape)} do not match the synapse's output positions")
        out = torch.einsum("nol,nkl->ok", post_like.flatten(2), cols)
        return out.reshape(w.shape)

    # ---- the rule ------------------------------------------------------------------
    def init_traces(self, s_pre: Tensor, s_post: Tensor) -> Traces:
        """Zero traces for one step's spikes ``[B, ...]`` (the pre trace of a conv is padded)."""
        return torch.zeros_like(self._pad(s_pre)), torch.zeros_like(s_post)

    @torch.no_grad()
    def delta(self, s_pre_seq: Tensor, s_post_seq: Tensor, traces: Traces | None = None,
              return_traces: bool = False) -> Tensor | tuple[Tensor, Traces]:
        """:math:`\\Delta W` summed over a sequence (``[T, B, ...]``) at the current, fixed weight.

        Starts from zero traces unless ``traces`` (from :meth:`step` or an earlier
        ``return_traces=True`` call) continues a stream.
        """
        self._check(s_pre_seq, s_post_seq, time_dim=True)
        T, B = s_pre_seq.shape[:2]
        w = self.weight.detach()
        pre_seq = self._pad(s_pre_seq.flatten(0, 1)).unflatten(0, (T, B)).to(w.dtype)
        post_seq = s_post_seq.to(w.dtype)
        tr_pre, tr_post = traces if traces is not None else (torch.zeros_like(pre_seq[0]), torch.zeros_like(post_seq[0]))
        pre_traces, post_traces = [], []
        for t in range(T):
            tr_pre = trace_step(tr_pre, pre_seq[t], self.tau_pre)
            tr_post = trace_step(tr_post, post_seq[t], self.tau_post)
            pre_traces.append(tr_pre)
            post_traces.append(tr_post)
        ltp = self._correlate(post_seq.flatten(0, 1), torch.stack(pre_traces).flatten(0, 1))  # s_post x tr_pre
        ltd = self._correlate(torch.stack(post_traces).flatten(0, 1), pre_seq.flatten(0, 1))  # tr_post x s_pre
        dw = self.a_post * self.f_post(w) * ltp - self.a_pre * self.f_pre(w) * ltd
        if self.reduction == "mean":
            dw = dw / B
        return (dw, (tr_pre, tr_post)) if return_traces else dw

    @torch.no_grad()
    def step(self, s_pre: Tensor, s_post: Tensor, traces: Traces | None = None) -> tuple[Tensor, Traces]:
        """One time step ``[B, ...]``: returns ``(delta_w, new_traces)``; ``traces=None`` starts from zero.

        Running ``step`` over a sequence without applying the updates in between gives
        :meth:`delta`; applying them after every step is the online variant (f(W)
        then sees the updated weight).
        """
        self._check(s_pre, s_post, time_dim=False)
        dw, traces = self.delta(s_pre.unsqueeze(0), s_post.unsqueeze(0), traces, return_traces=True)
        return dw, traces

    @torch.no_grad()
    def apply(self, dw: Tensor, lr: float, clamp: bool = False) -> None:
        """:math:`W \\leftarrow W + lr\\,\\Delta W` in place, then optionally clamp to ``[w_min, w_max]``."""
        self.weight.add_(dw, alpha=lr)
        if clamp:
            self.weight.clamp_(self.w_min, self.w_max)

    @torch.no_grad()
    def learn(self, s_pre_seq: Tensor, s_post_seq: Tensor, lr: float, clamp: bool = False) -> Tensor:
        """:meth:`delta` then :meth:`apply`; returns the (unscaled) :math:`\\Delta W`."""
        dw = self.delta(s_pre_seq, s_post_seq)
        self.apply(dw, lr, clamp)
        return dw

    def __repr__(self) -> str:
        return (f"STDPLearner({type(self.synapse).__name__}, tau_pre={self.tau_pre:g}, tau_post={self.tau_post:g}, "
                f"a_pre={self.a_pre:g}, a_post={self.a_post:g}, reduction={self.reduction})")
