r"""NeuNorm: normalization by an auxiliary neuron, placed after the spiking layer.

Wu et al., "Direct Training for Spiking Neural Networks: Faster, Larger, Better",
AAAI 2019 (arXiv:1809.05793). An auxiliary neuron per position integrates the
channel-summed spikes of the layer, and its state is subtracted from every channel:

.. math:: X_t = k X_{t-1} + \frac{1-k}{F^2} \sum_{c=1}^{F} S_{t,c}, \qquad
          Y_{t,c} = S_{t,c} - w_c X_t, \qquad X_0 = 0

with :math:`F` channels and :math:`k = k_{\tau 2}` (so that :math:`k + vF = 1` gives
:math:`v/F = (1-k)/F^2`). :math:`w` has one value per (channel, position), or per
position if ``shared_across_channels``; it is initialised like SpikingJelly's
``layer.NeuNorm`` (``kaiming_uniform_(a=sqrt(5))``), which this equals. On 1d inputs
``[T, B, F]`` the sum runs over the F features. The auxiliary state is created fresh
in every forward call; ``step(s, state)`` is the streaming form.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register


@register("norm", "neunorm")
class NeuNorm(nn.Module):
    r"""NeuNorm (Wu et al. 2019), after the neuron: :math:`X_t = k X_{t-1} + \frac{1-k}{F^2}\sum_c S_{t,c}`, :math:`Y_t = S_t - w X_t`."""

    batch_statistics = False  # no batch statistics: nothing to synchronise across processes

    #: the model places this layer after the spiking neuron instead of before it
    after_neuron = True

    #: why it does not fold into the preceding conv (snntrain.norm.fold)
    cannot_fold = (
        "neunorm acts after the neuron and subtracts a recurrent state of the spikes; it is not an "
        "affine map of the conv output"
    )

    def __init__(self, shape: tuple[int, ...] | list[int], k: float = 0.9, shared_across_channels: bool = False):
        super().__init__()
        check(0 <= k < 1, "k", f"must be in [0, 1), got {k}")
        shape = tuple(int(s) for s in shape)
        self.k = float(k)
        self.input_scale = (1.0 - self.k) / shape[0] ** 2
        w_shape = (1, *shape[1:]) if shared_across_channels else shape
        self.w = nn.Parameter(torch.empty(w_shape))
        if self.w.dim() >= 2:
            nn.init.kaiming_uniform_(self.w, a=math.sqrt(5))
        else:  # 1d features: kaiming needs two dims; same bound as a Linear of fan-in F
            bound = 1 / math.sqrt(shape[0])
            nn.init.uniform_(self.w, -bound, bound)

    stateful = True  # step(s, x) -> (y, x): the auxiliary neuron's state

    def step(self, s: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step ``[B, C, ...]``: :math:`X_t` from :math:`X_{t-1}` (``state``, None: 0)."""
        d = self.input_scale * s.sum(dim=1, keepdim=True)
        x = d if state is None else self.k * state + d
        return s - self.w * x, x

    def forward(self, s_seq: Tensor) -> Tensor:
        drive = self.input_scale * s_seq.sum(dim=2, keepdim=True)  # [T, B, 1, ...]
        x = torch.zeros_like(drive[0])
        states = []
        for d in drive:
            x = self.k * x + d
            states.append(x)
        return s_seq - self.w * torch.stack(states)

    def extra_repr(self) -> str:
        return f"w={tuple(self.w.shape)}, k={self.k}"
