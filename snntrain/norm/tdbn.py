r"""Threshold-dependent batch normalization (tdBN).

Zheng et al., "Going Deeper With Directly-Trained Larger Spiking Neural Networks",
AAAI 2021. Statistics are pooled over time, batch and space per channel, and the
normalized pre-activation is scaled to the firing threshold:

.. math:: y = \lambda_c \frac{\alpha V_{th} (x - \mu_c)}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c

implemented as BN over ``[T*B, C, ...]`` whose weight :math:`\gamma_c = \lambda_c \alpha
V_{th}` is *initialised* to :math:`\alpha V_{th}` (and :math:`\beta_c` to 0), as in
the paper's code and SpikingJelly's ``ThresholdDependentBatchNorm{1,2,3}d``.
:math:`V_{th}` is the threshold of the neuron that follows; :math:`\alpha = 1` on a
plain path and :math:`1/\sqrt{2}` on residual branches that get summed.

In eval mode it folds into the preceding conv exactly as ``bn`` does (the inherited
``fold_affine``): :math:`\gamma_c` already holds :math:`\lambda_c \alpha V_{th}`.
"""
from __future__ import annotations

from torch import nn

from ..errors import check
from ..registry import register
from .bn import SeqBatchNorm


@register("norm", "tdbn")
class ThresholdDependentBatchNorm(SeqBatchNorm):
    r"""tdBN (Zheng et al. 2021): BN over T·B(·H·W) per channel, weight initialised to :math:`\alpha V_{th}`, bias to 0."""

    def __init__(
        self,
        num_features: int,
        v_th: float = 1.0,
        alpha: float = 1.0,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        track_running_stats: bool = True,
    ):
        check(alpha > 0, "alpha", f"must be > 0, got {alpha}")
        super().__init__(num_features, eps, momentum, True, track_running_stats)
        self.alpha = float(alpha)
        self.v_th = float(v_th)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()  # also runs inside _BatchNorm.__init__, before alpha exists
        if hasattr(self, "alpha"):
            nn.init.constant_(self.weight, self.alpha * self.v_th)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", alpha={self.alpha}, v_th={self.v_th}"
