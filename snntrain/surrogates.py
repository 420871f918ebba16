r"""Surrogate gradients for the spike non-linearity.

The forward pass of every surrogate is the Heaviside step
:math:`S = \Theta(x) = 1` if :math:`x \ge 0` else :math:`0`, applied to
:math:`x = H - V_{th}`. The backward pass replaces :math:`\Theta'` (zero almost
everywhere) by the derivative :math:`g'(x)` of a smooth stand-in :math:`g`
(Neftci, Mostafa & Zenke, "Surrogate Gradient Learning in Spiking Neural Networks",
IEEE SPM 2019). Each class states its :math:`g'` and default width; ``grad(x)`` is that
closed form, and the autograd backward uses exactly it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .errors import check
from .registry import register


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, surrogate: "Surrogate") -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.grad(x), None


class Surrogate(nn.Module):
    """Base class: forward is Heaviside, backward is ``grad(x)``.

    A user-defined surrogate subclasses this, implements ``grad``, and registers itself
    with ``@register("surrogate", "<name>")`` so configs can select it.
    """

    def grad(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return _SpikeFn.apply(x, self)


@register("surrogate", "atan")
class ATan(Surrogate):
    r"""Arc-tangent: :math:`g'(x) = \frac{\alpha/2}{1 + (\frac{\pi}{2}\alpha x)^2}`, default alpha=2.

    :math:`g(x) = \frac{1}{\pi}\arctan(\frac{\pi}{2}\alpha x) + \frac12`
    (Fang et al., "Incorporating Learnable Membrane Time Constant...", ICCV 2021).
    Same as ``spikingjelly.surrogate.ATan(alpha)`` and ``snntorch.surrogate.atan(alpha)``.
    """

    def __init__(self, alpha: float = 2.0):
        super().__init__()
        check(alpha > 0, "alpha", f"must be > 0, got {alpha}")
        self.alpha = float(alpha)

    def grad(self, x: Tensor) -> Tensor:
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x) ** 2)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


@register("surrogate", "sigmoid")
class Sigmoid(Surrogate):
    r"""Logistic: :math:`g'(x) = \alpha\,\sigma(\alpha x)(1 - \sigma(\alpha x))`, default alpha=4.

    :math:`g(x) = \sigma(\alpha x)`. Same as ``spikingjelly.surrogate.Sigmoid(alpha)``;
    snnTorch's ``surrogate.sigmoid(slope)`` is the same function with ``slope = alpha``
    (its default slope is 25).
    """

    def __init__(self, alpha: float = 4.0):
        super().__init__()
        check(alpha > 0, "alpha", f"must be > 0, got {alpha}")
        self.alpha = float(alpha)

    def grad(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.alpha * x)
        return self.alpha * s * (1 - s)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


@register("surrogate", "triangle")
class Triangle(Surrogate):
    r"""Triangle: :math:`g'(x) = \max(0,\ w - |x|) / w^2`, default width w=1 (area 1, peak 1/w).

    The piecewise-linear pseudo-derivative of Esser et al. (PNAS 2016) and Bellec et al.
    ("Long short-term memory and learning-to-learn in networks of spiking neurons",
    NeurIPS 2018), normalised so that it integrates to one.
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        check(width > 0, "width", f"must be > 0, got {width}")
        self.width = float(width)

    def grad(self, x: Tensor) -> Tensor:
        return (self.width - x.abs()).clamp(min=0) / self.width**2

    def extra_repr(self) -> str:
        return f"width={self.width}"
