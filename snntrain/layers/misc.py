r"""Small layers from SpikingJelly's ``clock_driven.layer``: channel pooling, blockwise DCT, AXA^T, shape printing.

All are stateless: a sequence ``[T, B, ...]`` is one call, ``step(x)`` one time step.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from .synapse import SeqWrap


class ChannelsPool(nn.Module):
    r"""Pools over the channel axis (axis 1) of ``[N, C, *spatial]`` with a 1d pooling module.

    Every spatial position's channel vector :math:`x_{n,:,p}` is pooled by ``pool``
    (``nn.MaxPool1d`` or ``nn.AvgPool1d``): for max pooling with kernel :math:`k` and
    stride :math:`s`, :math:`y_{n,c,p} = \max_{0 \le j < k} x_{n,\,cs+j,\,p}`.
    SpikingJelly ``layer.ChannelsPool`` (clock_driven).
    """

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            raise ValueError(f"channels_pool needs [N, C, ...] input, got shape {tuple(x.shape)}")
        n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
        rows = x.reshape(n, c, -1).transpose(1, 2)  # [N, L, C]: pool1d slides over C
        y = self.pool(rows).transpose(1, 2)  # [N, C', L]
        return y.reshape(n, y.shape[1], *spatial)


@register("layer", "channels_pool")
def channels_pool(kernel_size: int = 2, stride: int | None = None, mode: Literal["max", "avg"] = "max") -> SeqWrap:
    r"""Max or average pooling over channels: :math:`y_{c} = \max_{j<k} x_{cs+j}` at every position and step (maxout-style).

    With kernel :math:`k` and stride :math:`s` (default :math:`s = k`), ``[T, B, C, *spatial]``
    becomes ``[T, B, \lfloor (C-k)/s \rfloor + 1, *spatial]``; ``mode="avg"`` averages
    instead. This is the cross-channel max of maxout units (I. Goodfellow et al., "Maxout
    Networks", ICML 2013); SpikingJelly ``layer.ChannelsPool(nn.MaxPool1d(k, s))``.
    """
    check(kernel_size > 0, "kernel_size", f"must be > 0, got {kernel_size}")
    check(stride is None or stride > 0, "stride", f"must be > 0, got {stride}")
    check(mode in ("max", "avg"), "mode", f"must be 'max' or 'avg', got {mode!r}")
    pool = nn.MaxPool1d(kernel_size, stride) if mode == "max" else nn.AvgPool1d(kernel_size, stride)
    return SeqWrap(ChannelsPool(pool))


def dct_matrix(k: int) -> Tensor:
    r"""Orthonormal DCT-II matrix :math:`D_{ij} = c_i \cos\frac{(j + 1/2) i \pi}{k}`, :math:`c_0 = \sqrt{1/k}`, :math:`c_{i>0} = \sqrt{2/k}`."""
    i = torch.arange(k, dtype=torch.float64)[:, None]
    j = torch.arange(k, dtype=torch.float64)[None, :]
    d = torch.cos((j + 0.5) * math.pi * i / k) * math.sqrt(2.0 / k)
    d[0] = math.sqrt(1.0 / k)
    return d.to(torch.get_default_dtype())


@register("layer", "dct")
class DCT(nn.Module):
    r"""Blockwise 2d DCT-II on the last two axes: :math:`Y = D X D^T` for every k x k block.

    The last two axes ``[..., H, W]`` are cut into non-overlapping
    :math:`k \times k` blocks :math:`X` (``H`` and ``W`` divisible by ``kernel_size``),
    each replaced by its orthonormal 2d DCT-II :math:`Y = D X D^T` with
    :math:`D_{ij} = c_i \cos\frac{(j + \frac12) i \pi}{k}`, :math:`c_0 = \sqrt{1/k}`,
    :math:`c_{i>0} = \sqrt{2/k}` (as in JPEG). :math:`D` is orthogonal, so
    :math:`X = D^T Y D`; a constant block :math:`c` maps to :math:`Y_{00} = k c` and zeros.
    DCT is the special case of ``axat`` with a fixed block-diagonal :math:`A`.

    Source: N. Ahmed, T. Natarajan, K. R. Rao, "Discrete Cosine Transform", IEEE
    Trans. Computers C-23, 1974; SpikingJelly ``layer.DCT`` (clock_driven).
    """

    def __init__(self, kernel_size: int = 8):
        super().__init__()
        check(kernel_size > 0, "kernel_size", f"must be > 0, got {kernel_size}")
        self.kernel_size = kernel_size
        self.register_buffer("kernel", dct_matrix(kernel_size), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        k = self.kernel_size
        if x.dim() < 2 or x.shape[-2] % k or x.shape[-1] % k:
            raise ValueError(
                f"dct: the last two axes must be divisible by kernel_size={k}, got shape {tuple(x.shape)}"
            )
        h, w = x.shape[-2], x.shape[-1]
        blocks = x.reshape(*x.shape[:-2], h // k, k, w // k, k)
        d = self.kernel.to(x.dtype)
        y = torch.einsum("ij,...ajbl,kl->...aibk", d, blocks, d)
        return y.reshape(x.shape)

    def step(self, x: Tensor) -> Tensor:
        return self(x)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


@register("layer", "axat")
class AXAT(nn.Module):
    r"""Learnable two-sided linear map on the last two axes: :math:`Y = A X A^T`.

    :math:`X` is ``[..., in_features, in_features]``, :math:`A` is a learnable
    ``[out_features, in_features]`` matrix (initialised like ``nn.Linear``'s weight) and
    :math:`Y` is ``[..., out_features, out_features]``. Blockwise ``dct`` is this map
    with a fixed :math:`A`. SpikingJelly ``layer.AXAT`` (clock_driven).
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        check(in_features > 0, "in_features", f"must be > 0, got {in_features}")
        check(out_features > 0, "out_features", f"must be > 0, got {out_features}")
        self.in_features, self.out_features = in_features, out_features
        self.A = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        n = self.in_features
        if x.dim() < 2 or x.shape[-2:] != (n, n):
            raise ValueError(f"axat: the last two axes must be [{n}, {n}] (in_features), got shape {tuple(x.shape)}")
        return self.A @ x @ self.A.transpose(0, 1)

    def step(self, x: Tensor) -> Tensor:
        return self(x)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


@register("layer", "print_shape")
class PrintShape(nn.Module):
    r"""Debug layer: prints ``<label> shape=(...)`` and returns its input unchanged (:math:`y = x`).

    ``forward`` prints the sequence shape ``(T, B, ...)``, ``step`` the step shape
    ``(B, ...)``. SpikingJelly ``layer.PrintShapeModule`` (which logs at DEBUG level in 2.0).
    """

    def __init__(self, label: str = "print_shape"):
        super().__init__()
        self.label = label

    def forward(self, x: Tensor) -> Tensor:
        print(f"{self.label} shape={tuple(x.shape)}", flush=True)
        return x

    def step(self, x: Tensor) -> Tensor:
        return self(x)

    def extra_repr(self) -> str:
        return f"label={self.label!r}"
