"""Spiking VGG with the channel/pool plan given as a config list."""
from __future__ import annotations

from typing import Literal

from ..errors import check
from ..layers import avgpool2d, conv2d, flatten, linear, maxpool2d
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, dense_synapse, dropout_layers, spiking_stage


@register("model", "vgg")
def vgg(
    in_shape: tuple[int, ...],
    num_classes: int,
    neuron: NeuronFactory,
    norm: NormFactory,
    plan: list[int | str] = (32, "M", 64, "M"),  # type: ignore[assignment]
    classifier: list[int] = (),  # type: ignore[assignment]
    pool: Literal["max", "avg"] = "max",
    synapse: str = "linear",
    dropout: float = 0.0,
    conv_dropout: float = 0.0,
) -> SpikingNet:
    """Spiking VGG: per plan entry a 3x3 conv -> norm -> neuron (int) or a 2x2 pool ("M").

    Then flatten -> [synapse -> norm -> neuron] per ``classifier`` width -> linear readout.
    ``conv_dropout`` adds ``dropout2d`` (whole channels) after each conv stage and
    ``dropout`` adds ``dropout`` after each classifier stage; both keep their mask over
    the T steps of a sequence. ``synapse`` names the classifier's dense synapse.
    The default plan fits 8x8 inputs; ``model=vgg9`` is the VGG9 plan of the BNTT
    paper for 32x32 inputs (64,64,M,128,128,M,256,256,256,M + 1024).
    """
    check(len(in_shape) == 3, "in_shape", f"vgg needs image inputs [C, H, W], got {tuple(in_shape)}")
    c, h, w = in_shape
    layers = []
    for item in plan:
        if item == "M":
            check(h >= 2 and w >= 2, "plan", f"too many pools for a {in_shape[1]}x{in_shape[2]} input: {list(plan)}")
            layers.append(maxpool2d(2) if pool == "max" else avgpool2d(2))
            h, w = h // 2, w // 2
        else:
            check(isinstance(item, int) and item >= 1, "plan", f"entries are channel counts or 'M', got {item!r}")
            layers += [conv2d(c, item, 3, 1, 1), *spiking_stage((item, h, w), neuron, norm),
                       *dropout_layers(conv_dropout, "dropout2d")]
            c = item
    layers.append(flatten())
    width = c * h * w
    for f in classifier:
        check(f >= 1, "classifier", f"widths must be >= 1, got {list(classifier)}")
        layers += [dense_synapse(synapse, width, f), *spiking_stage((f,), neuron, norm), *dropout_layers(dropout)]
        width = f
    layers.append(linear(width, num_classes))
    return SpikingNet(*layers)
