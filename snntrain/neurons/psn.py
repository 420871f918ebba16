r"""Parallel spiking neurons (PSN): all T steps at once, no loop over time, no reset.

Fang et al., "Parallel Spiking Neurons with High Efficiency and Long-term Dependencies
Learning Ability", NeurIPS 2023 (arXiv:2304.12760). Dropping the reset from a charge-fire
neuron makes its membrane a linear function of the inputs of all steps; PSN learns that
function. For the inputs of all steps :math:`X \in \mathbb{R}^{T \times N}` (N = batch x
features),

.. math:: H = W X + B, \qquad S = \Theta(H), \qquad W \in \mathbb{R}^{T \times T},\ B \in \mathbb{R}^{T}

(:math:`B_t` plays the part of :math:`-V_{th}`; ``variant=full``, non-causal: step
:math:`t` sees later inputs too). The causal variants (``variant``):

* ``masked`` (masked PSN, order :math:`k`): :math:`H = (W \odot M_k(\lambda)) X + B` with
  the band mask :math:`M_k[i][j] = 1` for :math:`j \le i \le j + k - 1`, else 0, and
  :math:`M_k(\lambda) = \lambda M_k + (1 - \lambda) J` (:math:`J` all ones), so
  :math:`\lambda` moves from the full to the masked neuron during training (the paper's
  progressive masking; set ``neuron.lambda_`` from a callback; ``lambda_init`` starts it).
  Causal (and streamable) at :math:`\lambda = 1`.
* ``sliding`` (sliding PSN, order :math:`k`): one weight vector :math:`w \in \mathbb{R}^k`
  shared by all steps, :math:`H_t = \sum_{i=0}^{k-1} w_i X_{t-k+1+i} + b`, for any T;
  ``exp_init`` starts :math:`w = (\dots, 1/4, 1/2, 1)`, else Kaiming-uniform.

Initialisation as the paper's code: :math:`W` Kaiming-uniform (:math:`a=\sqrt5`), :math:`B = -1`
(a threshold of 1). Equals SpikingJelly's ``PSN``, ``MaskedPSN`` and ``SlidingPSN``
(multi-step). There is no loop over T, so the neuron runs on the ``torch`` backend only
(one matrix product per sequence). ``full`` and ``masked`` are built for a fixed T (the
model's; another length is an error); the causal forms also stream with
``step(x, state)``, the state being the inputs seen so far.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from ..surrogates import Surrogate, spike
from .base import SpikingNeuron

Variant = Literal["full", "masked", "sliding"]


@register("neuron", "psn")
class PSN(SpikingNeuron):
    r"""Parallel spiking neuron (Fang et al. NeurIPS 2023): :math:`S = \Theta(WX + B)` over all T steps at once; ``variant`` full, masked or sliding."""

    supported_backends: ClassVar[tuple[str, ...]] = ("torch",)
    fixed_options: ClassVar[dict[str, Any]] = {
        "threshold": 1.0, "learn_threshold": False, "reset": "none", "v_reset": 0.0, "detach_reset": False,
        "reset_delay": False, "inhibition": False, "backend": "torch", "grad_storage": "exact",
    }
    state_names = ("inputs",)

    def __init__(self, T: int | None = None, variant: Variant = "full", k: int = 2, lambda_init: float = 1.0,
                 exp_init: bool = True, surrogate: Surrogate | None = None, **options: Any):
        super().__init__(surrogate, **options)
        check(variant in ("full", "masked", "sliding"), "variant", f"must be full, masked or sliding, got {variant!r}")
        check(k >= 1, "k", f"must be >= 1, got {k}")
        check(0 <= lambda_init <= 1, "lambda_init", f"must be in [0, 1], got {lambda_init}")
        self.variant, self.k = variant, int(k)
        self.T = None if T is None else int(T)
        if variant == "sliding":
            if exp_init:
                w = 0.5 ** torch.arange(self.k - 1, -1, -1, dtype=torch.get_default_dtype())
            else:
                w = torch.ones(1, self.k)
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                w = w[0]
            self.weight = nn.Parameter(w)
            self.bias = nn.Parameter(torch.tensor(-1.0))
            return
        check(self.T is not None and self.T >= 1, "T", f"the {variant} PSN needs the sequence length T (>= 1); "
              "build it inside a model, which passes T")
        check(variant == "full" or k <= self.T, "k", f"must be <= T={self.T}, got {k}")
        self.weight = nn.Parameter(torch.empty(self.T, self.T))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.full((self.T, 1), -1.0))
        if variant == "masked":
            ones = torch.ones(self.T, self.T)
            self.register_buffer("mask", torch.tril(ones) * torch.triu(ones, -(self.k - 1)))
            self.register_buffer("_lambda", torch.tensor(float(lambda_init)))

    # ------------------------------------------------------------------ the weights
    @property
    def lambda_(self) -> Tensor:
        """The masked PSN's :math:`\\lambda` (set it during training for progressive masking)."""
        return self._lambda

    @lambda_.setter
    def lambda_(self, value: float) -> None:
        check(0 <= value <= 1, "lambda_", f"must be in [0, 1], got {value}")
        self._lambda.fill_(value)

    def gemm_weight(self, T: int) -> Tensor:
        """The effective :math:`T \\times T` matrix of this neuron for a sequence of T steps."""
        if self.variant == "full":
            return self.weight
        if self.variant == "masked":
            if self._lambda >= 1.0:
                return self.weight * self.mask
            return (self._lambda * self.mask + (1.0 - self._lambda)) * self.weight
        rows = []
        for i in range(T):  # row i: the last min(i+1, k) weights on steps i-k+1 .. i
            n = min(i + 1, self.k)
            rows.append(torch.cat([self.weight.new_zeros(i + 1 - n), self.weight[self.k - n :],
                                   self.weight.new_zeros(T - i - 1)]))
        return torch.stack(rows)

    def _bias(self, T: int) -> Tensor:
        return self.bias if self.variant != "sliding" else self.bias.expand(T, 1)

    @property
    def causal(self) -> bool:
        """Whether step t depends only on steps <= t (then ``step`` streams)."""
        return self.variant == "sliding" or (self.variant == "masked" and bool(self._lambda >= 1.0))

    # ------------------------------------------------------------------ running
    def _fire(self, h: Tensor) -> Tensor:
        derivative, args = self.surrogate.spec()
        return spike(h, derivative, args)

    def _check_T(self, T: int) -> None:
        if self.variant != "sliding" and T != self.T:
            raise ValueError(f"the {self.variant} PSN was built for T={self.T} time steps but got {T}; "
                             f"build it with the sequence length you run")

    def forward(self, x_seq: Tensor, return_state: bool = False):
        if x_seq.dim() < 2:
            raise ValueError(f"PSN expects a sequence [T, B, ...], got shape {tuple(x_seq.shape)}")
        T = x_seq.shape[0]
        self._check_T(T)
        h = torch.addmm(self._bias(T), self.gemm_weight(T), x_seq.flatten(1)).view(x_seq.shape)
        out = self.emit(self._fire(h))
        traces = {"mem": h}
        if self.recorder is not None:
            self.recorder.update(traces)
        return (out, traces) if return_state else out

    def step(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step of a causal PSN; ``state`` holds the inputs of the steps before (None: none)."""
        if not self.causal:
            raise ValueError(f"the {self.variant} PSN" + (" with lambda_ < 1" if self.variant == "masked" else "") +
                             " sees later steps, so it cannot run step by step; use variant=masked with lambda_=1 or sliding")
        seen = x[None] if state is None else torch.cat([state, x[None]])
        t = seen.shape[0] - 1
        if self.variant == "masked" and t >= self.T:
            raise ValueError(f"the masked PSN was built for T={self.T} time steps; this is step {t + 1}")
        if self.variant == "sliding":  # step t weighs the last min(t+1, k) inputs
            n = min(t + 1, self.k)
            h = (self.weight[self.k - n :].view(-1, *([1] * x.dim())) * seen[t + 1 - n :]).sum(0) + self.bias
        else:
            row = self.gemm_weight(self.T)[t, : t + 1]
            h = (row.view(-1, *([1] * x.dim())) * seen).sum(0) + self.bias[t]
        keep = seen[seen.shape[0] - (self.k - 1):] if self.variant == "sliding" and t + 1 >= self.k else seen
        return self.emit(self._fire(h)), keep

    def forward_chunk(self, x_seq: Tensor, state: Tensor | None, t0: int = 0) -> tuple[Tensor, Tensor]:
        """Truncated BPTT (causal variants): the chunk's steps, given the inputs before it."""
        from ..backends.loop import scan  # the one loop over T (imported on first use, as the base class does)

        return scan(self.step, state, x_seq)[:2]

    def extra_repr(self) -> str:
        extra = "" if self.variant == "full" else f", k={self.k}"
        if self.variant == "masked":
            extra += f", lambda_={float(self._lambda):g}"
        return f"variant={self.variant}, T={self.T}" + extra
