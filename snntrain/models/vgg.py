"""Spiking VGG with the channel/pool plan given as a config list."""
from __future__ import annotations

from typing import Literal

from ..errors import check
from ..layers import conv2d, flatten, linear
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, bias_before, dense_synapse, dropout_layers, pool2d, spiking_stage


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
    paper for 32x32 inputs (64,64,M,128,128,M,256,256,256,M + 1024). A pool on a map
    already smaller than 2x2 is left out, so every plan also runs on small inputs.

    A synapse followed by a norm has no bias (the norm's shift replaces it); with
    ``norm=none`` or NeuNorm (placed after the neuron) it drives the neuron directly and
    keeps its bias. ``model=vgg9`` with ``norm=bn`` on CIFAR-10 (3x32x32, 10 classes) has
    5,943,242 parameters: conv weights 1,734,336 (9·(3·64 + 64·64 + 64·128 + 128·128 +
    128·256 + 2·256·256)), their BN 2,304 (2 per channel), the 4096→1024 synapse
    4,194,304 and its BN 2,048, the readout 10,250. The BNTT paper does not state a
    count; its code has no biases at all (ours keeps the readout's 10) and its BNTT has
    one BN per time step.
    """
    check(len(in_shape) == 3, "in_shape", f"vgg needs image inputs [C, H, W], got {tuple(in_shape)}")
    c, h, w = in_shape
    layers = []
    for item in plan:
        if item == "M":
            pooled, h, w = pool2d(pool, h, w)
            layers += pooled
        else:
            check(isinstance(item, int) and item >= 1, "plan", f"entries are channel counts or 'M', got {item!r}")
            stage = spiking_stage((item, h, w), neuron, norm)
            layers += [conv2d(c, item, 3, 1, 1, bias=bias_before(stage[0])), *stage,
                       *dropout_layers(conv_dropout, "dropout2d")]
            c = item
    layers.append(flatten())
    width = c * h * w
    for f in classifier:
        check(f >= 1, "classifier", f"widths must be >= 1, got {list(classifier)}")
        stage = spiking_stage((f,), neuron, norm)
        layers += [dense_synapse(synapse, width, f, bias_before(stage[0])), *stage, *dropout_layers(dropout)]
        width = f
    layers.append(linear(width, num_classes))
    return SpikingNet(*layers)
