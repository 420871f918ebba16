"""A network read from a NIR graph file (``model=nir model.path=<file.nir>``)."""
from __future__ import annotations

from ..errors import ConfigError
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet


@register("model", "nir")
def nir_graph(
    in_shape: tuple[int, ...],
    num_classes: int,
    neuron: NeuronFactory,
    norm: NormFactory,
    path: str | None = None,
    dt: float = 1e-4,
) -> SpikingNet:
    """The network of the NIR graph at ``path`` (:func:`snntrain.nir.from_nir`), trainable like any model.

    Its layers and neurons come from the graph (the ``neuron`` and ``norm`` groups are not
    used; the imported neurons take the run's ``surrogate``); ``dt`` is the seconds per step
    the graph was written with (``1e-4`` for snnTorch, SpikingJelly and snntrain). The graph's
    input must take the dataset's sample shape and its output must have one value per class.
    """
    from ..nir import from_nir, input_shape, read

    if not path:
        raise ConfigError("model.path: model=nir reads a NIR graph; give its file, e.g. model.path=net.nir.")
    graph = read(path)
    shape = input_shape(graph)
    if tuple(shape) != tuple(in_shape):
        raise ConfigError(
            f"model.path: the NIR graph {path!r} takes inputs of shape {tuple(shape)}, but the dataset's samples (after "
            f"the encoder) have shape {tuple(in_shape)}. Choose the dataset the graph was built for."
        )
    surrogate = getattr(neuron((1,)), "surrogate", None)
    net = from_nir(graph, dt=dt, in_shape=shape, surrogate=surrogate)
    import torch

    with torch.no_grad():
        out = net(torch.zeros(1, 1, *shape))
    if out.dim() != 3 or out.shape[-1] != num_classes:
        raise ConfigError(
            f"model.path: the NIR graph {path!r} gives outputs of shape {tuple(out.shape[2:])} per step, but the "
            f"dataset has {num_classes} classes; the last layer must have one output per class."
        )
    return net
