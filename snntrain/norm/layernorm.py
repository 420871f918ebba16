r"""Layer normalization at every time step.

Ba, Kiros & Hinton, "Layer Normalization", arXiv:1607.06450 (2016). Each sample is
normalized by the statistics of its own features, separately at every time step: for
:math:`x_{t,b} \in \mathbb{R}^{C \times \dots}` (the per-step shape ``(C, *spatial)``
with :math:`N = C \cdot \prod \text{spatial}` elements),

.. math:: \mu_{t,b} = \frac{1}{N} \sum_i x_{t,b,i}, \qquad
          \sigma^2_{t,b} = \frac{1}{N} \sum_i (x_{t,b,i} - \mu_{t,b})^2, \qquad
          y_{t,b,i} = \gamma_i \frac{x_{t,b,i} - \mu_{t,b}}{\sqrt{\sigma^2_{t,b} + \epsilon}} + \beta_i

with the biased variance and, if ``elementwise_affine``, one learnable :math:`\gamma_i`
(init 1) and :math:`\beta_i` (init 0) per element of the per-step shape, shared by all
steps and samples. Nothing is pooled over time or batch, so there are no running
statistics, train and eval mode compute the same thing, and any T works.

Equals ``torch.nn.LayerNorm(shape)`` applied to every step ``x[t]`` (and SpikingJelly's
``layer.SeqToANNContainer(nn.LayerNorm(shape))``; SpikingJelly 2.0.0 has no LayerNorm
wrapper of its own). With :math:`\gamma, \beta` constant over space it also equals
``GroupNorm(1, C)``. Works for 1d (``[T, B, C]`` or ``[T, B, C, L]``), 2d and 3d inputs.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..errors import check
from ..registry import register


@register("norm", "layernorm")
class LayerNorm(nn.LayerNorm):
    r"""LayerNorm (Ba et al. 2016) per sample and time step over C and the spatial axes: :math:`y = \gamma (x - \mu_{t,b}) / \sqrt{\sigma_{t,b}^2 + \epsilon} + \beta`."""

    batch_statistics = False  # per-sample statistics: nothing to synchronise across processes

    #: why it does not fold into the preceding conv (snntrain.norm.fold)
    cannot_fold = (
        "layernorm normalizes every sample at every step by that sample's own mean and variance, "
        "which depend on the input: no fixed conv weights reproduce it"
    )

    def __init__(self, shape: tuple[int, ...] | list[int], eps: float = 1e-5, elementwise_affine: bool = True):
        check(eps > 0, "eps", f"must be > 0, got {eps}")
        shape = tuple(int(s) for s in shape)
        super().__init__(shape, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x_seq: Tensor) -> Tensor:  # type: ignore[override]
        n = len(self.normalized_shape)
        if x_seq.dim() != n + 2 or tuple(x_seq.shape[2:]) != tuple(self.normalized_shape):
            raise ValueError(
                f"layernorm was built for per-step shape {tuple(self.normalized_shape)} and expects "
                f"[T, B, {', '.join(map(str, self.normalized_shape))}], got {tuple(x_seq.shape)}"
            )
        # nn.LayerNorm normalizes over the trailing len(shape) axes: per (t, b) here
        return super().forward(x_seq)
