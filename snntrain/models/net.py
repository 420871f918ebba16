"""Shared pieces of the spiking models: the container and the layer factories."""
from __future__ import annotations

from typing import Any, Callable

from torch import Tensor, nn

from ..errors import check
from ..registry import available, build

NeuronFactory = Callable[[tuple[int, ...]], nn.Module]
NormFactory = Callable[[tuple[int, ...]], nn.Module]


class SpikingNet(nn.Sequential):
    """A stack of sequence layers: ``[T, B, ...]`` in, readout ``[T, B, classes]`` out.

    Every layer takes and returns a whole sequence; neurons start from rest in each
    call, so ``model(x)`` never depends on an earlier call. The loss averages the
    readout over time (see :mod:`snntrain.training.losses`).
    """

    def forward(self, x_seq: Tensor) -> Tensor:  # type: ignore[override]
        if x_seq.dim() < 3:
            raise ValueError(f"expected a sequence [T, B, ...], got shape {tuple(x_seq.shape)}")
        return super().forward(x_seq)


def spiking_stage(shape: tuple[int, ...], neuron: NeuronFactory, norm: NormFactory) -> list[nn.Module]:
    """``norm -> neuron``, or ``neuron -> norm`` for norms that belong after the spikes (NeuNorm)."""
    n = norm(shape)
    if getattr(n, "after_neuron", False):
        return [neuron(shape), n]
    return [n, neuron(shape)]


def make_factories(
    neuron_cfg: dict[str, Any], surrogate_cfg: dict[str, Any], norm_cfg: dict[str, Any], T: int
) -> tuple[NeuronFactory, NormFactory]:
    """Turn the ``neuron``/``surrogate``/``norm`` config sections into layer factories.

    Each section is ``{"name": <registered name>, **arguments}``. Building one neuron
    and one norm up front makes bad arguments fail before any model exists.
    """
    neuron_args = {k: v for k, v in neuron_cfg.items() if k != "name"}
    surrogate_args = {k: v for k, v in surrogate_cfg.items() if k != "name"}
    norm_args = {k: v for k, v in norm_cfg.items() if k != "name"}

    def make_neuron(shape: tuple[int, ...]) -> nn.Module:
        sg = build("surrogate", surrogate_cfg["name"], **surrogate_args)
        return build("neuron", neuron_cfg["name"], context={"surrogate": sg, "shape": shape}, **neuron_args)

    v_th = float(getattr(make_neuron((1,)), "threshold", 1.0))

    def make_norm(shape: tuple[int, ...]) -> nn.Module:
        ctx = {"num_features": shape[0], "shape": shape, "T": T, "v_th": v_th}
        return build("norm", norm_cfg["name"], context=ctx, **norm_args)

    make_norm((1,))
    return make_neuron, make_norm


def dense_synapse(name: str, in_features: int, out_features: int) -> nn.Module:
    """The dense synapse chosen by ``model.synapse`` (``linear``, ``dropconnect_linear``, ...)."""
    check(name in available("layer"), "synapse", f"unknown layer {name!r}; dense synapses: linear, dropconnect_linear")
    return build("layer", name, in_features=in_features, out_features=out_features)


def dropout_layers(p: float, name: str = "dropout") -> list[nn.Module]:
    """``[]`` for p = 0, else one sequence-consistent dropout layer (mask fixed over the T steps)."""
    check(0 <= p < 1, "dropout" if name == "dropout" else "conv_dropout", f"must be in [0, 1), got {p}")
    return [build("layer", name, p=p)] if p > 0 else []
