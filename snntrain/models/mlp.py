"""Spiking multi-layer perceptron."""
from __future__ import annotations

import math

from ..errors import check
from ..layers import flatten, linear
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, dense_synapse, dropout_layers, spiking_stage


@register("model", "mlp")
def mlp(
    in_shape: tuple[int, ...],
    num_classes: int,
    neuron: NeuronFactory,
    norm: NormFactory,
    hidden: list[int] = (256,),  # type: ignore[assignment]
    synapse: str = "linear",
    dropout: float = 0.0,
) -> SpikingNet:
    """Spiking MLP: flatten -> [synapse -> norm -> neuron (-> dropout)] per hidden width -> linear readout.

    ``synapse`` names the dense synapse layer (``linear`` or ``dropconnect_linear``);
    ``dropout`` > 0 adds a dropout layer whose mask is fixed over the T steps of a
    sequence. The readout layer is non-spiking; its output at every step is the class score.
    """
    check(all(h >= 1 for h in hidden), "hidden", f"widths must be >= 1, got {list(hidden)}")
    layers = [flatten()]
    width = math.prod(in_shape)
    for h in hidden:
        layers += [dense_synapse(synapse, width, h), *spiking_stage((h,), neuron, norm), *dropout_layers(dropout)]
        width = h
    layers.append(linear(width, num_classes))
    return SpikingNet(*layers)
