r"""Batch statistics over every process of a data-parallel run, for every norm that has them.

A batch-norm variant differs from the others only in *which* entries share a
statistic: ``bn``/``tdbn``/``tebn`` normalise ``[T*B, C, ...]`` per channel, ``bntt``
moves T into the channel axis (``[B, T*C, ...]``) so each (step, channel) pair has its
own. Each of them ends in one call of :func:`batch_norm` on that view, so synchronising
it there keeps every variant's semantics. With ``group`` set and in training, the
per-channel mean and variance are taken over the union of all processes' batches (two
passes, each an autograd-aware ``all_reduce``):

.. math:: \mu_c = \frac{\sum_r \sum_{i \in r} x_{ic}}{\sum_r n_r}, \qquad
          \sigma^2_c = \frac{\sum_r \sum_{i \in r} (x_{ic} - \mu_c)^2}{\sum_r n_r}

— exactly the statistics one process would compute on the whole global batch — and the
running averages get the unbiased :math:`\sigma^2_c \cdot n / (n - 1)`, as
``torch.nn.functional.batch_norm`` does (Ioffe & Szegedy 2015; the same synchronisation
as ``torch.nn.SyncBatchNorm``, which replaces the module instead and so would drop the
variants' own reshaping). Without ``group`` (or in eval mode) it is
``torch.nn.functional.batch_norm``.

A norm *declares* whether it has batch statistics with the class attribute
``batch_statistics``; :func:`sync_norms` sets ``sync_group`` on those that do and
refuses a batch-norm module that does not declare it, rather than leaving it
unsynchronised.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import ConfigError


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None,
               bias: Tensor | None, training: bool, momentum: float, eps: float, group: Any = None) -> Tensor:
    """``F.batch_norm`` on ``[N, C, ...]``; with ``group`` (training only) the statistics span all its processes."""
    if group is None or not training:
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    from torch.distributed.nn.functional import all_reduce  # an all-reduce that back-propagates

    x = x.float()  # statistics in fp32 under autocast too, as autocast runs F.batch_norm
    dims = [0, *range(2, x.dim())]
    shape = [1, -1] + [1] * (x.dim() - 2)
    count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
    total = all_reduce(torch.cat([x.sum(dims), count]), group=group)
    n = total[-1]
    mean = total[:-1] / n
    centered = x - mean.view(shape)
    var = all_reduce((centered * centered).sum(dims), group=group) / n
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            running_var.mul_(1 - momentum).add_(var.detach() * (n / (n - 1)).clamp_min(0), alpha=momentum)
    y = centered * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y


def momentum_factor(module: nn.Module) -> float:
    """The running-average factor of this training step (``momentum``, or 1/batches seen for ``momentum=None``);
    counts the batch, as ``torch.nn.modules.batchnorm._BatchNorm.forward`` does."""
    if not (module.training and module.track_running_stats):
        return 0.0
    module.num_batches_tracked.add_(1)
    return 1.0 / float(module.num_batches_tracked) if module.momentum is None else module.momentum


def sync_norms(model: nn.Module, group: Any) -> list[str]:
    """Synchronise the batch statistics of every norm in ``model`` over ``group``; the synced module names."""
    synced = []
    for name, m in model.named_modules():
        declared = getattr(type(m), "batch_statistics", None)
        if declared:
            m.sync_group = group
            synced.append(name)
        elif declared is None and isinstance(m, (_BatchNorm, nn.modules.batchnorm._NormBase)):
            raise ConfigError(
                f"trainer.sync_norm: {name} ({type(m).__name__}) computes batch statistics but does not declare how "
                f"to synchronise them (the class attribute batch_statistics and a call of "
                f"snntrain.norm.sync.batch_norm); set trainer.sync_norm=false or use a snntrain norm."
            )
    return synced
