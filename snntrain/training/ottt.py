r"""Online training through time (``trainer=ottt``).

Xiao, Meng, Zhang, He & Lin, "Online Training Through Time for Spiking Neural Networks",
NeurIPS 2022. Like SLTT (:mod:`snntrain.training.sltt`) every step is run forward from the
detached state of the step before and its loss :math:`\ell(o_t, y)/T` back-propagated at
once through the layers, but the weight gradient of a synapse fed by spikes uses the
*presynaptic trace* in place of the spikes, which carries the temporal credit that the
cut through the membrane drops (OTTT\ :sub:`A`, the gradients accumulated over the T
steps and applied once, Eq. 9 of the paper):

.. math::
    \hat a^{l}_t = \lambda\,\hat a^{l}_{t-1} + s^{l}_t, \qquad
    \nabla_{W^{l+1}} \mathcal{L} = \sum_{t=1}^{T} g^{l+1}_t\, (\hat a^{l}_t)^\top,
    \qquad g^{l+1}_t = \frac{\partial \ell_t}{\partial u^{l+1}_t}\ \text{(through the layers only)},

with :math:`\lambda` the LIF decay (:math:`1 - 1/\tau`; 1 for IF). The forward values and
the gradient sent to the spikes are unchanged (:math:`W^\top g`); only the weight sees
:math:`\hat a`. Every conv or linear synapse of the model except the first (which reads
the encoded input, not spikes) is run this way; a pooling layer between a neuron and its
synapse acts on the spikes, and the trace is taken of its output. Memory does not grow
with T: one step's graph plus one trace per synapse input.

Equal to SpikingJelly's ``OTTTLIFNode`` with ``OTTTSequential`` trained step by step
(tested). The neuron must be ``lif`` or ``if`` (the trace is the LIF kernel); other
neurons are refused by name. Evaluation runs whole sequences as ``bptt`` does.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..layers.synapse import SeqWrap
from ..neurons.lif import decay_from
from ..registry import register
from .distributed import SINGLE, Dist
from .parts import Parts
from .sltt import SLTT

SYNAPSES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class _Replace(torch.autograd.Function):
    """Forward: ``value``; backward: the gradient goes to ``for_grad`` (and to ``value``)."""

    @staticmethod
    def forward(ctx, for_grad: Tensor, value: Tensor) -> Tensor:
        return value.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, grad


class TraceSynapse(SeqWrap):
    r"""A synapse whose weight gradient, in a training chunk, uses the presynaptic trace :math:`\hat a_t = \lambda\hat a_{t-1} + s_t`."""

    def __init__(self, wrapped: SeqWrap, decay: float):
        super().__init__(wrapped.module, pack_spikes=False)
        self.decay = float(decay)

    def forward_chunk(self, x_seq: Tensor, state: Tensor | None, t0: int) -> tuple[Tensor, Tensor]:
        outs = []
        for s in x_seq:
            with torch.no_grad():
                trace = s.detach() if state is None else self.decay * state + s.detach()
                value = self.module(s)
            if torch.is_grad_enabled() and self.training:
                # the graph of module(trace): gradient W^T g to the spikes, g trace^T to the weight
                out = _Replace.apply(self.module(_Replace.apply(s, trace)), value)
            else:
                out = self.module(s)
            outs.append(out)
            state = trace
        return torch.stack(outs), state

    def __repr__(self) -> str:
        return f"Trace{self.module!r}(decay={self.decay:g})"


def trace_synapses(model: nn.Module, decay: float) -> int:
    """Replace every conv/linear ``SeqWrap`` after the first by a :class:`TraceSynapse`; how many were replaced."""
    found = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
             if type(child) is SeqWrap and isinstance(child.module, SYNAPSES)]
    for parent, name, child in found[1:]:  # the first synapse reads the encoded input
        setattr(parent, name, TraceSynapse(child, decay))
    return len(found) - 1


@register("trainer", "ottt")
class OTTT(SLTT):
    r"""OTTT (Xiao et al. NeurIPS 2022): step-by-step back-propagation with presynaptic traces :math:`\hat a_t = \lambda \hat a_{t-1} + s_t` for the weight gradients."""

    def __init__(self, parts: Parts, loop: dict[str, Any], device: torch.device, dist: Dist = SINGLE):
        neuron = parts.section("neuron")
        if neuron["name"] not in ("lif", "if"):
            raise ConfigError(
                f"neuron: trainer=ottt needs neuron=lif or neuron=if (its presynaptic trace is the LIF kernel), "
                f"got neuron={neuron['name']}. Use trainer=sltt or trainer=bptt for other neurons."
            )
        decay = 1.0 if neuron["name"] == "if" else decay_from(neuron.get("decay"), neuron.get("tau"))
        super().__init__(parts, loop, device, dist)
        if trace_synapses(self.model, decay) == 0:
            raise ConfigError("model: trainer=ottt found no conv or linear synapse fed by spikes in this model.")
