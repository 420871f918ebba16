"""Spiking multi-layer perceptron."""
from __future__ import annotations

import math

from ..errors import check
from ..layers import flatten, linear
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, spiking_stage


@register("model", "mlp")
def mlp(
    in_shape: tuple[int, ...],
    num_classes: int,
    neuron: NeuronFactory,
    norm: NormFactory,
    hidden: list[int] = (256,),  # type: ignore[assignment]
) -> SpikingNet:
    """Spiking MLP: flatten -> [linear -> norm -> neuron] per hidden width -> linear readout.

    The readout layer is non-spiking; its output at every step is the class score.
    """
    check(all(h >= 1 for h in hidden), "hidden", f"widths must be >= 1, got {list(hidden)}")
    layers = [flatten()]
    width = math.prod(in_shape)
    for h in hidden:
        layers += [linear(width, h), *spiking_stage((h,), neuron, norm)]
        width = h
    layers.append(linear(width, num_classes))
    return SpikingNet(*layers)
