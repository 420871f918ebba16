r"""Spikformer (Zhou et al., "Spikformer: When Spiking Neural Network Meets Transformer", ICLR 2023).

**Spiking patch splitting (SPS).** Four ``conv3x3 -> norm -> [max pool] -> neuron`` stages of
widths :math:`D/8, D/4, D/2, D` (patch size 4: the last two pool, CIFAR; 16: all four,
ImageNet; max pool 3x3, stride 2, padding 1), then a relative position embedding
:math:`X = \mathrm{SN}(\mathrm{N}(\mathrm{Conv}(X'))) + X'`, and flattening to
:math:`N = HW/P^2` tokens of :math:`D` channels.

**Blocks** (:math:`L` of them), on spike tokens :math:`X`:

.. math::
    X' = X + \mathrm{SSA}(X), \qquad X'' = X' + \mathrm{MLP}(X')

with spiking self-attention (Eq. 10–12 of the paper), per head of dimension :math:`d`,

.. math::
    Q, K, V = \mathrm{SN}(\mathrm{N}(X W_{Q,K,V})), \qquad
    \mathrm{SSA}(X) = \mathrm{SN}(\mathrm{N}(\mathrm{SN}_{0.5}(Q K^\top V \cdot s)\, W_O)),

:math:`s = 0.125` and no softmax (all of :math:`Q, K, V` are spikes); the attention neuron
fires at :math:`V_{th} = 0.5`. The MLP is ``1x1 conv -> norm -> neuron`` twice (hidden
width :math:`rD`, ``mlp_ratio`` :math:`r = 4`). The head averages the tokens and
reads out with a linear layer at every step; the loss averages over time.

Layout and initialisation as SpikingJelly's ``model.spikformer`` (which this equals, same
weights -> same output): one ``Conv1d`` :math:`D \to 3D` for :math:`W_{Q,K,V}` with one
norm over :math:`3D` channels, no conv biases, truncated-normal (std 0.02) weights. The
paper's code has separate :math:`W_Q, W_K, W_V` (the same count) and biases in the MLP,
so its counts are :math:`2(rD + D)` per block higher. ``norm`` stands where the paper has BN;
``neuron`` for every LIF (the paper: ``lif`` with ``tau=2``, ``decay_input``, hard reset,
``detach_reset``; see ``configs/experiment/spikformer_4x384_cifar10.yaml``).
"""
from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from ..errors import check
from ..layers import SeqWrap, conv2d, linear
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, conv_size
from .parts import Residual, TokenMean, Tokens, conv1x1_tokens, synapse_neuron, with_threshold


class SpikingSelfAttention(nn.Module):
    r"""Spikformer's SSA on tokens ``[T, B, D, N]``: :math:`\mathrm{SN}(\mathrm{N}(\mathrm{SN}_{0.5}(QK^\top V s) W_O))`."""

    def __init__(self, dim: int, heads: int, tokens: int, neuron: NeuronFactory, norm: NormFactory, scale: float = 0.125):
        super().__init__()
        self.heads, self.scale = heads, scale
        self.qkv = nn.Sequential(*synapse_neuron(lambda b: conv1x1_tokens(dim, 3 * dim, b), (3 * dim, tokens), neuron, norm))
        self.attn_neuron = with_threshold(neuron((dim, tokens)), 0.5)
        self.proj = nn.Sequential(*synapse_neuron(lambda b: conv1x1_tokens(dim, dim, b), (dim, tokens), neuron, norm))

    def forward(self, x: Tensor) -> Tensor:
        T, B, D, N = x.shape
        q, k, v = self.qkv(x).reshape(T, B, 3, self.heads, D // self.heads, N).unbind(2)  # [T, B, h, d, N]
        # (Q K^T V)^T = V^T K Q^T in the channels-first layout
        att = (v @ k.transpose(-2, -1)) @ q * self.scale
        return self.proj(self.attn_neuron(att.reshape(T, B, D, N)))

    def extra_repr(self) -> str:
        return f"heads={self.heads}, scale={self.scale}"


def spikformer_block(dim: int, heads: int, tokens: int, mlp_ratio: float, neuron: NeuronFactory,
                     norm: NormFactory) -> list[nn.Module]:
    hidden = int(dim * mlp_ratio)
    mlp = [*synapse_neuron(lambda b: conv1x1_tokens(dim, hidden, b), (hidden, tokens), neuron, norm),
           *synapse_neuron(lambda b: conv1x1_tokens(hidden, dim, b), (dim, tokens), neuron, norm)]
    return [Residual(SpikingSelfAttention(dim, heads, tokens, neuron, norm)), Residual(*mlp)]


def init_transformer_(model: nn.Module) -> nn.Module:
    """Truncated-normal (std 0.02) weights and zero biases for every conv and linear (the papers' code)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


@register("model", "spikformer")
def spikformer(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    dim: int = 384, depth: int = 4, heads: int = 12, mlp_ratio: float = 4.0, patch_size: Literal[4, 16] = 4,
    width: float = 1.0,
) -> SpikingNet:
    r"""Spikformer-L-D (Zhou et al. ICLR 2023): spiking patch splitting, then L blocks of spiking self-attention (no softmax) and MLP.

    ``dim`` D, ``depth`` L, ``heads``, ``patch_size`` 4 (CIFAR) or 16 (ImageNet); ``width``
    multiplies D (rounded to a multiple of ``heads``). Parameters with ``norm=bn``:
    **9,310,906** for Spikformer-4-384 on CIFAR-10 (3x32x32, 10 classes; the paper's 9.32M
    with its MLP biases) =
    SPS convs 9·(3·48 + 48·96 + 96·192 + 192·384 + 384·384) = 2,199,312 and 5 norms
    2·(48+96+192+384+384) = 2,208; per block 3D² + D² + 2·4D² = 12D² = 1,769,472 convs and
    2·(3D + D + 4D + D) = 6,912 norm parameters, times 4 = 7,105,536; readout 384·10 + 10 = 3,850.
    Spikformer-8-384 on ImageNet (``patch_size=16``, 1000 classes): 16,797,592 (the paper: 16.81M).
    """
    check(len(in_shape) == 3, "in_shape", f"Spikformer needs image inputs [C, H, W], got {tuple(in_shape)}")
    check(patch_size in (4, 16), "patch_size", f"must be 4 (CIFAR: the last two stages pool) or 16 (all four), got {patch_size}")
    check(depth >= 1, "depth", f"must be >= 1, got {depth}")
    check(heads >= 1, "heads", f"must be >= 1, got {heads}")
    D = max(heads, round(dim * width / heads) * heads)
    check(D % 8 == 0, "dim", f"dim x width = {D} must be a multiple of 8 (the patch stages have D/8 ... D channels)")
    c, h, w = in_shape
    layers: list[nn.Module] = []
    pool_from = 2 if patch_size == 4 else 0
    for i, out in enumerate([D // 8, D // 4, D // 2, D]):
        pool = i >= pool_from and h >= 2 and w >= 2
        hp, wp = (conv_size(h, 3, 2, 1), conv_size(w, 3, 2, 1)) if pool else (h, w)
        layers += synapse_neuron(lambda b, c=c, out=out: conv2d(c, out, 3, 1, 1, bias=b), (out, h, w), neuron, norm,
                                 pool=SeqWrap(nn.MaxPool2d(3, 2, 1)) if pool else None, pooled=(out, hp, wp))
        c, h, w = out, hp, wp
    layers.append(Residual(*synapse_neuron(lambda b: conv2d(D, D, 3, 1, 1, bias=b), (D, h, w), neuron, norm)))
    layers.append(Tokens())
    for _ in range(depth):
        layers += spikformer_block(D, heads, h * w, mlp_ratio, neuron, norm)
    layers += [TokenMean(), linear(D, num_classes)]
    return init_transformer_(SpikingNet(*layers))

