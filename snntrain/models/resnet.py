r"""Spiking ResNets: ResNet-18/34 (He et al. 2016 layout) and the tdBN paper's ResNet-19.

Every model here is a stem, stages of residual blocks (:mod:`snntrain.models.blocks`),
a global average pool, optional spiking fully connected layers and a linear readout.
Norms sit where they belong: after every conv before its neuron; the last norm of a
residual branch and the shortcut's norm get ``alpha=1/sqrt(2)`` (read only by norms
that have an ``alpha``, i.e. ``tdbn``); ``zero_init_residual`` sets the branch's last
norm scale to 0 (Goyal et al. 2017), so each block starts as its shortcut. With a norm
that sits after the neuron (NeuNorm) the summed pre-activations have no norm and the
norm follows the block's neuron. A conv followed by a norm has no bias; with
``norm=none`` or NeuNorm every conv keeps its bias.
"""
from __future__ import annotations

import math
from typing import Literal

from torch import nn

from ..errors import check
from ..layers import SeqWrap, conv2d, flatten, linear
from ..registry import register
from .blocks import ResidualBlock
from .net import (
    NeuronFactory, NormFactory, SpikingNet, bias_before, conv_size, post_norm, pre_norm, scaled, spiking_stage, zero_init_,
)

#: tdBN's scale for the norms whose outputs are summed in a residual block (Zheng et al. 2021)
RESIDUAL_ALPHA = 1 / math.sqrt(2)


def conv_stage(
    c_in: int, c_out: int, kernel: int, stride: int, h: int, w: int, neuron: NeuronFactory, norm: NormFactory
) -> tuple[list[nn.Module], int, int]:
    """``conv -> norm -> neuron`` (or ``conv -> neuron -> NeuNorm``) and the map size after it."""
    pad = kernel // 2
    h, w = conv_size(h, kernel, stride, pad), conv_size(w, kernel, stride, pad)
    stage = spiking_stage((c_out, h, w), neuron, norm)
    return [conv2d(c_in, c_out, kernel, stride, pad, bias=bias_before(stage[0])), *stage], h, w


def basic_block(
    c_in: int, c_out: int, stride: int, h: int, w: int, neuron: NeuronFactory, norm: NormFactory,
    kind: Literal["spiking", "sew"] = "spiking", connect: str = "add", zero_init: bool = False,
) -> tuple[ResidualBlock, int, int]:
    """One basic block (two 3x3 convs) of a spiking (``kind="spiking"``) or SEW ResNet, and the map size after it.

    The shortcut is the identity, or a 1x1 conv with its norm (and, in SEW, a neuron)
    where the stride or the width changes (He et al.'s option B).
    """
    first, h, w = conv_stage(c_in, c_out, 3, stride, h, w, neuron, norm)
    shape = (c_out, h, w)
    sew = kind == "sew"
    alpha = {} if sew else {"alpha": RESIDUAL_ALPHA}  # SEW sums spikes, not pre-activations
    last = pre_norm(shape, norm, **alpha)
    if zero_init:
        zero_init_(last)
    branch = [*first, conv2d(c_out, c_out, 3, 1, 1, bias=bias_before(last)), last, *([neuron(shape)] if sew else [])]
    shortcut: list[nn.Module] = []
    if stride != 1 or c_in != c_out:
        s_norm = pre_norm(shape, norm, **alpha)
        shortcut = [conv2d(c_in, c_out, 1, stride, 0, bias=bias_before(s_norm)), s_norm, *([neuron(shape)] if sew else [])]
    out = post_norm(shape, norm) if sew else [neuron(shape), *post_norm(shape, norm)]
    return ResidualBlock(branch, shortcut, out, connect if sew else "add"), h, w


def residual_stages(
    stages: list[tuple[int, int, int]], c: int, h: int, w: int, neuron: NeuronFactory, norm: NormFactory, **block: object
) -> tuple[list[nn.Module], int, int, int]:
    """Stages ``(channels, blocks, stride)``: the stride applies to the first block of a stage."""
    layers: list[nn.Module] = []
    for channels, blocks, stride in stages:
        for i in range(blocks):
            b, h, w = basic_block(c, channels, stride if i == 0 else 1, h, w, neuron, norm, **block)  # type: ignore[arg-type]
            layers.append(b)
            c = channels
    return layers, c, h, w


def resnet(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    stages: list[tuple[int, int, int]], stem_channels: int, stem: Literal["cifar", "imagenet"] = "cifar",
    fc: list[int] = (), kind: Literal["spiking", "sew"] = "spiking", connect: str = "add",  # type: ignore[assignment]
    zero_init_residual: bool = False,
) -> SpikingNet:
    """Stem -> residual stages -> global average pool -> [linear -> neuron] per ``fc`` width -> linear readout.

    ``stem="cifar"``: one 3x3 conv, stride 1. ``stem="imagenet"``: a 7x7 conv of stride
    2 and a 3x3 max pool of stride 2 (He et al. 2016). The hidden ``fc`` layers have a
    bias and no norm, as in the ResNet-19 code of TET/TEBN.
    """
    check(len(in_shape) == 3, "in_shape", f"a ResNet needs image inputs [C, H, W], got {tuple(in_shape)}")
    check(stem in ("cifar", "imagenet"), "stem", f"must be cifar or imagenet, got {stem!r}")
    c, h, w = in_shape
    if stem == "cifar":
        layers, h, w = conv_stage(c, stem_channels, 3, 1, h, w, neuron, norm)
    else:
        layers, h, w = conv_stage(c, stem_channels, 7, 2, h, w, neuron, norm)
        layers.append(SeqWrap(nn.MaxPool2d(3, 2, 1)))
        h, w = conv_size(h, 3, 2, 1), conv_size(w, 3, 2, 1)
    blocks, c, h, w = residual_stages(stages, stem_channels, h, w, neuron, norm, kind=kind, connect=connect,
                                      zero_init=zero_init_residual)
    layers += [*blocks, SeqWrap(nn.AdaptiveAvgPool2d(1)), flatten()]
    for f in fc:
        layers += [linear(c, f), neuron((f,))]
        c = f
    layers.append(linear(c, num_classes))
    return SpikingNet(*layers)


def he_stages(width: float, blocks: list[int]) -> list[tuple[int, int, int]]:
    """He et al.'s four stages: widths 64, 128, 256, 512 (times ``width``), strides 1, 2, 2, 2."""
    return [(scaled(64 * 2**i, width), n, 1 if i == 0 else 2) for i, n in enumerate(blocks)]


@register("model", "resnet19")
def resnet19(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    width: float = 1.0, zero_init_residual: bool = False,
) -> SpikingNet:
    r"""Spiking ResNet-19 of the tdBN paper (Zheng et al. AAAI 2021), also TEBN's (Duan et al. NeurIPS 2022).

    3x3 conv 128 -> 3 blocks of 128 -> 3 blocks of 256 (stride 2) -> 2 blocks of 512
    (stride 2) -> average pool -> 256 FC (spiking) -> readout: 19 weight layers.
    ``width`` multiplies every layer's width (1: the paper's). The layout of the FC layers
    (bias, no norm) follows the TET code that TEBN builds on.

    Parameters with ``norm=bn`` on CIFAR-10 (3x32x32, 10 classes): **12,697,994** =
    stem 3·128·9 + 256 (BN) = 3,712; stage 1: 6 convs 128·128·9 + 6 BN = 886,272;
    stage 2: 128·256·9 + 5·256·256·9 + 1x1 shortcut 128·256 + 7 BN·512 = 3,280,384;
    stage 3: 256·512·9 + 3·512·512·9 + shortcut 256·512 + 5 BN·1024 = 8,393,728;
    FC 512·256 + 256 = 131,328; readout 256·10 + 10 = 2,570. The paper states no count.
    """
    c = scaled(128, width)
    stages = [(c, 3, 1), (scaled(256, width), 3, 2), (scaled(512, width), 2, 2)]
    return resnet(in_shape, num_classes, neuron, norm, stages, c, "cifar", [scaled(256, width)],
                  zero_init_residual=zero_init_residual)


@register("model", "resnet18")
def resnet18(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    stem: Literal["cifar", "imagenet"] = "cifar", width: float = 1.0, zero_init_residual: bool = False,
) -> SpikingNet:
    r"""Spiking ResNet-18: He et al. (CVPR 2016) layout, 2-2-2-2 basic blocks of 64-128-256-512, neurons for ReLUs.

    Parameters with ``norm=bn``: **11,173,962** with the CIFAR stem on CIFAR-10 (3x32x32,
    10 classes) — the CIFAR ResNet-18 of kuangliu/pytorch-cifar; **11,689,512** with
    ``stem=imagenet`` and 1000 classes, torchvision's ``resnet18`` and He et al.'s 11.7M.
    Convs: 9·(3·64 stem, 4·64·64, 64·128 + 3·128·128, 128·256 + 3·256·256, 256·512 +
    3·512·512) + 1x1 shortcuts 64·128 + 128·256 + 256·512; BN 2 per channel;
    readout 512·classes + classes. ``width`` multiplies every layer's width.
    """
    return resnet(in_shape, num_classes, neuron, norm, he_stages(width, [2, 2, 2, 2]), scaled(64, width), stem,
                  zero_init_residual=zero_init_residual)


@register("model", "resnet34")
def resnet34(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    stem: Literal["cifar", "imagenet"] = "cifar", width: float = 1.0, zero_init_residual: bool = False,
) -> SpikingNet:
    r"""Spiking ResNet-34: He et al. (CVPR 2016) layout, 3-4-6-3 basic blocks of 64-128-256-512, neurons for ReLUs.

    Parameters with ``norm=bn``: **21,282,122** with the CIFAR stem on CIFAR-10
    (kuangliu/pytorch-cifar's ResNet-34); **21,797,672** with ``stem=imagenet`` and
    1000 classes, torchvision's ``resnet34`` and He et al.'s 21.8M.
    """
    return resnet(in_shape, num_classes, neuron, norm, he_stages(width, [3, 4, 6, 3]), scaled(64, width), stem,
                  zero_init_residual=zero_init_residual)
