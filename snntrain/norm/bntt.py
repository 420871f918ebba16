r"""Batch normalization through time (BNTT).

Kim & Panda, "Revisiting Batch Normalization for Training Low-Latency Deep Spiking
Neural Networks From Scratch", Frontiers in Neuroscience 2021 (arXiv:2010.01729).
Every time step :math:`t` has its own BN: own statistics, own running averages, own
scale :math:`\gamma^t_c`, and no shift (the paper and snnTorch's ``BatchNormTT`` set
``bias = None``):

.. math:: y_t = \gamma^t_c \frac{x_t - \mu^t_c}{\sqrt{(\sigma^t_c)^2 + \epsilon}},
          \qquad \mu^t_c, \sigma^t_c \text{ over batch (and space) at step } t

Equals T separate ``nn.BatchNorm`` layers (snnTorch's ``BatchNormTT{1,2}d``,
SpikingJelly's ``BatchNormThroughTime{1,2,3}d``). Computed in one call: moving T into
the channel axis (``[B, T*C, ...]``) gives each (t, c) pair its own statistics.
T is fixed at construction; a sequence of another length is an error. SpikingJelly's
BNTT instead keeps a step counter between calls that must be reset by hand (without
``reset_net`` its second sequence fails with an IndexError, and a shorter sequence
silently uses only the first BNs); ours indexes by position in the sequence.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from .bn import check_bn_args
from .sync import batch_norm, momentum_factor


@register("norm", "bntt")
class BatchNormThroughTime(nn.Module):
    r"""BNTT (Kim & Panda 2021): per-step statistics and scale, no shift: :math:`y_t = \gamma^t_c (x_t - \mu^t_c) / \sqrt{(\sigma^t_c)^2 + \epsilon}`."""

    def __init__(
        self,
        num_features: int,
        T: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        check(T >= 1, "T", f"must be >= 1, got {T}")
        check_bn_args(eps, momentum)
        self.num_features, self.T, self.eps, self.momentum = int(num_features), int(T), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = nn.Parameter(torch.ones(self.T, self.num_features)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.T, self.num_features))
            self.register_buffer("running_var", torch.ones(self.T, self.num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    batch_statistics = True  # per (step, channel); synchronised by snntrain.norm.sync

    #: why it does not fold into the preceding conv (snntrain.norm.fold)
    cannot_fold = (
        "bntt keeps its own running statistics and scale for every time step t, but the conv is shared "
        "by all steps: folding would need one conv per step"
    )
    sync_group = None

    def forward(self, x_seq: Tensor) -> Tensor:
        if x_seq.dim() < 3 or x_seq.shape[0] != self.T:
            raise ValueError(
                f"BNTT was built for T={self.T} time steps but got input of shape {tuple(x_seq.shape)}; "
                f"build it with the sequence length you run."
            )
        return self._normalize(x_seq, 0)

    def forward_chunk(self, x_seq: Tensor, state: None, t0: int) -> tuple[Tensor, None]:
        """Truncated BPTT: steps ``t0 ..`` of a sequence use the statistics and scales of those steps."""
        if x_seq.dim() < 3 or t0 + x_seq.shape[0] > self.T:
            raise ValueError(
                f"BNTT was built for T={self.T} time steps but a chunk of shape {tuple(x_seq.shape)} starts at "
                f"step {t0}; build it with the sequence length you run."
            )
        return self._normalize(x_seq, t0), None

    def _normalize(self, x_seq: Tensor, t0: int) -> Tensor:
        T, B, C = x_seq.shape[:3]
        steps = slice(t0, t0 + T)
        if t0 == 0:  # the first chunk counts the batch
            factor = momentum_factor(self)
        elif self.training and self.track_running_stats:
            factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        else:
            factor = 0.0
        use_batch_stats = self.training or not self.track_running_stats
        x = x_seq.transpose(0, 1).reshape(B, T * C, *x_seq.shape[3:])
        y = batch_norm(
            x,
            None if self.running_mean is None else self.running_mean[steps].view(-1),
            None if self.running_var is None else self.running_var[steps].view(-1),
            None if self.weight is None else self.weight[steps].reshape(-1),
            None,
            use_batch_stats,
            factor,
            self.eps,
            self.sync_group,
        )
        return y.view(B, T, C, *x_seq.shape[3:]).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, T={self.T}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
