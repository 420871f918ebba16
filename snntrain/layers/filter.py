r"""Synaptic low-pass filter over time (SpikingJelly's ``SynapseFilter``)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register


@register("layer", "synapse_filter")
class SynapseFilter(nn.Module):
    r"""First-order synaptic filter: the current jumps by each input spike and decays with time constant tau.

    Continuous form: :math:`\tau \frac{dI}{dt} = -I` between spikes, :math:`I \leftarrow I + 1`
    at a spike. Discretised, for input :math:`S[t]` (spikes, or any real input):

    .. math::
        I[t] = I[t-1] - \bigl(1 - S[t]\bigr)\frac{1}{\tau} I[t-1] + S[t], \qquad I[-1] = 0,

    and the output is :math:`I[t]` (a LIF neuron with an infinite threshold). For binary
    input the current decays by :math:`1 - 1/\tau` on silent steps and grows by 1 on
    spike steps. ``tau > 1``.

    ``learnable=True`` learns :math:`\tau` through :math:`1/\tau = \mathrm{sigmoid}(w)`,
    :math:`w_0 = -\ln(\tau_0 - 1)` (SpikingJelly's parametrisation, same parameter name
    ``w``, so :math:`\tau > 1` always holds). SpikingJelly 2.0 has no ``plain`` option
    for this layer, so none is offered.

    Sources: P. U. Diehl, M. Cook, "Unsupervised learning of digit recognition using
    spike-timing-dependent plasticity", Front. Comput. Neurosci. 2015; H. Fang, A.
    Shrestha, Z. Zhao, Q. Qiu, "Exploiting Neuron and Synapse Filter Dynamics in Spatial
    Temporal Learning of Deep Spiking Neural Network", IJCAI 2020; SpikingJelly
    ``layer.SynapseFilter``.

    ``forward(x_seq)`` starts from :math:`I = 0`; streaming is
    ``step(x, state=None) -> (I, I)``.
    """

    stateful = True

    def __init__(self, tau: float = 100.0, learnable: bool = False):
        super().__init__()
        check(tau > 1, "tau", f"must be > 1 (the decay per step is 1 - 1/tau), got {tau}")
        self.learnable = learnable
        if learnable:
            self.w = nn.Parameter(torch.tensor(-math.log(tau - 1)))
        else:
            self.tau = float(tau)

    def inv_tau(self) -> Tensor | float:
        return self.w.sigmoid() if self.learnable else 1.0 / self.tau

    def step(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        i = torch.zeros_like(x) if state is None else state
        i = i - (1.0 - x) * i * self.inv_tau() + x
        return i, i

    def forward(self, x_seq: Tensor) -> Tensor:
        inv_tau = self.inv_tau()
        i, out = torch.zeros_like(x_seq[0]), []
        for x in x_seq:
            i = i - (1.0 - x) * i * inv_tau + x
            out.append(i)
        return torch.stack(out)

    def extra_repr(self) -> str:
        tau = 1.0 / float(self.w.detach().sigmoid()) if self.learnable else self.tau
        return f"tau={tau:g}, learnable={self.learnable}"
