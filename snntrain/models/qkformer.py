r"""QKFormer (Zhou et al., "QKFormer: Hierarchical Spiking Transformer using Q-K Attention", NeurIPS 2024).

A hierarchical spiking transformer: three stages of widths :math:`D/4, D/2, D`, each
entered by a spiking patch embedding with a spiking shortcut (``conv -> norm -> [max pool]
-> neuron`` layers, their output added to ``conv1x1 (stride 2) -> norm -> neuron`` of their
input), then blocks :math:`X' = X + \mathrm{Attn}(X)`, :math:`X'' = X' + \mathrm{MLP}(X')` on
the tokens. The first two stages use **Q-K attention** (linear in the token count N),
the last Spikformer's SSA (:mod:`snntrain.models.spikformer`):

.. math::
    Q, K = \mathrm{SN}(\mathrm{N}(X W_{Q,K})), \qquad
    A_t = \mathrm{SN}_{0.5}\Big(\sum_{i} Q_{i,t}\Big), \qquad
    \mathrm{QKTA}(X) = \mathrm{SN}(\mathrm{N}((A \otimes K) W_O))

per head, with the sum over the head's channels :math:`i` for each token :math:`t`
(``qk_attention=token``: a binary token mask) or, ``channel``, over the tokens for each
channel (a channel mask). The MLP is ``1x1 conv -> norm -> neuron`` twice (ratio 4). The
head averages the tokens and reads out with a linear layer at every step.

Equals SpikingJelly's ``model.qkformer`` (same weights -> same output) with
``conv_bias=true`` (its biases before the batch norms, in the patch embeddings and MLPs).
"""
from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from ..errors import check
from ..layers import SeqWrap, conv2d, linear
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, conv_size
from .parts import Residual, TokenMean, Tokens, conv1x1_tokens, synapse_neuron, with_threshold
from .spikformer import SpikingSelfAttention


class QKAttention(nn.Module):
    r"""Q-K attention on tokens ``[T, B, D, N]``: :math:`\mathrm{SN}(\mathrm{N}(W_O(\mathrm{SN}_{0.5}(\sum Q) \otimes K)))`."""

    def __init__(self, dim: int, heads: int, tokens: int, neuron: NeuronFactory, norm: NormFactory,
                 mode: Literal["token", "channel"] = "token"):
        super().__init__()
        self.heads, self.mode = heads, mode
        self.qk = nn.Sequential(*synapse_neuron(lambda b: conv1x1_tokens(dim, 2 * dim, b), (2 * dim, tokens), neuron, norm))
        shape = (heads, 1, tokens) if mode == "token" else (heads, dim // heads, 1)
        self.attn_neuron = with_threshold(neuron(shape), 0.5)
        self.proj = nn.Sequential(*synapse_neuron(lambda b: conv1x1_tokens(dim, dim, b), (dim, tokens), neuron, norm))

    def forward(self, x: Tensor) -> Tensor:
        T, B, D, N = x.shape
        q, k = self.qk(x).reshape(T, B, 2, self.heads, D // self.heads, N).unbind(2)  # [T, B, h, d, N]
        a = self.attn_neuron(q.sum(3 if self.mode == "token" else 4, keepdim=True))
        return self.proj((a * k).reshape(T, B, D, N))

    def extra_repr(self) -> str:
        return f"heads={self.heads}, mode={self.mode}"


class OnTokens(nn.Module):
    """Runs token layers on maps: ``[T, B, C, H, W] -> [T, B, C, H*W] -> layers -> [T, B, C, H, W]``."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(3)).view(x.shape)


def qk_block(dim: int, heads: int, tokens: int, mlp_ratio: float, neuron: NeuronFactory, norm: NormFactory,
             attention: str, conv_bias: bool) -> OnTokens:
    hidden = int(dim * mlp_ratio)
    b = True if conv_bias else None
    attn = (SpikingSelfAttention(dim, heads, tokens, neuron, norm) if attention == "ssa"
            else QKAttention(dim, heads, tokens, neuron, norm, attention))  # type: ignore[arg-type]
    mlp = [*synapse_neuron(lambda _: conv1x1_tokens(dim, hidden, b), (hidden, tokens), neuron, norm, bias=b),
           *synapse_neuron(lambda _: conv1x1_tokens(hidden, dim, b), (dim, tokens), neuron, norm, bias=b)]
    return OnTokens(Residual(attn), Residual(*mlp))


class WithShortcut(nn.Module):
    """``branch(x) + shortcut(x)`` (both end in neurons: spikes are added)."""

    def __init__(self, branch: list[nn.Module], shortcut: list[nn.Module]):
        super().__init__()
        self.branch, self.shortcut = nn.Sequential(*branch), nn.Sequential(*shortcut)

    def forward(self, x: Tensor) -> Tensor:
        return self.branch(x) + self.shortcut(x)


@register("model", "qkformer")
def qkformer(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    dim: int = 384, depths: list[int] = (1, 2, 7), heads: list[int] = (6, 6, 6), mlp_ratio: float = 4.0,
    qk_attention: Literal["token", "channel"] = "token", width: float = 1.0, conv_bias: bool = False,
) -> SpikingNet:
    r"""QKFormer (Zhou et al. NeurIPS 2024): three stages (D/4, D/2, D) of patch embedding + blocks, Q-K attention in the first two, SSA in the last.

    ``depths`` and ``heads`` per stage; ``width`` multiplies D; ``conv_bias``: SpikingJelly's
    biases before the batch norms. Parameters with ``norm=bn`` for the 10-384 model on
    ImageNet (3x224x224, 1000 classes): **16,454,680**, and 16,472,584 with ``conv_bias=true``
    — SpikingJelly's ``qkformer_10_384`` (the paper's HST-10-384: 16.47M).
    """
    check(len(in_shape) == 3, "in_shape", f"QKFormer needs image inputs [C, H, W], got {tuple(in_shape)}")
    depths, heads = list(depths), list(heads)
    check(len(depths) == 3 and all(d >= 0 for d in depths), "depths", f"three stage depths >= 0, got {depths}")
    check(len(heads) == 3 and all(h >= 1 for h in heads), "heads", f"three head counts >= 1, got {heads}")
    D = round(dim * width / 4) * 4
    dims = [D // 4, D // 2, D]
    for d, h in zip(dims, heads):
        check(d >= h and d % h == 0, "heads", f"stage width {d} (of dim x width = {D}) must be a multiple of its heads {h}")
    b = True if conv_bias else None
    c, h, w = in_shape

    # a map of 2x2 or less is not downsampled further (small inputs keep at least 4 tokens; 224x224 is unaffected)
    def pooled(h: int, w: int) -> tuple[int, int]:
        return (conv_size(h, 3, 2, 1), conv_size(w, 3, 2, 1)) if h > 2 and w > 2 else (h, w)

    def pool(h: int, w: int):
        return SeqWrap(nn.MaxPool2d(3, 2, 1)) if h > 2 and w > 2 else None

    def shortcut(c_in: int, c_out: int, h: int, w: int) -> list[nn.Module]:
        s = 2 if h > 2 and w > 2 else 1
        hs, ws = conv_size(h, 1, s), conv_size(w, 1, s)
        return synapse_neuron(lambda bb: conv2d(c_in, c_out, 1, s, 0, bias=bb), (c_out, hs, ws), neuron, norm, bias=b)

    # stage 1 embedding: conv-norm-pool-neuron to D/8, then [conv-norm-pool-neuron, conv-norm-neuron] + shortcut
    half = dims[0] // 2
    layers: list[nn.Module] = []
    h1, w1 = pooled(h, w)
    layers += synapse_neuron(lambda bb: conv2d(c, half, 3, 1, 1, bias=bb), (half, h, w), neuron, norm, pool=pool(h, w),
                             pooled=(half, h1, w1), bias=b)
    h2, w2 = pooled(h1, w1)
    branch = [*synapse_neuron(lambda bb: conv2d(half, dims[0], 3, 1, 1, bias=bb), (dims[0], h1, w1), neuron, norm,
                              pool=pool(h1, w1), pooled=(dims[0], h2, w2), bias=b),
              *synapse_neuron(lambda bb: conv2d(dims[0], dims[0], 3, 1, 1, bias=bb), (dims[0], h2, w2), neuron, norm, bias=b)]
    layers.append(WithShortcut(branch, shortcut(half, dims[0], h1, w1)))
    h, w = h2, w2
    for i, d in enumerate(dims):
        if i > 0:  # stage embedding: conv-norm-pool-neuron, conv-norm-neuron, + shortcut
            hp, wp = pooled(h, w)
            branch = [*synapse_neuron(lambda bb, c0=dims[i - 1], d=d: conv2d(c0, d, 3, 1, 1, bias=bb), (d, h, w), neuron,
                                      norm, pool=pool(h, w), pooled=(d, hp, wp), bias=b),
                      *synapse_neuron(lambda bb, d=d: conv2d(d, d, 3, 1, 1, bias=bb), (d, hp, wp), neuron, norm, bias=b)]
            layers.append(WithShortcut(branch, shortcut(dims[i - 1], d, h, w)))
            h, w = hp, wp
        attention = "ssa" if i == 2 else qk_attention
        layers += [qk_block(d, heads[i], h * w, mlp_ratio, neuron, norm, attention, conv_bias) for _ in range(depths[i])]
    layers += [Tokens(), TokenMean(), linear(D, num_classes)]
    return SpikingNet(*layers)
