r"""Spike-driven Transformer (Yao et al., "Spike-driven Transformer", NeurIPS 2023).

Every synapse sees spikes only: blocks use the *membrane shortcut* — the residual
connects membrane potentials (norm outputs), and each branch starts with its own neuron.
On maps :math:`U \in \mathbb{R}^{T \times B \times D \times H \times W}` (``[T, B, D, H, W]``):

**Patch embedding.** Three ``conv3x3 -> norm -> neuron -> [max pool]`` stages of widths
:math:`D/8, D/4, D/2`, a ``conv3x3 -> norm -> [max pool]`` to :math:`D` giving :math:`U_0`,
and the relative position embedding :math:`U = U_0 + \mathrm{N}(\mathrm{Conv}(\mathrm{SN}(U_0)))`.
``pooling`` says which of the four stages pool (3x3, stride 2): ``"0011"`` for CIFAR
(32 -> 8), ``"1111"`` for ImageNet (224 -> 14).

**Blocks** (:math:`L` of them): spike-driven self-attention (SDSA, Eq. 8 of the paper) and an MLP,

.. math::
    S = \mathrm{SN}(U), \quad Q, K, V = \mathrm{SN}(\mathrm{N}(\mathrm{Conv}_{1\times1}(S))), \quad
    U' = U + \mathrm{N}(\mathrm{Conv}_{1\times1}(Q \otimes \mathrm{SN}_{0.5}(\mathrm{SUM}_c(K \otimes V)))),

.. math::
    U'' = U' + \mathrm{N}(\mathrm{Conv}(\mathrm{SN}(\mathrm{N}(\mathrm{Conv}(\mathrm{SN}(U'))))))

where :math:`\otimes` is the Hadamard product and :math:`\mathrm{SUM}_c` sums over the
tokens per channel (so SDSA costs O(N D), no matrix products of spikes); the neuron on
:math:`\mathrm{SUM}_c` fires at :math:`V_{th} = 0.5`. The head: a neuron on the token mean,
then a linear readout at every step (the loss averages over time; the paper averages the
spikes over time first, the same for a linear readout).

Equals SpikingJelly's ``model.spike_driven_transformer`` (same weights -> same output)
with ``conv_bias=true``, its biases before the batch norms (every conv of the patch
embedding and MLP, and the attention's output projection). tdBN's :math:`\alpha = 1/\sqrt2` goes to the norms whose
outputs are summed (read only by ``tdbn``); with NeuNorm the norm follows every neuron.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..errors import check
from ..layers import SeqWrap, conv2d, linear
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, conv_size
from .parts import Residual, TokenMean, Tokens, neuron_then, synapse_neuron, synapse_norm, with_threshold
from .resnet import RESIDUAL_ALPHA


def _conv(c_in: int, c_out: int, k: int):
    return lambda b: conv2d(c_in, c_out, k, 1, k // 2, bias=b)


class SpikeDrivenSelfAttention(nn.Module):
    r"""SDSA on ``[T, B, D, H, W]``: :math:`U + \mathrm{N}(W_O (Q \otimes \mathrm{SN}_{0.5}(\mathrm{SUM}_c(K \otimes V))))`, :math:`Q,K,V` from :math:`\mathrm{SN}(U)`."""

    def __init__(self, dim: int, shape: tuple[int, int], neuron: NeuronFactory, norm: NormFactory, conv_bias: bool = False):
        super().__init__()
        s = (dim, *shape)
        self.shortcut_neuron = nn.Sequential(*neuron_then(s, neuron, norm))
        self.q, self.k, self.v = (nn.Sequential(*synapse_neuron(_conv(dim, dim, 1), s, neuron, norm, bias=False if conv_bias else None))
                                  for _ in range(3))
        self.attn_neuron = with_threshold(neuron((dim, 1)), 0.5)
        self.proj = nn.Sequential(*synapse_norm(_conv(dim, dim, 1), s, norm, bias=conv_bias or None, alpha=RESIDUAL_ALPHA))

    def forward(self, u: Tensor) -> Tensor:
        x = self.shortcut_neuron(u)
        q, k, v = self.q(x), self.k(x), self.v(x)
        kv = self.attn_neuron((k * v).flatten(3).sum(-1, keepdim=True))  # SUM_c over the tokens: [T, B, D, 1]
        return u + self.proj(q * kv.unsqueeze(-1))


def sdt_mlp(dim: int, hidden: int, shape: tuple[int, int], neuron: NeuronFactory, norm: NormFactory,
            conv_bias: bool = False) -> Residual:
    """The membrane-shortcut MLP: :math:`U + \\mathrm{N}(\\mathrm{Conv}(\\mathrm{SN}(\\mathrm{N}(\\mathrm{Conv}(\\mathrm{SN}(U))))))`."""
    s, sh = (dim, *shape), (hidden, *shape)
    b = conv_bias or None  # None: a bias only without a norm (bias_before)
    return Residual(*neuron_then(s, neuron, norm), *synapse_norm(_conv(dim, hidden, 1), sh, norm, bias=b),
                    *neuron_then(sh, neuron, norm), *synapse_norm(_conv(hidden, dim, 1), s, norm, bias=b, alpha=RESIDUAL_ALPHA))


@register("model", "spike_driven_transformer")
def spike_driven_transformer(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    dim: int = 512, depth: int = 2, heads: int = 8, mlp_ratio: float = 4.0, pooling: str = "0011", width: float = 1.0,
    conv_bias: bool = False,
) -> SpikingNet:
    r"""Spike-driven Transformer-L-D (Yao et al. NeurIPS 2023): membrane shortcuts and spike-driven self-attention (Hadamard products, no matrix products).

    ``dim`` D, ``depth`` L, ``pooling`` (which of the four patch stages pool: ``0011`` CIFAR,
    ``1111`` ImageNet); ``width`` multiplies D. ``heads`` only splits the channels (SDSA
    acts per channel, so it changes nothing but must divide D). ``conv_bias``: the biases
    SpikingJelly's code puts before batch norms (patch and MLP convs, the attention's output;
    a batch norm cancels them, so by default they are left out, as everywhere here).
    Parameters with ``norm=bn``: **10,227,274** for Spike-driven Transformer-2-512 on CIFAR-10,
    and with ``conv_bias=true`` 10,234,378 (SpikingJelly's count) for Spike-driven Transformer-2-512 on CIFAR-10 (3x32x32, 10 classes; the
    paper's 10.28M) = patch convs 9·(3·64 + 64·128 + 128·256 + 256·512 + 512·512) = 3,909,312,
    their biases 64 + 128 + 256 + 512 = 960 (``conv_bias``; the position conv has none) and 5 norms
    2·(64 + 128 + 256 + 512 + 512) = 2,944; per block Q, K, V, O 4D² + O's bias D and MLP
    2·4D² + biases 4D + D (``conv_bias``), norms 2·(3D + D + 4D + D): 3,158,016, times 2; readout 512·10 + 10.
    Spike-driven Transformer-8-384 on ImageNet (``pooling=1111``, 1000 classes, ``conv_bias=true``): 16,816,744
    (the paper: 16.81M).
    """
    check(len(in_shape) == 3, "in_shape", f"the Spike-driven Transformer needs image inputs [C, H, W], got {tuple(in_shape)}")
    check(len(pooling) == 4 and set(pooling) <= {"0", "1"}, "pooling", f"must be four characters 0/1, got {pooling!r}")
    check(depth >= 1, "depth", f"must be >= 1, got {depth}")
    check(heads >= 1, "heads", f"must be >= 1, got {heads}")
    D = max(heads, round(dim * width / heads) * heads)
    check(D % 8 == 0 and D % heads == 0, "dim", f"dim x width = {D} must be a multiple of 8 and of heads={heads}")
    c, h, w = in_shape

    def pool(h: int, w: int, on: str) -> tuple[list[nn.Module], int, int]:
        if on == "1" and h >= 2 and w >= 2:
            return [SeqWrap(nn.MaxPool2d(3, 2, 1))], conv_size(h, 3, 2, 1), conv_size(w, 3, 2, 1)
        return [], h, w

    layers: list[nn.Module] = []
    for out, on in zip([D // 8, D // 4, D // 2], pooling[:3]):
        layers += synapse_neuron(_conv(c, out, 3), (out, h, w), neuron, norm, bias=conv_bias or None)
        p, h2, w2 = pool(h, w, on)
        layers += p
        c, h, w = out, h2, w2
    layers += synapse_norm(_conv(c, D, 3), (D, h, w), norm, bias=conv_bias or None)
    p, h, w = pool(h, w, pooling[3])
    layers += p
    s = (D, h, w)
    layers.append(Residual(*neuron_then(s, neuron, norm), *synapse_norm(_conv(D, D, 3), s, norm, bias=False if conv_bias else None, alpha=RESIDUAL_ALPHA)))
    for _ in range(depth):
        layers += [SpikeDrivenSelfAttention(D, (h, w), neuron, norm, conv_bias),
                   sdt_mlp(D, int(D * mlp_ratio), (h, w), neuron, norm, conv_bias)]
    layers += [Tokens(), TokenMean(), *neuron_then((D,), neuron, norm), linear(D, num_classes)]
    return SpikingNet(*layers)  # PyTorch's default initialisation, as SpikingJelly's (the paper's code sets none)
