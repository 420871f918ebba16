r"""Surrogate gradients for the spike non-linearity.

The forward pass of every surrogate is the Heaviside step
:math:`S = \Theta(x) = 1` if :math:`x \ge 0` else :math:`0`, applied to
:math:`x = H - V_{th}`. The backward pass replaces :math:`\Theta'` (zero almost
everywhere) by the derivative :math:`g'(x)` of a smooth stand-in :math:`g`
(Neftci, Mostafa & Zenke, "Surrogate Gradient Learning in Spiking Neural Networks",
IEEE SPM 2019). Each class states its :math:`g'` and default width; ``grad(x)`` is that
closed form, and the autograd backward uses exactly it. Each docstring also says
whether :math:`g'` integrates to 1 over the real line (i.e. :math:`g` rises from 0
to 1, like :math:`\Theta`) or, if not, what its integral is.

Built in: ``atan``, ``sigmoid``, ``fast_sigmoid``, ``triangle``,
``piecewise_quadratic``, ``rectangular``, ``erf``, ``gaussian``,
``straight_through`` and ``heaviside`` (no gradient; for inference/evaluation).

User-defined surrogates
-----------------------
Subclass :class:`Surrogate`, list the constructor arguments the derivative needs in
``args``, and write :math:`g'` as a static ``derivative(x, *args)``: a closed form of
``x`` (a tensor) and plain numbers, elementwise, same shape and dtype as ``x``. No
module reaches autograd: the spike function receives that function and the numbers,
so every backend (the ``torch`` loop, the ``fused`` autograd function) evaluates the
same formula. A built-in surrogate also carries ``kernel_id``, the number of the same
closed form in the compiled kernels (:mod:`snntrain.kernels`), and passes them its one
parameter as a plain number (:meth:`Surrogate.kernel`); a user-defined one (or a subclass
that redefines ``derivative``) has none and runs on the PyTorch paths. Constructor arguments become config keys, so annotate their types and
check their ranges with :func:`snntrain.errors.check`::

    import torch
    from snntrain.errors import check
    from snntrain.registry import register
    from snntrain.surrogates import Surrogate

    @register("surrogate", "mine")
    class Mine(Surrogate):
        '''Laplace: g'(x) = exp(-|x|/b) / (2b), default b=0.5.'''

        args = ("b",)

        def __init__(self, b: float = 0.5):
            super().__init__()
            check(b > 0, "b", f"must be > 0, got {b}")
            self.b = float(b)

        @staticmethod
        def derivative(x: torch.Tensor, b: float) -> torch.Tensor:
            return torch.exp(-x.abs() / b) / (2 * b)

Overriding ``grad(x)`` instead (arbitrary torch code on the module) also works; the
backward then calls that method.

The forward pass (Heaviside) and the autograd plumbing come from the base class.
Registration happens when the module defining ``Mine`` is
imported, so import it in the process that builds the model. Then:

- Python: ``snntrain.build("surrogate", "mine", b=0.3)``, or a training config with
  ``cfg["surrogate"] = {"name": "mine", "b": 0.3}`` passed to ``snntrain.train``;
- Hydra: a group file ``surrogate/mine.yaml`` (``name: mine`` and ``b: 0.5``) in your
  own config folder makes ``surrogate=mine surrogate.b=0.3`` selectable, e.g. with
  ``--config-dir my_configs`` from a launcher script that imports your module and
  then calls ``snntrain.cli.main()``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from .errors import check
from .registry import register


Derivative = Callable[..., Tensor]


class _SpikeFn(torch.autograd.Function):
    """Heaviside forward; backward ``grad_out * derivative(x, *args)`` (a function and plain numbers)."""

    @staticmethod
    def forward(ctx, x: Tensor, derivative: Derivative, args: tuple) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.derivative, ctx.args = derivative, args
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_out * ctx.derivative(x, *ctx.args), None, None


def spike(x: Tensor, derivative: Derivative, args: tuple = ()) -> Tensor:
    r""":math:`\Theta(x)` whose backward is ``derivative(x, *args)`` (see :meth:`Surrogate.spec`)."""
    return _SpikeFn.apply(x, derivative, args)


class Surrogate(nn.Module):
    """Base class: forward is Heaviside, backward is :math:`g'` = ``derivative(x, *args)``.

    ``args`` names the attributes that ``derivative`` takes, in order; they are plain
    numbers. ``spec()`` gives ``(derivative, values)``, what the backends use.
    """

    args: tuple[str, ...] = ()
    #: the number of this :math:`g'` in the compiled kernels' switch (C++ and Triton); None: Python only
    kernel_id: ClassVar[int | None] = None

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if ("derivative" in cls.__dict__ or "grad" in cls.__dict__) and "kernel_id" not in cls.__dict__:
            cls.kernel_id = None  # a new g' is not the kernels' inherited one

    @staticmethod
    def derivative(x: Tensor, *args: Any) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def kernel(self) -> tuple[int, float] | None:
        """``(kernel_id, parameter)`` for the compiled kernels, or None (a Python-only :math:`g'`).

        The parameter is the surrogate's one argument (0 without; -1 for a ``None`` value,
        ``straight_through`` without a window).
        """
        derivative, args = self.spec()
        if self.kernel_id is None or derivative is not type(self).derivative or len(args) > 1:
            return None
        a = args[0] if args else 0.0
        return self.kernel_id, -1.0 if a is None else float(a)

    def spec(self) -> tuple[Derivative, tuple]:
        """The derivative as a plain function and its numeric arguments."""
        if type(self).grad is not Surrogate.grad:  # a subclass that overrides grad() itself
            return self.grad, ()
        return type(self).derivative, tuple(getattr(self, a) for a in self.args)

    def peak(self) -> float:
        r"""The largest value of :math:`g'`: :math:`g'(0)`, where every built-in surrogate peaks.

        The compact gradient storage (``neuron.grad_storage=int8``) quantises :math:`g'` on
        :math:`[0, \mathrm{peak}]`; a surrogate that is negative somewhere, or largest away from
        0, overrides this (and is stored with saturation otherwise).
        """
        derivative, args = self.spec()
        return float(derivative(torch.zeros(()), *args))

    def grad(self, x: Tensor) -> Tensor:
        """:math:`g'(x)`, elementwise."""
        return type(self).derivative(x, *(getattr(self, a) for a in self.args))

    def forward(self, x: Tensor) -> Tensor:
        return spike(x, *self.spec())

    def extra_repr(self) -> str:
        return ", ".join(f"{a}={getattr(self, a)}" for a in self.args)


@register("surrogate", "atan")
class ATan(Surrogate):
    r"""Arc-tangent: :math:`g'(x) = \frac{\alpha/2}{1 + (\frac{\pi}{2}\alpha x)^2}`, default alpha=2.

    :math:`g(x) = \frac{1}{\pi}\arctan(\frac{\pi}{2}\alpha x) + \frac12`
    (Fang et al., "Incorporating Learnable Membrane Time Constant...", ICCV 2021);
    integrates to 1, peak :math:`\alpha/2`, heavy :math:`1/x^2` tails.
    Same as ``spikingjelly.surrogate.ATan(alpha)`` and ``snntorch.surrogate.atan(alpha)``,
    both with default alpha=2.
    """

    kernel_id = 0

    args = ("alpha",)

    def __init__(self, alpha: float = 2.0):
        super().__init__()
        check(alpha > 0, "alpha", f"must be > 0, got {alpha}")
        self.alpha = float(alpha)

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)


@register("surrogate", "sigmoid")
class Sigmoid(Surrogate):
    r"""Logistic: :math:`g'(x) = \alpha\,\sigma(\alpha x)(1 - \sigma(\alpha x))`, default alpha=4.

    :math:`g(x) = \sigma(\alpha x)`; integrates to 1, peak :math:`\alpha/4`. Same as
    ``spikingjelly.surrogate.Sigmoid(alpha)`` (default alpha=4, used here);
    snnTorch's ``surrogate.sigmoid(slope)`` is the same function with ``slope = alpha``
    (its default slope is 25). snnTorch computes it as ``k e^{-kx} / (e^{-kx} + 1)^2``,
    which overflows to NaN in float32 for :math:`kx \lesssim -85` (x < -3.4 at k=25);
    this one uses ``torch.sigmoid`` and stays finite.
    """

    kernel_id = 1

    args = ("alpha",)

    def __init__(self, alpha: float = 4.0):
        super().__init__()
        check(alpha > 0, "alpha", f"must be > 0, got {alpha}")
        self.alpha = float(alpha)

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        s = torch.sigmoid(alpha * x)
        return alpha * s * (1 - s)


@register("surrogate", "triangle")
class Triangle(Surrogate):
    r"""Triangle: :math:`g'(x) = \max(0,\ w - |x|) / w^2`, default width w=1 (area 1, peak 1/w).

    The piecewise-linear pseudo-derivative of Esser et al. (PNAS 2016) and Bellec et al.
    ("Long short-term memory and learning-to-learn in networks of spiking neurons",
    NeurIPS 2018), normalised so that it integrates to 1. The same function as
    ``piecewise_quadratic`` with ``alpha = 1/w`` (SpikingJelly's ``PiecewiseQuadratic``).
    Not snnTorch's ``triangular(threshold)``: its backward is ``+threshold`` for
    :math:`x < 0` and ``-threshold`` for :math:`x \ge 0` (the derivative of a triangular
    bump, negative above threshold), not a triangular :math:`g'`.
    """

    kernel_id = 3

    args = ("width",)

    def __init__(self, width: float = 1.0):
        super().__init__()
        check(width > 0, "width", f"must be > 0, got {width}")
        self.width = float(width)

    @staticmethod
    def derivative(x: Tensor, width: float) -> Tensor:
        return (width - x.abs()).clamp(min=0) / width**2


@register("surrogate", "fast_sigmoid")
class FastSigmoid(Surrogate):
    r"""Fast sigmoid (SuperSpike): :math:`g'(x) = \frac{1}{(1 + k|x|)^2}`, default slope k=25.

    :math:`g(x) = \frac{x}{1 + k|x|}` (Zenke & Ganguli, "SuperSpike: Supervised Learning in
    Multilayer Spiking Neural Networks", Neural Computation 2018). Same as
    ``snntorch.surrogate.fast_sigmoid(slope=k)``, whose default slope 25 this is. Peak 1 at
    :math:`x = 0`; **not** normalised: it integrates to :math:`2/k` (0.08 at k=25), as in
    the paper and snnTorch. SpikingJelly's ``SuperSpike(alpha)`` is
    :math:`\alpha/(1+|x|)^2`: its ``alpha`` scales the height, not the slope, so it equals
    ``alpha *`` this surrogate at ``slope=1``.
    """

    kernel_id = 2

    args = ("slope",)

    def __init__(self, slope: float = 25.0):
        super().__init__()
        check(slope > 0, "slope", f"must be > 0, got {slope}")
        self.slope = float(slope)

    @staticmethod
    def derivative(x: Tensor, slope: float) -> Tensor:
        return 1.0 / (1 + slope * x.abs()) ** 2


@register("surrogate", "piecewise_quadratic")
class PiecewiseQuadratic(Surrogate):
    r"""Piecewise quadratic: :math:`g'(x) = \max(0,\ \alpha - \alpha^2 |x|)`, default alpha=1.

    :math:`g(x) = -\frac12\alpha^2|x|x + \alpha x + \frac12` for :math:`|x| \le 1/\alpha`
    (0 below, 1 above), so :math:`g'` is a triangle of half-width :math:`1/\alpha` and
    peak :math:`\alpha`, and integrates to 1 (Esser et al., "Convolutional networks for fast,
    energy-efficient neuromorphic computing", PNAS 2016). Same as
    ``spikingjelly.surrogate.PiecewiseQuadratic(alpha)``, whose default alpha=1 this is; the
    same function as ``triangle`` with ``width = 1/alpha``, in SpikingJelly's parameters.
    """

    kernel_id = 4

    args = ("alpha",)

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        check(alpha > 0, "alpha", f"must be > 0, got {alpha}")
        self.alpha = float(alpha)

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return (alpha - alpha**2 * x.abs()).clamp(min=0)


@register("surrogate", "rectangular")
class Rectangular(Surrogate):
    r"""Rectangular: :math:`g'(x) = 1/w` for :math:`|x| < w/2`, else 0; default width w=1.

    :math:`g(x) = \mathrm{clip}(x/w + \frac12, 0, 1)`; integrates to 1, height :math:`1/w`
    (Wu et al., "Spatio-Temporal Backpropagation for Training High-Performance Spiking
    Neural Networks", Front. Neurosci. 2018, curve :math:`h_1` with :math:`a = w`; w=1 as
    in their code). The window is open: :math:`g'(\pm w/2) = 0`. Same as
    ``spikingjelly.surrogate.Rect(alpha)`` with ``alpha = 1/w`` (its default alpha=1 is w=1),
    and as ``spikingjelly.surrogate.PiecewiseLeakyReLU(w=w/2, c=0)``. snnTorch has none.
    """

    kernel_id = 5

    args = ("width",)

    def __init__(self, width: float = 1.0):
        super().__init__()
        check(width > 0, "width", f"must be > 0, got {width}")
        self.width = float(width)

    @staticmethod
    def derivative(x: Tensor, width: float) -> Tensor:
        return (x.abs() < width / 2).to(x.dtype) / width


@register("surrogate", "erf")
class Erf(Surrogate):
    r"""Error function: :math:`g'(x) = \frac{\alpha}{\sqrt{\pi}} e^{-\alpha^2 x^2}`, default alpha=2.

    :math:`g(x) = \frac12 \operatorname{erfc}(-\alpha x)`, the CDF of a Gaussian with
    :math:`\sigma = 1/(\sqrt2\,\alpha)`; integrates to 1 (used by Esser et al., NeurIPS
    2015; Wu et al., Front. Neurosci. 2018). Same as ``spikingjelly.surrogate.Erf(alpha)``,
    whose default alpha=2 this is. The same curve as ``gaussian`` with
    ``sigma = 1/(sqrt(2) * alpha)``; snnTorch has none.
    """

    kernel_id = 6

    args = ("alpha",)

    def __init__(self, alpha: float = 2.0):
        super().__init__()
        check(alpha > 0, "alpha", f"must be > 0, got {alpha}")
        self.alpha = float(alpha)

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return (alpha / math.sqrt(math.pi)) * torch.exp(-((alpha * x) ** 2))


@register("surrogate", "gaussian")
class Gaussian(Surrogate):
    r"""Gaussian: :math:`g'(x) = \frac{1}{\sigma\sqrt{2\pi}} e^{-x^2 / (2\sigma^2)}`, default sigma=0.5.

    The normal density :math:`\mathcal N(x; 0, \sigma^2)`; integrates to 1, peak
    :math:`1/(\sigma\sqrt{2\pi})` (Wu et al. 2018, curve :math:`h_4`; Yin, Corradi & Bohté,
    "Accurate and efficient time-domain classification with adaptive spiking recurrent
    neural networks", Nat. Mach. Intell. 2021, whose code uses sigma=0.5 and then multiplies
    by a gradient scale 0.5 that is *not* included here). Parameterised by the standard
    deviation; the same curve as ``erf`` with ``alpha = 1/(sqrt(2) * sigma)``, i.e.
    ``spikingjelly.surrogate.Erf(alpha=1/(sqrt(2) * sigma))``. Neither SpikingJelly nor
    snnTorch has a class by this name.
    """

    kernel_id = 7

    args = ("sigma",)

    def __init__(self, sigma: float = 0.5):
        super().__init__()
        check(sigma > 0, "sigma", f"must be > 0, got {sigma}")
        self.sigma = float(sigma)

    @staticmethod
    def derivative(x: Tensor, sigma: float) -> Tensor:
        return torch.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


@register("surrogate", "straight_through")
class StraightThrough(Surrogate):
    r"""Straight-through: :math:`g'(x) = 1` (or 1 for :math:`|x| \le w`, else 0, if width w is set), default width=None.

    The straight-through estimator (Bengio, Léonard & Courville, "Estimating or
    Propagating Gradients Through Stochastic Neurons for Conditional Computation", 2013):
    the spike's gradient is passed through unchanged. With ``width=None`` (default) it is 1
    everywhere, as ``snntorch.surrogate.straight_through_estimator()`` and
    ``spikingjelly.surrogate.DeterministicPass()``; it does **not** integrate to a finite
    value. With ``width=w`` it is 1 only inside the closed window :math:`|x| \le w`
    (the clipped STE of Courbariaux/Hubara et al.'s binarized networks with w=1, the
    derivative of :math:`\mathrm{hardtanh}`) and integrates to :math:`2w`, not 1.
    """

    kernel_id = 8

    args = ("width",)

    def __init__(self, width: float | None = None):
        super().__init__()
        check(width is None or width > 0, "width", f"must be > 0 or null (no window), got {width}")
        self.width = None if width is None else float(width)

    @staticmethod
    def derivative(x: Tensor, width: float | None) -> Tensor:
        if width is None:
            return torch.ones_like(x)
        return (x.abs() <= width).to(x.dtype)


@register("surrogate", "heaviside")
class Heaviside(Surrogate):
    r"""No surrogate (exact step): :math:`g'(x) = 0`, backward returns zeros; for inference/evaluation.

    The true derivative of the step almost everywhere. Backward returns exact zeros, so nothing upstream of a spike learns through it (it
    integrates to 0, not 1). For inference and evaluation, or to check that a model's
    gradients really flow through its surrogate. Not snnTorch's ``heaviside()``, whose
    backward passes the gradient where the neuron spiked (:math:`g'(x) = \Theta(x)`);
    SpikingJelly's ``heaviside`` is a plain forward function without a backward.
    """

    kernel_id = 9

    @staticmethod
    def derivative(x: Tensor) -> Tensor:
        return torch.zeros_like(x)
