"""Shared pieces of the spiking models: the container and the layer factories."""
from __future__ import annotations

from typing import Any, Callable, Literal

from torch import Tensor, nn

from ..backends.pool import pooled
from ..errors import check
from ..layers import avgpool2d, maxpool2d
from ..neurons import SpikingNeuron
from ..norm import NoNorm
from ..registry import available, build, entry

NeuronFactory = Callable[[tuple[int, ...]], nn.Module]
#: ``norm(shape, **overrides)``; see :func:`make_factories` for the overrides
NormFactory = Callable[..., nn.Module]


class SpikingNet(nn.Sequential):
    """A stack of sequence layers: ``[T, B, ...]`` in, readout ``[T, B, classes]`` out.

    Every layer takes and returns a whole sequence; neurons start from rest in each
    call, so ``model(x)`` never depends on an earlier call. The loss averages the
    readout over time (see :mod:`snntrain.training.losses`). A neuron followed by a 2x2
    average pool runs with it as one kernel pass where that computes the same values
    (:mod:`snntrain.backends.pool`).
    """

    def forward(self, x_seq: Tensor) -> Tensor:  # type: ignore[override]
        if x_seq.dim() < 3:
            raise ValueError(f"expected a sequence [T, B, ...], got shape {tuple(x_seq.shape)}")
        layers = list(self)
        i = 0
        while i < len(layers):
            if isinstance(layers[i], SpikingNeuron) and i + 1 < len(layers):
                y = pooled(layers[i], layers[i + 1], x_seq)
                if y is not None:
                    x_seq, i = y, i + 2
                    continue
            x_seq, i = layers[i](x_seq), i + 1
        return x_seq


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

    ``norm(shape, **overrides)`` takes position-specific arguments from the model, such
    as ``alpha=1/sqrt(2)`` on the last norm of a residual branch (tdBN). Each override
    reaches only a norm whose own signature has that argument, and there it replaces the
    config's value; the other norms ignore it. ``norm.after_neuron`` tells whether the
    chosen norm places itself after the neuron (NeuNorm declares it). A norm class with an
    ``attach(neuron, shape, **norm_args)`` method also acts inside every neuron (MPBN's
    membrane BN): ``neuron(shape)`` returns the neuron it attached to.
    """
    neuron_args = {k: v for k, v in neuron_cfg.items() if k != "name"}
    surrogate_args = {k: v for k, v in surrogate_cfg.items() if k != "name"}
    norm_args = {k: v for k, v in norm_cfg.items() if k != "name"}

    attach = getattr(entry("norm", norm_cfg["name"]).obj, "attach", None)  # a norm inside every neuron (mpbn)

    def make_neuron(shape: tuple[int, ...]) -> nn.Module:
        sg = build("surrogate", surrogate_cfg["name"], **surrogate_args)
        n = build("neuron", neuron_cfg["name"], context={"surrogate": sg, "shape": shape, "T": T}, **neuron_args)
        return n if attach is None else attach(n, shape, **norm_args)

    v_th = float(getattr(make_neuron((1,)), "threshold", 1.0))

    accepts = {p.name for p in entry("norm", norm_cfg["name"]).user_params()}

    def make_norm(shape: tuple[int, ...], **overrides: Any) -> nn.Module:
        ctx = {"num_features": shape[0], "shape": shape, "T": T, "v_th": v_th}
        args = {**norm_args, **{k: v for k, v in overrides.items() if k in accepts}}
        return build("norm", norm_cfg["name"], context=ctx, **args)

    make_norm.after_neuron = bool(getattr(make_norm((1,)), "after_neuron", False))  # type: ignore[attr-defined]
    return make_neuron, make_norm


def after_neuron(norm: NormFactory) -> bool:
    """Whether the layers ``norm`` builds sit after the neuron (a norm declares it as ``after_neuron``)."""
    flag = getattr(norm, "after_neuron", None)
    return bool(getattr(norm((1,)), "after_neuron", False) if flag is None else flag)


def pre_norm(shape: tuple[int, ...], norm: NormFactory, **overrides: Any) -> nn.Module:
    """The norm between a synapse and what follows it, or ``none``'s identity for a norm that sits after neurons.

    Used where no neuron follows directly: the last norm of a residual branch and the
    shortcut's norm, whose outputs are summed before the neuron.
    """
    return NoNorm() if after_neuron(norm) else norm(shape, **overrides)


def post_norm(shape: tuple[int, ...], norm: NormFactory) -> list[nn.Module]:
    """``[norm(shape)]`` for a norm that sits after the neuron (NeuNorm), else ``[]``."""
    return [norm(shape)] if after_neuron(norm) else []


def bias_before(layer: nn.Module) -> bool:
    """Whether a synapse followed by ``layer`` carries a bias.

    No bias before a normalization: its shift replaces the bias (and batch statistics
    would cancel it exactly). A synapse that drives a neuron directly (``norm=none``, or
    NeuNorm, which sits after the neuron) keeps its bias, as a plain conv layer has one.
    """
    return isinstance(layer, (NoNorm, SpikingNeuron))


def zero_init_(layer: nn.Module) -> nn.Module:
    """Set a norm's scale (``weight``) to 0, so that its branch starts silent; a norm without one is left alone."""
    weight = getattr(layer, "weight", None)
    if isinstance(weight, nn.Parameter):
        nn.init.zeros_(weight)
    return layer


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier ``model.width``, at least 1."""
    check(width > 0, "width", f"must be > 0, got {width}")
    return max(1, round(channels * width))


def conv_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def pool2d(kind: Literal["max", "avg"], h: int, w: int) -> tuple[list[nn.Module], int, int]:
    """A 2x2 pool and the map size after it; no pool on a map already smaller than 2x2.

    So plans written for 32x32 or 48x48 inputs also run on small ones (the 8x8 digits):
    their last pools are left out instead of failing.
    """
    if h < 2 or w < 2:
        return [], h, w
    return [maxpool2d(2) if kind == "max" else avgpool2d(2)], h // 2, w // 2


def dense_synapse(name: str, in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    """The dense synapse chosen by ``model.synapse`` (``linear``, ``dropconnect_linear``, ...)."""
    check(name in available("layer"), "synapse", f"unknown layer {name!r}; dense synapses: linear, dropconnect_linear")
    return build("layer", name, in_features=in_features, out_features=out_features, bias=bias)


def dropout_layers(p: float, name: str = "dropout") -> list[nn.Module]:
    """``[]`` for p = 0, else one sequence-consistent dropout layer (mask fixed over the T steps)."""
    check(0 <= p < 1, "dropout" if name == "dropout" else "conv_dropout", f"must be in [0, 1), got {p}")
    return [build("layer", name, p=p)] if p > 0 else []
