r"""Membrane potential batch normalization (MPBN).

Guo et al., "Membrane Potential Batch Normalization for Spiking Neural Networks", ICCV
2023 (arXiv:2308.08359). The pre-activation is normalized as with ``bn``; then, inside
every neuron, the *charged membrane* is normalized again before it fires:

.. math::
    H_t = \lambda V_{t-1} + \mathrm{BN}(W * S^{l-1})_t, \qquad
    \tilde H_t = \mathrm{BN}_{m}(H_t) = \gamma^m_c \frac{H_t - \mu^m_{t,c}}{\sqrt{(\sigma^m_{t,c})^2 + \epsilon}} + \beta^m_c,

.. math::
    S_t = \Theta(\tilde H_t - V_{th}), \qquad V_t = \mathrm{reset}(\tilde H_t, S_t),

where :math:`\mu^m_{t,c}, \sigma^m_{t,c}` are the statistics of step :math:`t`'s
membrane over the batch (and space) of channel :math:`c`, and the membrane BN's
parameters and running averages are shared by all steps (its running statistics are
updated once per step, T times per sequence). As in SpikingJelly's
``MPBNLIFNode`` (which this equals: forward, gradients, running statistics, eval),
the normalized membrane is what is reset and carried to the next step.

**Where it sits.** ``norm=mpbn`` gives every synapse a ``bn`` (:class:`MembranePotentialBatchNorm`,
which folds into the conv like ``bn``) and every neuron of the model a membrane BN
(:class:`MembraneBN`), attached by :func:`snntrain.models.make_factories` as the neuron's
``state_quant`` hook (the function applied to the membrane after charging, before
firing), because the norm declares :meth:`MembranePotentialBatchNorm.attach`. A neuron
with such a hook runs on the ``torch`` backend.

**Inference.** In eval mode :math:`\mathrm{BN}_m(H) = sH + b` with
:math:`s = \gamma^m/\sqrt{\hat\sigma^2+\epsilon}`, :math:`b = \beta^m - s\hat\mu`, so
(for :math:`\gamma^m > 0`) the firing decision is :math:`H > \tilde V_{th}` with the
per-channel threshold of the paper's re-parameterization

.. math:: \tilde V_{th,c} = \frac{(V_{th} - \beta^m_c)\sqrt{\hat\sigma^2_c + \epsilon}}{\gamma^m_c} + \hat\mu_c

(:meth:`MembraneBN.folded_threshold`). Because the normalized membrane is also what is
carried, the affine map stays in the membrane update; the pre-activation BN folds into
the conv (:mod:`snntrain.norm.fold`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import ConfigError, ParamError
from ..registry import register
from .bn import SeqBatchNorm, bn_cannot_fold, bn_fold_affine, check_bn_args
from .sync import batch_norm, momentum_factor


class MembraneBN(_BatchNorm):
    """BN of one step's membrane ``[B, C, ...]``, per channel; the running statistics are updated on every call."""

    batch_statistics = True  # synchronised by snntrain.norm.sync
    sync_group = None
    cannot_fold = property(bn_cannot_fold)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True):
        check_bn_args(eps, momentum)
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def _check_input_dim(self, x: Tensor) -> None:  # pragma: no cover - forward checks
        pass

    def forward(self, h: Tensor) -> Tensor:  # type: ignore[override]
        if h.dim() < 2 or h.shape[1] != self.num_features:
            raise ValueError(f"MembraneBN({self.num_features}) expects one step [B, {self.num_features}, ...], "
                             f"got {tuple(h.shape)}")
        track = not self.training or self.track_running_stats
        return batch_norm(h, self.running_mean if track else None, self.running_var if track else None,
                          self.weight, self.bias, self.training or self.running_mean is None,
                          momentum_factor(self), self.eps, self.sync_group)

    def folded_threshold(self, v_th: float | Tensor) -> Tensor:
        r"""The per-channel :math:`\tilde V_{th} = (V_{th} - \beta)\sqrt{\hat\sigma^2+\epsilon}/\gamma + \hat\mu` (eval mode; :math:`\gamma > 0`)."""
        why = bn_cannot_fold(self)
        if why is not None:
            raise ValueError(f"MembraneBN: {why}")
        s, b = bn_fold_affine(self)
        if (s <= 0).any():
            raise ValueError("MembraneBN.folded_threshold: a channel has gamma <= 0, so H > V~ is not the firing rule there")
        return (torch.as_tensor(v_th, dtype=s.dtype, device=s.device) - b) / s


@register("norm", "mpbn")
class MembranePotentialBatchNorm(SeqBatchNorm):
    r"""MPBN (Guo et al. ICCV 2023): ``bn`` on the pre-activation, and a BN of the charged membrane in every neuron: :math:`S_t = \Theta(\mathrm{BN}_m(H_t) - V_{th})`."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    #: folds into the preceding conv like bn (snntrain.norm.fold); the membrane BN stays in the neuron
    cannot_fold = property(bn_cannot_fold)
    fold_affine = bn_fold_affine

    @staticmethod
    def attach(neuron: nn.Module, shape: tuple[int, ...], eps: float = 1e-5, momentum: float | None = 0.1,
               affine: bool = True, track_running_stats: bool = True, **_: Any) -> nn.Module:
        """Give ``neuron`` a membrane BN over ``shape[0]`` channels (its ``membrane_bn``, applied as ``state_quant``)."""
        try:
            bn = MembraneBN(shape[0], eps, momentum, affine, track_running_stats)
        except ParamError as err:  # built by the model factories, not by the registry: name the config key here
            raise ConfigError(f"norm.{err.param}: {err.message}. Fix it on the command line (norm.{err.param}=...) "
                              f"or in the norm config file.") from None
        neuron.membrane_bn = bn
        neuron.state_quant = bn.__call__  # a bound method: the BN is registered once, as membrane_bn
        return neuron
