r"""Temporal effective batch normalization (TEBN).

Duan et al., "Temporal Effective Batch Normalization in Spiking Neural Networks",
NeurIPS 2022. Statistics are pooled over time and batch like ``bn``; each time step's
output then gets its own learnable scale :math:`p_t` (initialised to 1):

.. math:: y_t = p_t \left(\gamma_c \frac{x_t - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c\right)

Equals SpikingJelly's ``TemporalEffectiveBatchNorm{1,2,3}d`` (its ``scale`` is our
``scale``). T is fixed at construction; a sequence of another length is an error.
We differ from SpikingJelly 2.0 on purpose there: its TEBN does not check T, so a wrong
T gives a broadcasting error, and a TEBN built with T=1 silently accepts any T.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from .bn import SeqBatchNorm


@register("norm", "tebn")
class TemporalEffectiveBatchNorm(SeqBatchNorm):
    r"""TEBN (Duan et al. 2022): BN over T·B per channel, then a learnable scale per step: :math:`y_t = p_t\,\mathrm{BN}(x)_t`."""

    def __init__(
        self,
        num_features: int,
        T: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        check(T >= 1, "T", f"must be >= 1, got {T}")
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.T = int(T)
        self.scale = nn.Parameter(torch.ones(self.T))

    #: folding (snntrain.norm.fold): overrides SeqBatchNorm's per-channel affine map
    cannot_fold = (
        "tebn scales step t by its own learned p_t (in eval mode it is BN, then p_t), so the folded weight "
        "p_t * W' differs per step and cannot become one conv shared by all steps"
    )

    def forward(self, x_seq: Tensor) -> Tensor:  # type: ignore[override]
        if x_seq.dim() < 3 or x_seq.shape[0] != self.T:
            raise ValueError(
                f"TEBN was built for T={self.T} time steps but got input of shape {tuple(x_seq.shape)}; "
                f"build it with the sequence length you run."
            )
        y = super().forward(x_seq)
        return y * self.scale.view(-1, *([1] * (y.dim() - 1)))

    def forward_chunk(self, x_seq: Tensor, state: None, t0: int) -> tuple[Tensor, None]:
        """Truncated BPTT: statistics over the chunk, the scales :math:`p_{t_0..}` of its steps."""
        if x_seq.dim() < 3 or t0 + x_seq.shape[0] > self.T:
            raise ValueError(
                f"TEBN was built for T={self.T} time steps but a chunk of shape {tuple(x_seq.shape)} starts at "
                f"step {t0}; build it with the sequence length you run."
            )
        y = super().forward(x_seq)
        return y * self.scale[t0 : t0 + x_seq.shape[0]].view(-1, *([1] * (y.dim() - 1))), None

    def extra_repr(self) -> str:
        return super().extra_repr() + f", T={self.T}"
