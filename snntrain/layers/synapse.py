r"""Stateless synapse layers for ``[T, B, ...]`` sequences.

A stateless layer has no memory across time, so a whole sequence runs as one call on
the ``[T*B, ...]`` view (SpikingJelly's ``seq_to_ann_forward``, Matterhorn's parallel
multi-step synapse) and is reshaped back: :math:`X^l(t) = W^l * O^{l-1}(t)` for every
t at once. ``step(x)`` applies the same layer to one time step ``[B, ...]``.

Families over 1d/2d/3d (``conv{1,2,3}d``, ``conv_transpose{1,2,3}d``,
``{max,avg}pool{1,2,3}d``, ``adaptive_{max,avg}pool{1,2,3}d``) take the arguments of
the torch layer of the same name; sizes are an int or a list per dimension.
"""
from __future__ import annotations

import inspect
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from . import bits

Size = int | list[int]


class SeqWrap(nn.Module):
    """Runs a per-sample module on ``[T, B, ...]`` by folding T into the batch axis.

    A linear, convolution or max-pooling layer whose input is binary (spikes) and part of
    the autograd graph (it requires grad: a neuron's output) keeps that input as bits for
    the backward (:mod:`snntrain.layers.bits`; the gradients are the fp32 path's, bit for
    bit); ``pack_spikes=False`` turns that off. An input from outside the graph (the data,
    an encoder's spikes) is held by the caller for the whole step anyway, so autograd's
    reference to it costs no memory, and packing it would only cost time.
    """

    def __init__(self, module: nn.Module, pack_spikes: bool = True):
        super().__init__()
        self.module = module
        self.pack_spikes = pack_spikes and bits.supports(module)

    def step(self, x: Tensor) -> Tensor:
        return self.module(x)

    def _packs(self, x: Tensor) -> bool:
        if not (self.pack_spikes and torch.is_grad_enabled() and x.requires_grad) or torch.is_autocast_enabled(x.device.type):
            return False
        return isinstance(self.module, bits._POOLS) or self.module.weight.requires_grad

    def forward(self, x_seq: Tensor) -> Tensor:
        x = x_seq.flatten(0, 1)
        y = bits.spike_call(self.module, x) if self._packs(x) else self.module(x)
        return y.view(x_seq.shape[0], x_seq.shape[1], *y.shape[1:])

    def __repr__(self) -> str:
        return f"Seq{self.module!r}"


def _size(v: Size) -> int | tuple[int, ...]:
    return tuple(v) if isinstance(v, (list, tuple)) else v


def register_family(
    name: str, dims: tuple[int, ...], params: list[tuple[str, object, object]], summary: str,
    make: Callable[..., nn.Module],
) -> None:
    """Register ``name.format(d=d)`` for each d in ``dims``, all with one explicit, annotated signature.

    ``params`` are ``(name, annotation, default)``; ``make(d, **arguments)`` builds the
    layer. The registry validates config values against the signature, and
    ``snntrain-list`` shows it.
    """
    sig = inspect.Signature(
        [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann) for p, ann, default in params]
    )
    for d in dims:
        def factory(_d=d, **kw) -> nn.Module:
            bound = sig.bind(**kw)
            bound.apply_defaults()
            return make(_d, **bound.arguments)

        factory.__signature__ = sig  # type: ignore[attr-defined]
        factory.__annotations__ = {p: ann for p, ann, _ in params}
        factory.__doc__ = summary.format(d=d)
        factory.__name__ = name.format(d=d)
        register("layer", name.format(d=d))(factory)


def _family(name: str, classes: dict[int, type[nn.Module]], params: list[tuple[str, object, object]], summary: str) -> None:
    """A family of torch layers ``classes[d]`` wrapped in :class:`SeqWrap`."""

    def make(d: int, **kw) -> SeqWrap:
        for k, v in kw.items():
            if k in ("kernel_size", "stride", "padding", "output_padding", "dilation", "output_size"):
                kw[k] = _size(v) if v is not None else None
            if isinstance(v, int) and k in ("in_channels", "out_channels", "kernel_size", "groups"):
                check(v >= 1, k, f"must be >= 1, got {v}")
        return SeqWrap(classes[d](**kw))

    doc = summary + "\n\nWraps the torch layer of the same name; input ``[T, B, C, ...]`` with {d} spatial dim(s)."
    register_family(name, tuple(classes), params, doc, make)


E = inspect.Parameter.empty
_family(
    "conv{d}d", {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d},
    [("in_channels", int, E), ("out_channels", int, E), ("kernel_size", Size, 3), ("stride", Size, 1),
     ("padding", Size, 1), ("dilation", Size, 1), ("groups", int, 1), ("bias", bool, True)],
    "{d}d convolution at every time step: :math:`X_t = W * O_t + b`.",
)
_family(
    "conv_transpose{d}d", {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d},
    [("in_channels", int, E), ("out_channels", int, E), ("kernel_size", Size, 2), ("stride", Size, 2),
     ("padding", Size, 0), ("output_padding", Size, 0), ("groups", int, 1), ("bias", bool, True), ("dilation", Size, 1)],
    "{d}d transposed convolution (up-sampling synapse) at every time step.",
)
_family(
    "maxpool{d}d", {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d},
    [("kernel_size", Size, 2), ("stride", Size | None, None), ("padding", Size, 0)],
    "{d}d max pooling at every time step (spikes stay binary).",
)
_family(
    "avgpool{d}d", {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d},
    [("kernel_size", Size, 2), ("stride", Size | None, None), ("padding", Size, 0)],
    "{d}d average pooling at every time step.",
)
_family(
    "adaptive_maxpool{d}d", {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d},
    [("output_size", Size, 1)],
    "{d}d adaptive max pooling to a fixed ``output_size`` at every time step.",
)
_family(
    "adaptive_avgpool{d}d", {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d},
    [("output_size", Size, 1)],
    "{d}d adaptive average pooling to a fixed ``output_size`` at every time step.",
)


@register("layer", "linear")
def linear(in_features: int, out_features: int, bias: bool = True) -> SeqWrap:
    """Dense synapse at every time step: :math:`X_t = W O_t + b`."""
    check(in_features >= 1 and out_features >= 1, "out_features" if in_features >= 1 else "in_features", "must be >= 1")
    return SeqWrap(nn.Linear(in_features, out_features, bias=bias))


@register("layer", "flatten")
def flatten() -> SeqWrap:
    """Flatten all feature axes: ``[T, B, C, H, W] -> [T, B, C*H*W]``."""
    return SeqWrap(nn.Flatten(1))


@register("layer", "upsample")
def upsample(
    scale_factor: float | None = 2.0, size: Size | None = None, mode: Literal["nearest", "linear", "bilinear", "trilinear"] = "nearest"
) -> SeqWrap:
    """Up-sampling by ``scale_factor`` (or to ``size``) at every time step."""
    check((scale_factor is None) != (size is None), "scale_factor", "give exactly one of scale_factor and size")
    return SeqWrap(nn.Upsample(size=_size(size) if size is not None else None, scale_factor=scale_factor, mode=mode))


# Names the models use; kept for the Python API.
def conv2d(in_channels: int, out_channels: int, kernel_size: Size = 3, stride: Size = 1, padding: Size = 1, bias: bool = True) -> SeqWrap:
    return SeqWrap(nn.Conv2d(in_channels, out_channels, _size(kernel_size), _size(stride), _size(padding), bias=bias))


def maxpool2d(kernel_size: Size = 2, stride: Size | None = None) -> SeqWrap:
    return SeqWrap(nn.MaxPool2d(_size(kernel_size), _size(stride) if stride is not None else None))


def avgpool2d(kernel_size: Size = 2, stride: Size | None = None) -> SeqWrap:
    return SeqWrap(nn.AvgPool2d(_size(kernel_size), _size(stride) if stride is not None else None))


LayerFactory = Callable[..., SeqWrap]
