r"""Multi-step batch normalization and the ``none`` placeholder.

``bn``: one BatchNorm over the flattened time and batch axes. For input
:math:`x \in \mathbb{R}^{T \times B \times C \times \dots}`, per channel :math:`c`,

.. math:: \mu_c = \operatorname{mean}_{t,b,\dots} x, \quad
          \sigma^2_c = \operatorname{var}_{t,b,\dots} x, \quad
          y = \gamma_c \frac{x - \mu_c}{\sqrt{\sigma^2_c + \epsilon}} + \beta_c

(Ioffe & Szegedy, ICML 2015, applied to the ``[T*B, C, ...]`` view). Works for 1d
(``[T, B, C]`` or ``[T, B, C, L]``), 2d and 3d inputs. Equals SpikingJelly's
``layer.BatchNorm{1,2,3}d(step_mode='m')``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import check
from ..registry import register
from .sync import batch_norm, momentum_factor


def check_bn_args(eps: float, momentum: float | None) -> None:
    """The argument checks every batch-norm variant shares."""
    check(eps > 0, "eps", f"must be > 0, got {eps}")
    check(momentum is None or 0 <= momentum <= 1, "momentum", f"must be in [0, 1] or null, got {momentum}")


def bn_cannot_fold(bn: _BatchNorm) -> str | None:
    """Why an eval-mode BN is no fixed affine map, or None (see :mod:`snntrain.norm.fold`)."""
    if bn.running_mean is None:
        return (
            f"{type(bn).__name__} has no running statistics (track_running_stats=False), so it "
            f"normalizes with batch statistics in eval mode too: nothing fixed to fold"
        )
    return None


def bn_fold_affine(bn: _BatchNorm) -> tuple[Tensor, Tensor]:
    r"""Eval-mode BN as :math:`y_c = s_c z_c + t_c`: :math:`s = \gamma / \sqrt{\hat\sigma^2 + \epsilon}`, :math:`t = \beta - s\hat\mu`.

    Uses the running statistics whatever the module's mode (differentiable in
    :math:`\gamma, \beta`).
    """
    s = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        s = bn.weight * s
    shift = -bn.running_mean * s
    if bn.bias is not None:
        shift = bn.bias + shift
    return s, shift


class SeqBatchNorm(_BatchNorm):
    """BatchNorm over ``[T*B, C, ...]``; the base of ``bn``, ``tdbn`` and ``tebn``.

    ``sync_group`` (set by :func:`snntrain.norm.sync.sync_norms`) takes the statistics over
    all processes of a data-parallel run.

    Folding (:mod:`snntrain.norm.fold`): in eval mode this is one affine map per channel,
    shared by all steps and samples (:meth:`fold_affine`); ``cannot_fold`` says why not
    when there are no running statistics. A subclass that changes ``forward`` must
    declare its own case (``tebn`` sets ``cannot_fold``).
    """

    batch_statistics = True
    sync_group = None

    cannot_fold = property(bn_cannot_fold)
    fold_affine = bn_fold_affine

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        check_bn_args(eps, momentum)
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"{type(self).__name__} expects [T*B, C, ...], got {tuple(x.shape)}")

    def forward(self, x_seq: Tensor) -> Tensor:  # type: ignore[override]
        if x_seq.dim() < 3:
            raise ValueError(f"{type(self).__name__} expects [T, B, C, ...], got {tuple(x_seq.shape)}")
        use_batch = self.training or self.running_mean is None
        factor = momentum_factor(self)
        y = batch_norm(x_seq.flatten(0, 1), self.running_mean if not self.training or self.track_running_stats else None,
                       self.running_var if not self.training or self.track_running_stats else None, self.weight,
                       self.bias, use_batch, factor, self.eps, self.sync_group)
        return y.view(x_seq.shape)


@register("norm", "bn")
class BatchNorm(SeqBatchNorm):
    r"""BN over T·B(·spatial) per channel: :math:`y = \gamma_c (x - \mu_c) / \sqrt{\sigma_c^2 + \epsilon} + \beta_c` (Ioffe & Szegedy 2015)."""


@register("norm", "none")
class NoNorm(nn.Identity):
    """No normalization (identity)."""

    batch_statistics = False

    def fold_affine(self) -> None:
        """The identity: :func:`~snntrain.norm.fold.fold_model` drops it and leaves the synapse as it is."""
