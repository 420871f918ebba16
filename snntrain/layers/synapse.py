"""Stateless synapse layers for ``[T, B, ...]`` sequences.

A stateless layer has no memory across time, so a whole sequence runs as one call on
the ``[T*B, ...]`` view (SpikingJelly's ``seq_to_ann_forward``) and is reshaped back.
``step(x)`` applies the same layer to one time step ``[B, ...]``.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..registry import register


class SeqWrap(nn.Module):
    """Runs a per-sample module on ``[T, B, ...]`` by folding T into the batch axis."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def step(self, x: Tensor) -> Tensor:
        return self.module(x)

    def forward(self, x_seq: Tensor) -> Tensor:
        y = self.module(x_seq.flatten(0, 1))
        return y.view(x_seq.shape[0], x_seq.shape[1], *y.shape[1:])

    def __repr__(self) -> str:
        return f"Seq{self.module!r}"


@register("layer", "linear")
def linear(in_features: int, out_features: int, bias: bool = True) -> SeqWrap:
    """Dense synapse ``y = W x + b`` applied at every time step."""
    return SeqWrap(nn.Linear(in_features, out_features, bias=bias))


@register("layer", "conv2d")
def conv2d(
    in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1, bias: bool = True
) -> SeqWrap:
    """2d convolution applied at every time step, on ``[T*B, C, H, W]``."""
    return SeqWrap(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias))


@register("layer", "maxpool2d")
def maxpool2d(kernel_size: int = 2, stride: int | None = None) -> SeqWrap:
    """2d max pooling applied at every time step."""
    return SeqWrap(nn.MaxPool2d(kernel_size, stride))


@register("layer", "avgpool2d")
def avgpool2d(kernel_size: int = 2, stride: int | None = None) -> SeqWrap:
    """2d average pooling applied at every time step."""
    return SeqWrap(nn.AvgPool2d(kernel_size, stride))


@register("layer", "flatten")
def flatten() -> SeqWrap:
    """Flatten all feature axes: ``[T, B, C, H, W] -> [T, B, C*H*W]``."""
    return SeqWrap(nn.Flatten(1))
