r"""Temporal accumulated batch normalization (TAB).

Jiang, Zoonekynd, De Masi, Gu & Xiong, "TAB: Temporal Accumulated Batch Normalization in
Spiking Neural Networks", ICLR 2024. A neuron's membrane accumulates its inputs over
time, so step :math:`t` is normalized with the statistics of all steps up to it,
:math:`x_{1..t}`, pooled over batch (and space) per channel :math:`c`, and scaled by a
learnable weight per step :math:`p_t` (initialised to 1, as in TEBN):

.. math::
    \mu_{1:t} = \frac{1}{t}\sum_{j=1}^{t} \mu_j, \qquad
    \sigma^2_{1:t} = \frac{1}{t}\sum_{j=1}^{t} \operatorname{mean}_{b,\dots}\,(x_j - \mu_{1:t})^2,

.. math::
    y_t = p_t \left(\gamma_c \frac{x_t - \mu_{1:t}}{\sqrt{\sigma^2_{1:t} + \epsilon}} + \beta_c\right),

with :math:`\mu_j` the mean of step :math:`j` (every step has the same number of
entries, so :math:`\mu_{1:t}, \sigma^2_{1:t}` are the mean and biased variance of the
concatenated steps :math:`1..t`). At :math:`t = T` these are the ``bn`` statistics; at
:math:`t = 1` those of the first step alone. Gradients flow through the accumulated
statistics into every earlier step.

**Running statistics** (our choice where the paper is silent on evaluation): updated once
per sequence with the statistics of the whole sequence, :math:`\mu_{1:T}` and the unbiased
:math:`\sigma^2_{1:T}`, so in eval mode TAB is ``bn`` followed by :math:`p_t` — like
``tebn``, which therefore cannot fold into a conv shared by all steps.

Truncated BPTT: the per-channel sums of the steps before a chunk are carried as the
chunk's state, so a chunk computes the same accumulated statistics as the whole
sequence (the gradient into earlier chunks is cut there). Data-parallel runs sum the
per-step statistics of all processes (:mod:`snntrain.norm.sync`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from .bn import check_bn_args


@register("norm", "tab")
class TemporalAccumulatedBatchNorm(nn.Module):
    r"""TAB (Jiang et al. ICLR 2024): step t normalized by the statistics of steps 1..t, then scaled by :math:`p_t`."""

    batch_statistics = True
    sync_group = None

    #: why it does not fold into the preceding conv (snntrain.norm.fold)
    cannot_fold = (
        "tab scales step t by its own learned p_t (in eval mode it is BN, then p_t), so the folded weight "
        "p_t * W' differs per step and cannot become one conv shared by all steps"
    )

    def __init__(self, num_features: int, T: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        check(T >= 1, "T", f"must be >= 1, got {T}")
        check_bn_args(eps, momentum)
        self.num_features, self.T, self.eps, self.momentum = int(num_features), int(T), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = nn.Parameter(torch.ones(self.num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(self.num_features)) if affine else None
        self.scale = nn.Parameter(torch.ones(self.T))
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_features))
            self.register_buffer("running_var", torch.ones(self.num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def _check(self, x_seq: Tensor, t0: int) -> None:
        if x_seq.dim() < 3 or x_seq.shape[2] != self.num_features or t0 + x_seq.shape[0] > self.T:
            raise ValueError(
                f"TAB was built for T={self.T} time steps and {self.num_features} channels but got input of shape "
                f"{tuple(x_seq.shape)}" + (f" starting at step {t0}" if t0 else "") +
                "; build it with the sequence length you run."
            )

    def forward(self, x_seq: Tensor) -> Tensor:
        self._check(x_seq, 0)
        if x_seq.shape[0] != self.T:
            raise ValueError(f"TAB was built for T={self.T} time steps but got input of shape {tuple(x_seq.shape)}; "
                             f"build it with the sequence length you run.")
        return self._normalize(x_seq, None, 0)[0]

    def forward_chunk(self, x_seq: Tensor, state: tuple[Tensor, ...] | None, t0: int) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Truncated BPTT: ``state`` = (shift, sums of x - shift and of its square) over the steps before ``t0``."""
        self._check(x_seq, t0)
        return self._normalize(x_seq, state, t0)

    def _normalize(self, x_seq: Tensor, state: tuple[Tensor, ...] | None, t0: int) -> tuple[Tensor, tuple[Tensor, ...]]:
        T, C = x_seq.shape[0], self.num_features
        view = [1, -1] + [1] * (x_seq.dim() - 3)  # per channel, broadcast over [B, C, ...]
        if not (self.training or self.running_mean is None):
            y = (x_seq - self.running_mean.view(view)) * torch.rsqrt(self.running_var + self.eps).view(view)
            new_state: tuple[Tensor, ...] = ()
        else:
            dims = [1, *range(3, x_seq.dim())]
            # a constant shift per channel (the variance does not depend on it) keeps the sums accurate
            shift = x_seq.detach().mean(dim=[0, *dims]) if state is None else state[0]
            xs = x_seq - shift.view(view)
            stats = self._all_reduce(torch.cat([xs.sum(dims), (xs * xs).sum(dims)], 1))  # [T, 2C]
            cum = stats.cumsum(0) if state is None else stats.cumsum(0) + torch.cat(state[1:])
            n = x_seq[0].numel() / C * self._world  # entries per step and channel
            count = torch.arange(t0 + 1, t0 + T + 1, device=x_seq.device, dtype=x_seq.dtype).view(-1, 1) * n
            mean_s, sq = cum[:, :C] / count, cum[:, C:] / count  # moments of x - shift over steps 1..t
            var = (sq - mean_s * mean_s).clamp_min(0)
            mean = mean_s + shift
            y = (x_seq - mean.view(T, *view)) * torch.rsqrt(var + self.eps).view(T, *view)
            new_state = (shift, cum[-1, :C], cum[-1, C:])
            if self.training and self.running_mean is not None and t0 + T == self.T:  # once per sequence
                with torch.no_grad():
                    total = float(count[-1, 0])
                    factor = self._factor()
                    self.running_mean.mul_(1 - factor).add_(mean[-1], alpha=factor)
                    self.running_var.mul_(1 - factor).add_(var[-1] * total / max(total - 1, 1), alpha=factor)
        if self.weight is not None:
            y = y * self.weight.view(view) + self.bias.view(view)
        return y * self.scale[t0 : t0 + T].view(-1, *([1] * (x_seq.dim() - 1))), new_state

    _world = 1

    def _all_reduce(self, stats: Tensor) -> Tensor:
        """The per-step sums over all processes of a data-parallel run (autograd-aware), and their count."""
        if self.sync_group is None or not self.training:
            self._world = 1
            return stats
        import torch.distributed as dist
        from torch.distributed.nn.functional import all_reduce

        self._world = dist.get_world_size(self.sync_group)
        return all_reduce(stats, group=self.sync_group)

    def _factor(self) -> float:
        self.num_batches_tracked.add_(1)
        return 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum

    def extra_repr(self) -> str:
        return f"{self.num_features}, T={self.T}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
