"""Pieces the spiking transformers and the membrane-shortcut ResNet share: synapse stages on images and tokens.

Every piece takes the model's ``neuron(shape)`` and ``norm(shape, **overrides)`` factories
(:func:`snntrain.models.make_factories`), so any norm can stand where the papers have BN:
a norm that sits after the neuron (NeuNorm) moves there, ``none`` gives the synapse a bias.
Tokens are ``[T, B, C, N]`` (channels first, as the papers' 1x1 ``Conv1d`` code); the
per-step shape a norm or neuron sees is ``(C, N)`` or ``(C, H, W)``.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..layers import SeqWrap
from .net import NeuronFactory, NormFactory, after_neuron, bias_before, post_norm, pre_norm


def conv1x1_tokens(c_in: int, c_out: int, bias: bool) -> SeqWrap:
    """A 1x1 ``Conv1d`` on tokens ``[T, B, C, N]`` (a linear layer per token)."""
    return SeqWrap(nn.Conv1d(c_in, c_out, 1, bias=bias))


def synapse_neuron(synapse: type | object, shape: tuple[int, ...], neuron: NeuronFactory, norm: NormFactory,
                   pool: nn.Module | None = None, pooled: tuple[int, ...] | None = None, bias: bool | None = None,
                   threshold: float | None = None) -> list[nn.Module]:
    """``synapse -> norm -> [pool] -> neuron`` (NeuNorm: ``synapse -> [pool] -> neuron -> norm``).

    ``synapse(bias) -> module`` builds the conv; ``bias=None`` follows :func:`bias_before`
    (a bias only without a norm in between). ``shape`` is the synapse's output shape,
    ``pooled`` the shape after ``pool``. ``threshold`` sets the neuron's firing threshold
    where the paper has its own (Spikformer's attention neuron: 0.5).
    """
    out = pooled or shape
    if after_neuron(norm):
        n = neuron(out)
        return [synapse(True if bias is None else bias), *([pool] if pool else []), with_threshold(n, threshold),
                *post_norm(out, norm)]
    nrm = norm(shape)
    return [synapse(bias_before(nrm) if bias is None else bias), nrm, *([pool] if pool else []),
            with_threshold(neuron(out), threshold)]


def synapse_norm(synapse, shape: tuple[int, ...], norm: NormFactory, bias: bool | None = None, **overrides) -> list[nn.Module]:
    """``synapse -> norm`` whose output is summed (a membrane shortcut): ``none``'s identity for NeuNorm."""
    nrm = pre_norm(shape, norm, **overrides)
    return [synapse(bias_before(nrm) if bias is None else bias), nrm]


def neuron_then(shape: tuple[int, ...], neuron: NeuronFactory, norm: NormFactory, threshold: float | None = None) -> list[nn.Module]:
    """A neuron (and NeuNorm after it, for a norm that sits there) before a synapse."""
    return [with_threshold(neuron(shape), threshold), *post_norm(shape, norm)]


def with_threshold(n: nn.Module, threshold: float | None) -> nn.Module:
    """Set a neuron's firing threshold :math:`V_{th}` (a buffer or the initial value of a learned one)."""
    v = getattr(n, "threshold", None)
    if threshold is not None and isinstance(v, Tensor) and "threshold" not in getattr(n, "fixed_options", {}):
        v.data.fill_(threshold)
    return n


def set_norm_weight_(layer: nn.Module, value: float) -> nn.Module:
    """Set a norm's scale (``weight``) to ``value`` at init; a norm without one is left alone."""
    weight = getattr(layer, "weight", None)
    if isinstance(weight, nn.Parameter):
        nn.init.constant_(weight, value)
    return layer


class Residual(nn.Module):
    """``x + branch(x)`` on sequences (the spiking transformers' residual connections)."""

    def __init__(self, *branch: nn.Module):
        super().__init__()
        self.branch = nn.Sequential(*branch)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x)


class TokenMean(nn.Module):
    """``[T, B, C, N] -> [T, B, C]``: the mean over tokens (global average pooling)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(-1)


class Tokens(nn.Module):
    """``[T, B, C, H, W] -> [T, B, C, H*W]``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(3)
