r"""The VGG plans of the papers, as registered models (they build :func:`snntrain.models.vgg.vgg`)."""
from __future__ import annotations

from typing import Literal

from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, scaled
from .vgg import vgg

#: Simonyan & Zisserman (ICLR 2015) configurations A (VGG-11) and D (VGG-16)
VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
#: TET's (Deng et al. ICLR 2022) and TEBN's CIFAR10-DVS network, avg pools
VGGSNN = [64, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def widen(plan: list[int | str], width: float) -> list[int | str]:
    """The plan with every channel count times ``width`` (``model.width``)."""
    return [item if item == "M" else scaled(item, width) for item in plan]  # type: ignore[arg-type]


@register("model", "vgg11")
def vgg11(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    classifier: list[int] = (), pool: Literal["max", "avg"] = "max",  # type: ignore[assignment]
    synapse: str = "linear", dropout: float = 0.0, conv_dropout: float = 0.0, width: float = 1.0,
) -> SpikingNet:
    r"""Spiking VGG-11: configuration A of Simonyan & Zisserman (2015), 8 conv stages, 5 pools.

    On 32x32 inputs the features end at 512x1x1; the default classifier is the CIFAR one
    (the readout only). ``classifier=[4096, 4096]`` gives the ImageNet head. With
    ``norm=bn`` on CIFAR-10: 9·(3·64 + 64·128 + 128·256 + 256·256 + 256·512 + 3·512·512)
    = 9,217,728 conv weights + 5,504 BN + 5,130 readout = **9,228,362**.
    """
    return vgg(in_shape, num_classes, neuron, norm, widen(VGG11, width), classifier, pool, synapse, dropout, conv_dropout)


@register("model", "vgg16")
def vgg16(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    classifier: list[int] = (), pool: Literal["max", "avg"] = "max",  # type: ignore[assignment]
    synapse: str = "linear", dropout: float = 0.0, conv_dropout: float = 0.0, width: float = 1.0,
) -> SpikingNet:
    r"""Spiking VGG-16: configuration D of Simonyan & Zisserman (2015), 13 conv stages, 5 pools.

    Default classifier and ``width`` as ``vgg11``. With ``norm=bn`` on CIFAR-10: 14,710,464 conv
    weights + 8,448 BN + 5,130 readout = **14,724,042** (the BN VGG-16 of
    kuangliu/pytorch-cifar has 14,728,266: the same plus 4,224 conv biases).
    """
    return vgg(in_shape, num_classes, neuron, norm, widen(VGG16, width), classifier, pool, synapse, dropout, conv_dropout)


@register("model", "vggsnn")
def vggsnn(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    pool: Literal["max", "avg"] = "avg", conv_dropout: float = 0.0, width: float = 1.0,
) -> SpikingNet:
    r"""VGGSNN of TET (Deng et al. ICLR 2022) and TEBN (Duan et al. NeurIPS 2022) for CIFAR10-DVS at 48x48.

    64, 128, AP, 256, 256, AP, 512, 512, AP, 512, 512, AP (3x3 convs, 2x2 average pools)
    -> linear readout on the 512x3x3 map. Made for 2-channel 48x48 event frames
    (``dataset=cifar10dvs dataset.size=48``); ``width`` multiplies the conv widths. Parameters with ``norm=bn`` (2x48x48,
    10 classes): **9,268,746** = conv weights 9·(2·64 + 64·128 + 128·256 + 256·256 +
    256·512 + 3·512·512) = 9,217,152, BN 2·2,752 = 5,504, readout 4,608·10 + 10 = 46,090.
    TET's code gives its convs a bias as well (2,752 more, 9,271,498); the papers state no count.
    """
    return vgg(in_shape, num_classes, neuron, norm, widen(VGGSNN, width), [], pool, "linear", 0.0, conv_dropout)
