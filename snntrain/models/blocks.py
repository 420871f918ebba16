r"""Residual blocks of the spiking ResNets, and SEW's connect functions.

A block computes ``out(connect(branch(x), shortcut(x)))`` on whole ``[T, B, C, H, W]``
sequences; ``branch``, ``shortcut`` and ``out`` are ``nn.Sequential`` stacks of sequence
layers (an empty one passes its input through), so a conv directly followed by its norm
stays adjacent in one ``nn.Sequential``.

**Spiking ResNet** (He et al. 2016 with spiking neurons in place of ReLU; the blocks of
Zheng et al. AAAI 2021, tdBN): the pre-activations are summed and one neuron fires on the sum,

.. math:: O = \mathrm{SN}\big(\mathrm{N}_2(W_2 * \mathrm{SN}(\mathrm{N}_1(W_1 * S))) + \mathrm{N}_s(W_s * S)\big)

with :math:`\mathrm{N}_s W_s` the identity when shape and stride allow. tdBN scales the
two summed norms by :math:`\alpha = 1/\sqrt{2}` so that the sum keeps the variance of
one branch (Zheng et al. 2021, Sec. "tdBN in residual blocks").

**SEW ResNet** (Fang et al., "Deep Residual Learning in Spiking Neural Networks",
NeurIPS 2021, Eq. 4–6): the branch ends with its own neuron, :math:`A = \mathrm{SN}(F(S))`,
and the block's output is an element-wise function of the two spike tensors,

.. math:: \mathrm{ADD}: A + S, \qquad \mathrm{AND}: A \wedge S = A \cdot S, \qquad
          \mathrm{IAND}: (\lnot A) \wedge S = (1 - A) \cdot S

(:math:`S` the block input, or the spikes of the downsampling shortcut).
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

#: SEW connect functions g(A, S): A the residual branch's spikes, S the shortcut's (Fang et al. 2021)
CONNECT: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "add": lambda a, s: a + s,
    "and": lambda a, s: a * s,
    "iand": lambda a, s: (1.0 - a) * s,
}


class ResidualBlock(nn.Module):
    """``out(connect(branch(x), shortcut(x)))`` on ``[T, B, ...]`` sequences; ``connect`` names a :data:`CONNECT` function."""

    def __init__(
        self, branch: list[nn.Module], shortcut: list[nn.Module], out: list[nn.Module], connect: str = "add"
    ) -> None:
        super().__init__()
        if connect not in CONNECT:
            raise ValueError(f"connect must be one of {', '.join(CONNECT)}, got {connect!r}")
        self.branch = nn.Sequential(*branch)
        self.shortcut = nn.Sequential(*shortcut)
        self.out = nn.Sequential(*out)
        self.connect = connect

    def forward(self, x_seq: Tensor) -> Tensor:
        return self.out(CONNECT[self.connect](self.branch(x_seq), self.shortcut(x_seq)))

    def extra_repr(self) -> str:
        return f"connect={self.connect!r}"
