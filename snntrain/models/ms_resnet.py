r"""Membrane-shortcut ResNets (Hu et al., "Advancing Spiking Neural Networks Toward Deep Residual Learning", IEEE TNNLS 2024; arXiv:2112.08954).

The shortcut connects membrane potentials, not spikes, and every branch begins with its
own neuron, so each conv sees binary spikes (the block is a pre-activation ResNet block
with neurons for ReLUs):

.. math:: U_{l+1} = U_l + \mathrm{N}_2(W_2 * \mathrm{SN}(\mathrm{N}_1(W_1 * \mathrm{SN}(U_l)))),

with a ``conv1x1 -> norm`` on the shortcut where the width or stride changes. Stem: a
conv and its norm (no neuron: its output is the first membrane). Head: a neuron, global
average pooling, a linear readout at every step (the loss averages over time).

Initialisation of the paper's code (and SpikingJelly's ``model.ms_resnet``, which this
equals with ``stem=imagenet``: same weights -> same output): every norm scale
:math:`\gamma = 0.5` except the last of each branch, :math:`\gamma = 0` (each block starts
as its shortcut); ``norm_init=null`` keeps each norm's own init (e.g. tdBN's
:math:`\alpha V_{th}`). The paper's neurons: ``lif`` with :math:`\tau = 4/3`
(``decay=0.25``), :math:`V_{th} = 0.5`, hard reset, ``detach_reset``, the rectangular
surrogate (set them in the neuron config).
"""
from __future__ import annotations

from typing import Literal

from torch import nn

from ..errors import check
from ..layers import SeqWrap, conv2d, flatten, linear
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, conv_size, scaled
from .parts import neuron_then, set_norm_weight_, synapse_norm
from .resnet import RESIDUAL_ALPHA


class MSBlock(nn.Module):
    """``shortcut(U) + N2(W2 * SN(N1(W1 * SN(U))))``: a membrane-shortcut basic block."""

    def __init__(self, branch: list[nn.Module], shortcut: list[nn.Module]):
        super().__init__()
        self.branch = nn.Sequential(*branch)
        self.shortcut = nn.Sequential(*shortcut)

    def forward(self, u):
        return self.shortcut(u) + self.branch(u)


def ms_block(c_in: int, c_out: int, stride: int, h: int, w: int, neuron: NeuronFactory, norm: NormFactory,
             norm_init: float | None) -> tuple[MSBlock, int, int]:
    h2, w2 = conv_size(h, 3, stride, 1), conv_size(w, 3, stride, 1)
    s_in, s_out = (c_in, h, w), (c_out, h2, w2)
    first = synapse_norm(lambda b: conv2d(c_in, c_out, 3, stride, 1, bias=b), s_out, norm)
    last = synapse_norm(lambda b: conv2d(c_out, c_out, 3, 1, 1, bias=b), s_out, norm, alpha=RESIDUAL_ALPHA)
    if norm_init is not None:
        set_norm_weight_(first[1], norm_init), set_norm_weight_(last[1], 0.0)
    branch = [*neuron_then(s_in, neuron, norm), *first, *neuron_then(s_out, neuron, norm), *last]
    shortcut: list[nn.Module] = []
    if stride != 1 or c_in != c_out:
        shortcut = synapse_norm(lambda b: conv2d(c_in, c_out, 1, stride, 0, bias=b), s_out, norm, alpha=RESIDUAL_ALPHA)
        if norm_init is not None:
            set_norm_weight_(shortcut[1], norm_init)
    return MSBlock(branch, shortcut), h2, w2


def ms_resnet(in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory, blocks: list[int],
              stem: Literal["cifar", "imagenet"], width: float, norm_init: float | None) -> SpikingNet:
    check(len(in_shape) == 3, "in_shape", f"an MS-ResNet needs image inputs [C, H, W], got {tuple(in_shape)}")
    check(stem in ("cifar", "imagenet"), "stem", f"must be cifar or imagenet, got {stem!r}")
    c, h, w = in_shape
    c0 = scaled(64, width)
    k, s = (3, 1) if stem == "cifar" else (7, 2)
    h, w = conv_size(h, k, s, k // 2), conv_size(w, k, s, k // 2)
    layers = synapse_norm(lambda b: conv2d(c, c0, k, s, k // 2, bias=b), (c0, h, w), norm)
    if norm_init is not None:
        set_norm_weight_(layers[1], norm_init)
    c = c0
    for i, n in enumerate(blocks):
        out = scaled(64 * 2**i, width)
        for j in range(n):
            # SpikingJelly's ImageNet layout downsamples in the first stage too
            stride = 2 if j == 0 and (i > 0 or stem == "imagenet") else 1
            b, h, w = ms_block(c, out, stride, h, w, neuron, norm, norm_init)
            layers.append(b)
            c = out
    layers += [*neuron_then((c, h, w), neuron, norm), SeqWrap(nn.AdaptiveAvgPool2d(1)), flatten(), linear(c, num_classes)]
    return SpikingNet(*layers)


@register("model", "ms_resnet18")
def ms_resnet18(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    stem: Literal["cifar", "imagenet"] = "cifar", width: float = 1.0, norm_init: float | None = 0.5,
) -> SpikingNet:
    r"""MS-ResNet-18 (Hu et al. TNNLS 2024): membrane-shortcut basic blocks 2-2-2-2 of 64-128-256-512 channels.

    ``stem=cifar``: 3x3 conv, stride 1, no downsampling in the first stage;
    ``stem=imagenet``: 7x7 conv, stride 2, and a stride-2 first stage (SpikingJelly's
    layout). Parameters with ``norm=bn``: **11,173,962** on CIFAR-10 with the CIFAR stem, the
    count of the spiking ResNet-18 (:func:`snntrain.models.resnet.resnet18`: the same convs,
    norms and readout; only the neurons moved, and they have no parameters). ``stem=imagenet`` on CIFAR-10:
    11,185,866 (SpikingJelly's ``ms_resnet18(num_classes=10)``); with 1000 classes:
    11,693,736 (SpikingJelly's ``ms_resnet18()``, the paper's 11.69M).
    """
    return ms_resnet(in_shape, num_classes, neuron, norm, [2, 2, 2, 2], stem, width, norm_init)


@register("model", "ms_resnet34")
def ms_resnet34(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    stem: Literal["cifar", "imagenet"] = "cifar", width: float = 1.0, norm_init: float | None = 0.5,
) -> SpikingNet:
    r"""MS-ResNet-34 (Hu et al. TNNLS 2024): membrane-shortcut basic blocks 3-4-6-3 of 64-128-256-512 channels.

    Parameters with ``norm=bn``: **21,282,122** on CIFAR-10 with the CIFAR stem (as ``resnet34``);
    ``stem=imagenet`` with 1000 classes: 21,801,896 (SpikingJelly's ``ms_resnet34()``,
    the paper's 21.80M).
    """
    return ms_resnet(in_shape, num_classes, neuron, norm, [3, 4, 6, 3], stem, width, norm_init)

