r"""SEW ResNets (Fang et al., "Deep Residual Learning in Spiking Neural Networks", NeurIPS 2021).

A spike-element-wise block lets the residual branch end in its own neuron and joins
its spikes :math:`A` to the shortcut's spikes :math:`S` with ``connect`` (``add``:
:math:`A + S`, ``and``: :math:`A \cdot S`, ``iand``: :math:`(1 - A) \cdot S`; see
:mod:`snntrain.models.blocks`). The downsampling shortcut is 1x1 conv -> norm ->
neuron, as in the paper's code. The branch sums no pre-activations, so tdBN's
:math:`\alpha` stays 1 here. With ``norm=neunorm`` the norm follows the block, on the
connected output (then not binary, so ``and``/``iand`` act on real values).
"""
from __future__ import annotations

from typing import Literal

from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, scaled
from .resnet import he_stages, resnet

Connect = Literal["add", "and", "iand"]


@register("model", "sew_resnet18")
def sew_resnet18(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory, connect: Connect = "add",
    stem: Literal["cifar", "imagenet"] = "cifar", width: float = 1.0, zero_init_residual: bool = False,
) -> SpikingNet:
    r"""SEW ResNet-18 (Fang et al. 2021): ResNet-18's layout with spike-element-wise blocks (``connect``: add, and, iand).

    The neurons carry no parameters, so the count equals the spiking ResNet-18's: with
    ``norm=bn``, **11,173,962** (CIFAR stem, CIFAR-10) and **11,689,512** (``stem=imagenet``,
    1000 classes; the paper's SEW ResNet-18 on ImageNet, 11.69M).
    """
    return resnet(in_shape, num_classes, neuron, norm, he_stages(width, [2, 2, 2, 2]), scaled(64, width), stem,
                  kind="sew", connect=connect, zero_init_residual=zero_init_residual)


@register("model", "sew_resnet34")
def sew_resnet34(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory, connect: Connect = "add",
    stem: Literal["cifar", "imagenet"] = "cifar", width: float = 1.0, zero_init_residual: bool = False,
) -> SpikingNet:
    r"""SEW ResNet-34 (Fang et al. 2021): ResNet-34's layout with spike-element-wise blocks (``connect``: add, and, iand).

    With ``norm=bn``: **21,282,122** (CIFAR stem, CIFAR-10) and **21,797,672**
    (``stem=imagenet``, 1000 classes; the paper's SEW ResNet-34, 21.79M).
    """
    return resnet(in_shape, num_classes, neuron, norm, he_stages(width, [3, 4, 6, 3]), scaled(64, width), stem,
                  kind="sew", connect=connect, zero_init_residual=zero_init_residual)
