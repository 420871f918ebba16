r"""Synapses that keep a binary (spike) input as bits for the backward pass.

A synapse :math:`Y = W * S + b` (linear, convolution) needs its input :math:`S` again
for the weight gradient :math:`\partial L/\partial W = \bar Y \star S`; autograd keeps it
as fp32, 32 bits per spike. When :math:`S \in \{0, 1\}` it is kept here as one bit
(:func:`pack_bits`) and unpacked to the same fp32 tensor in the backward, which then runs
the very kernel autograd would run (``aten::convolution_backward``, or the ``mm`` of
``addmm``'s backward): the gradients are bit for bit those of the fp32 path.
Max pooling of a spike map (an OR over the window) keeps its input as bits too and
recomputes the argmax indices (the first maximum, as PyTorch picks it) in the backward.
Average pooling (plain or adaptive) keeps nothing: it is linear, its backward
:math:`\bar X = P^\top \bar Y` needs the input's shape only, yet ``avg_pool2d`` saves
the whole input (after a spiking neuron, the fp32 spikes); :class:`ShapeOnlyAvgPool` runs
the same backward kernel on a placeholder of that shape, so the gradients are again bit for
bit autograd's.

:class:`snntrain.layers.synapse.SeqWrap` uses these functions when the input is binary
(checked on every call, in the same pass that packs it) and requires grad (an activation of the
graph, not the data), gradients are on, and autocast is off.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_SHIFTS = torch.arange(8, dtype=torch.uint8)


def is_binary(x: Tensor) -> bool:
    """Whether every element of ``x`` is 0 or 1."""
    return bool(torch.logical_or(x == 0, x == 1).all())


def pack_if_binary(x: Tensor) -> Tensor | None:
    """:func:`pack_bits` of ``x`` if it is binary, else None (one pass with the C++ kernel on the CPU)."""
    if x.device.type == "cpu" and x.dtype == torch.float32:
        from ..kernels.cpu import kernel

        k = kernel()
        if k is not None:
            packed = k.pack_binary(x.contiguous())
            return packed if packed.numel() or x.numel() == 0 else None
    return pack_bits(x) if is_binary(x) else None


def pack_bits(x: Tensor) -> Tensor:
    """A 0/1 tensor as bits, 8 to a byte (little-endian within the byte)."""
    flat = x.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.view(-1, 8) << _SHIFTS.to(x.device)).sum(1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, shape: torch.Size, dtype: torch.dtype) -> Tensor:
    """The tensor of ``shape`` that :func:`pack_bits` packed, as ``dtype``."""
    n = 1
    for d in shape:
        n *= d
    if packed.device.type == "cpu" and dtype == torch.float32:
        from ..kernels.cpu import kernel

        k = kernel()
        if k is not None:
            return k.unpack(packed, n).view(shape)
    bits = (packed[:, None] >> _SHIFTS.to(packed.device)) & 1
    return bits.reshape(-1)[:n].to(dtype).view(shape)


class _Bits:
    """Save a binary tensor as bits (through ``save_for_backward``, so saved-tensor hooks see them) and get it back."""

    @staticmethod
    def save(ctx: Any, x: Tensor, packed: Tensor, *others: Tensor | None) -> None:
        ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
        ctx.save_for_backward(packed, *others)

    @staticmethod
    def load(ctx: Any) -> tuple[Tensor, ...]:
        packed, *others = ctx.saved_tensors
        return (unpack_bits(packed, ctx.x_shape, ctx.x_dtype), *others)


class SpikeLinear(torch.autograd.Function):
    """``F.linear`` on a 2-d binary input, input kept as bits."""

    @staticmethod
    def forward(ctx, x: Tensor, packed: Tensor, weight: Tensor, bias: Tensor | None):  # type: ignore[override]
        _Bits.save(ctx, x, packed, weight)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, weight = _Bits.load(ctx)
        gx = g.mm(weight) if ctx.needs_input_grad[0] else None
        gw = g.t().mm(x) if ctx.needs_input_grad[2] else None
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return gx, None, gw, gb


class SpikeConv(torch.autograd.Function):
    """``aten::convolution`` on a binary input, input kept as bits; backward = ``aten::convolution_backward``."""

    @staticmethod
    def forward(ctx, x: Tensor, packed: Tensor, weight: Tensor, bias: Tensor | None, args: tuple):  # type: ignore[override]
        _Bits.save(ctx, x, packed, weight)
        ctx.args, ctx.bias_shape = args, None if bias is None else bias.shape
        return torch.ops.aten.convolution(x, weight, bias, *args)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, weight = _Bits.load(ctx)
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[2], ctx.bias_shape is not None and ctx.needs_input_grad[3]]
        gx, gw, gb = torch.ops.aten.convolution_backward(g, x, weight, ctx.bias_shape, *ctx.args, mask)
        return gx, None, gw, gb, None


class ShapeOnlyAvgPool(torch.autograd.Function):
    """Average pooling that saves only its input's shape; backward: the pooling's own backward on a placeholder."""

    @staticmethod
    def forward(ctx, x: Tensor, pool: nn.Module):  # type: ignore[override]
        ctx.shape, ctx.pool = x.shape, pool
        return pool(x)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        pool, shape = ctx.pool, ctx.shape
        if isinstance(pool, nn.AvgPool2d):  # the aten kernel reads only the input's shape: a zero-stride placeholder
            k, s, p = (_tuple(v, 2) for v in (pool.kernel_size, pool.stride or pool.kernel_size, pool.padding))
            ph = g.new_zeros(()).expand(shape)
            return torch.ops.aten.avg_pool2d_backward(g, ph, k, s, p, pool.ceil_mode, pool.count_include_pad,
                                                      pool.divisor_override), None
        with torch.enable_grad():  # other dimensions and adaptive pooling: the same backward, on zeros of that shape
            ph = g.new_zeros(shape, requires_grad=True)
            return torch.autograd.grad(pool(ph), ph, g)[0], None


class SpikeMaxPool(torch.autograd.Function):
    """Max pooling of a binary map, input kept as bits; the backward recomputes the argmax indices."""

    @staticmethod
    def forward(ctx, x: Tensor, packed: Tensor, pool: nn.Module):  # type: ignore[override]
        _Bits.save(ctx, x, packed)
        ctx.pool = pool
        return pool(x)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        with torch.enable_grad():
            x = _Bits.load(ctx)[0].requires_grad_()
            y = ctx.pool(x)
        return torch.autograd.grad(y, x, g)[0], None, None


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_MAXPOOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVGPOOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_POOLS = _MAXPOOLS + _AVGPOOLS


def supports(module: nn.Module) -> bool:
    """Whether :func:`spike_call` has a form of ``module`` that keeps less than its fp32 input."""
    if isinstance(module, _CONVS):
        return module.padding_mode == "zeros" and not isinstance(module.padding, str)
    if isinstance(module, _AVGPOOLS):
        return True
    if isinstance(module, _MAXPOOLS):
        return not module.return_indices
    return isinstance(module, nn.Linear)


def spike_call(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)``, keeping ``x`` as bits for the backward when it is binary (average pooling: keeping nothing)."""
    if isinstance(module, _AVGPOOLS):
        return ShapeOnlyAvgPool.apply(x, module)
    if isinstance(module, nn.Linear) and x.dim() != 2:
        return module(x)
    packed = pack_if_binary(x)
    if packed is None:
        return module(x)
    if isinstance(module, nn.Linear):
        return SpikeLinear.apply(x, packed, module.weight, module.bias)
    if isinstance(module, _CONVS):
        d = x.dim() - 2
        args = (_tuple(module.stride, d), _tuple(module.padding, d), _tuple(module.dilation, d), False, (0,) * d, module.groups)
        return SpikeConv.apply(x, packed, module.weight, module.bias, args)
    return SpikeMaxPool.apply(x, packed, module)


def _tuple(v: int | tuple[int, ...], d: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * d
