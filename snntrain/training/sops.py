r"""Synaptic operations (SOPs) and an energy estimate, counted by hooks during evaluation.

**What is counted.** Every synapse layer (``nn.Linear``, ``nn.Conv{1,2,3}d``,
``nn.ConvTranspose{1,2,3}d`` and :class:`~snntrain.layers.dropout.DropConnectLinear`,
inside snntrain's sequence wrappers or on their own) counts, at each call, the
operations that a nonzero input element actually causes, NeuroBench's *effective*
synaptic operations (Yik et al., "NeuroBench", Nature Communications 2025;
``neurobench.metrics.workload.SynapticOperations``):

.. math:: \mathrm{ops} = \sum_{n}\sum_{o}\sum_{i \to o} [x_{n,i} \ne 0]\,[w_{o,i} \ne 0]

over the rows ``n`` of the call (``T·B`` of a sequence), the outputs ``o`` and the
input elements ``i`` that feed ``o`` through a weight :math:`w_{o,i}`. So a zero input
(no spike) and a zero (pruned) weight cost nothing. Biases are not counted (NeuroBench
zeroes them before counting: "bias is not considered as a synaptic operation").

* **Linear** (``in -> out``): :math:`\mathrm{ops} = \sum_i c_i\, k_i`, with
  :math:`c_i = \sum_n [x_{n,i} \ne 0]` the nonzero count of input feature ``i`` and
  :math:`k_i = \sum_o [w_{o,i} \ne 0]` its fan-out (``out_features`` for a dense weight).
* **Convolution** (``groups`` :math:`g`, any stride, padding, dilation, padding mode): an
  input element contributes once per (output channel of its group, kernel position that
  lands on it). Convolutions are linear in the input and the weight, so the exact count
  is one small convolution, :math:`\mathrm{ops} = \sum \mathrm{conv}\big(\sum_n [x_n \ne 0],\
  \sum_{o \in \text{group}} [W_o \ne 0]\big)`: the input mask summed over the rows,
  convolved (same stride, padding, dilation, groups) with the weight mask summed over the
  output channels of each group (a kernel of ones times ``out_channels/g`` for a dense
  weight); padded zeros cost nothing, reflected or circular padding counts its copies.
  Transposed convolutions the same way with ``conv_transpose``. ``DropConnectLinear`` counts as
  the one linear map of its inference mean (its ``relu`` sampling is not counted).
* **Dense** ops: the same with every input and weight counted (NeuroBench's ``Dense``),
  :math:`N \cdot in \cdot out` for Linear.

**AC or MAC.** An input whose every element is 0, 1 or -1 (spikes; NeuroBench's test)
needs only additions of the weights: its ops are accumulates (AC). Any other input (the
first layer on analog pixels, a layer after an average pool or a non-spiking op, graded
spikes) needs multiply-accumulates (MAC). The test is made per call, i.e. once per
layer per evaluation batch over all T steps (NeuroBench's snnTorch wrapper calls, and
tests, once per time step; the counts differ only if a layer's input is binary at some
steps of a batch and not at others).

**Reported** (per sample, NeuroBench's ``Effective_ACs``/``Effective_MACs``/``Dense``
are also per sample, summed over the time steps): ``ac``, ``mac``, ``dense``, ``ac_per_step``,
``mac_per_step`` (divided by T) and the same per stage under ``stages``: a synapse layer
belongs to the spiking stage it drives, the next neuron layer after it in
``named_modules()`` order (``stage1``, ``stage2``, ... as in
:func:`snntrain.neurons.neuron_layers`), and the layers after the last neuron to ``readout``.
Not counted: the recurrent weights inside a neuron (``rleaky``, ``rsynaptic``, ``slstm``)
and the norms, poolings and neuron updates.

**Energy.** :math:`E = N_{AC} E_{AC} + N_{MAC} E_{MAC}` per sample, with the 45 nm CMOS
figures of M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014: a 32-bit float add 0.9 pJ and a 32-bit float multiply 3.7 pJ, so
:math:`E_{AC} = 0.9` pJ and :math:`E_{MAC} = 3.7 + 0.9 = 4.6` pJ. The comparison is the same
network as an ANN: one dense pass per sample with every synaptic operation a MAC,
:math:`E_{ANN} = (\mathrm{dense}/T)\, E_{MAC}` (for event data, where an ANN would see all T
frames too, compare with :math:`\mathrm{dense}\, E_{MAC}`). Memory access, which dominates real
hardware, is not included; these figures compare operation counts, as the SNN papers
that quote them do.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.dropout import DropConnectLinear
from ..layers.synapse import SeqWrap
from ..neurons import SpikingNeuron

#: energy per operation in pJ (Horowitz, ISSCC 2014, 45 nm, 32-bit float): add 0.9, multiply 3.7
E_AC_PJ = 0.9
E_MAC_PJ = 4.6  # multiply 3.7 + add 0.9

_LINEAR = (nn.Linear, DropConnectLinear)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
SYNAPSES = _LINEAR + _CONV + _CONV_T


def is_spikes(x: Tensor, nonzero: Tensor | None = None) -> bool:
    """Whether every element of ``x`` is 0, 1 or -1 (NeuroBench's test for a spiking input); ``nonzero``: ``x != 0``."""
    return bool((x.abs() == (x != 0 if nonzero is None else nonzero)).all())


def _group_sum(mask: Tensor, groups: int, out_dim: int) -> Tensor:
    """Sum a conv weight mask over the output channels of each group, keeping one channel per group."""
    if out_dim == 0:  # conv: [out, in/g, *k] -> [g, in/g, *k]
        return mask.view(groups, -1, *mask.shape[1:]).sum(1)
    # transposed conv: [in, out/g, *k] -> [in, 1, *k]
    return mask.sum(1, keepdim=True)


def layer_ops(layer: nn.Module, x: Tensor, dense: bool = False, nonzero: Tensor | None = None) -> float:
    """Synaptic operations of one call of ``layer`` on ``x`` (see the module docstring); ``dense``: count all.

    ``nonzero`` is ``x != 0`` where the caller has it already.
    """
    w = layer.weight.detach()
    wm = torch.ones_like(w, dtype=torch.float64) if dense else (w != 0).double()
    nz = None if dense else (x.detach() != 0 if nonzero is None else nonzero)
    if isinstance(layer, _LINEAR):
        rows = x.numel() // x.shape[-1]
        c = torch.full((x.shape[-1],), float(rows), dtype=torch.float64, device=x.device) if dense else \
            nz.reshape(-1, x.shape[-1]).sum(0).double()
        return float(c @ wm.sum(0))
    spatial = w.dim() - 2
    features = x.shape[-spatial - 1:]
    rows = x.numel() // features.numel()  # a sequence [T, B, C, ...] counts as [T*B, C, ...]
    m = x.new_ones((1, *features), dtype=torch.float64) if dense else \
        nz.reshape(-1, *features).sum(0, keepdim=True).double()
    if isinstance(layer, _CONV):
        k = _group_sum(wm, layer.groups, 0)
        y = layer._conv_forward(m, k, None)  # the layer's own padding mode, stride, dilation, groups
    else:
        k = _group_sum(wm, layer.groups, 1)
        conv_t = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[spatial]
        y = conv_t(m, k, None, layer.stride, layer.padding, layer.output_padding, layer.groups, layer.dilation)
    return float(y.sum()) * (rows if dense else 1)


def synapse_stages(model: nn.Module) -> dict[nn.Module, str]:
    """Each synapse layer of ``model`` -> the stage it drives (the next neuron layer in module order) or ``readout``."""
    stages, pending, n = {}, [], 0
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            n += 1
            stages.update({p: f"stage{n}" for p in pending})
            pending = []
        elif isinstance(m, SYNAPSES) and m not in stages:
            pending.append(m)
    stages.update({p: "readout" for p in pending})
    return stages


class SynapticOps:
    """Context manager that counts the AC, MAC and dense synaptic operations of every call inside it.

    ::

        with SynapticOps(model) as ops:
            model(x_seq)
        ops.report(samples=B, steps=T)   # per sample; see the module docstring
    """

    KINDS = ("ac", "mac", "dense")

    def __init__(self, model: nn.Module):
        self.model = model
        self.stages = synapse_stages(model)
        self.names = list(dict.fromkeys(self.stages.values()))
        self._sum = {name: [0.0, 0.0, 0.0] for name in self.names}
        self._dense: dict[tuple[int, tuple[int, ...]], float] = {}  # depends on the input's shape alone
        self._handles: list = []

    def _hook(self, layer: nn.Module):
        def hook(_module: nn.Module, inputs: tuple) -> None:
            x = inputs[0].detach()
            nonzero = x != 0
            total = self._sum[self.stages[layer]]
            total[0 if is_spikes(x, nonzero) else 1] += layer_ops(layer, x, nonzero=nonzero)
            key = (id(layer), tuple(x.shape))
            if key not in self._dense:
                self._dense[key] = layer_ops(layer, x, dense=True)
            total[2] += self._dense[key]

        return hook

    def __enter__(self) -> "SynapticOps":
        # a wrapped layer is counted at its SeqWrap, which sees every call (with autograd on, the wrapper may run
        # the layer's function without calling the module: snntrain.layers.bits)
        at = {m.module: m for m in self.model.modules() if isinstance(m, SeqWrap) and m.module in self.stages}
        self._handles = [at.get(m, m).register_forward_pre_hook(self._hook(m)) for m in self.stages]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def counts(self, device: torch.device | str = "cpu") -> Tensor:
        """``[stages, 3]`` totals (ac, mac, dense) in float64, rows in :attr:`names` order; sum over processes first."""
        return torch.tensor([self._sum[n] for n in self.names], dtype=torch.float64, device=device).reshape(-1, 3)

    def report(self, samples: float, steps: int, counts: Tensor | None = None) -> dict[str, Any]:
        """Per-sample ``sops``, ``energy_uJ`` (see the module docstring) from ``counts`` (default: this process's)."""
        counts = (self.counts() if counts is None else counts).cpu().tolist()
        per = {n: {k: v / max(samples, 1) for k, v in zip(self.KINDS, row)} for n, row in zip(self.names, counts)}
        tot = {k: sum(p[k] for p in per.values()) for k in self.KINDS}
        sops = {**tot, "ac_per_step": tot["ac"] / steps, "mac_per_step": tot["mac"] / steps, "stages": per}
        return {"sops": sops, "energy_uJ": energy_uJ(tot["ac"], tot["mac"], tot["dense"] / steps)}


def energy_uJ(ac: float, mac: float, ann_macs: float) -> dict[str, float]:
    """``snn``: :math:`N_{AC} E_{AC} + N_{MAC} E_{MAC}`; ``ann``: ``ann_macs`` MACs; in µJ (1 µJ = 1e6 pJ)."""
    snn = (ac * E_AC_PJ + mac * E_MAC_PJ) * 1e-6
    ann = ann_macs * E_MAC_PJ * 1e-6
    return {"snn": snn, "ann": ann, "snn_over_ann": snn / ann if ann else float("nan")}


__all__ = ["E_AC_PJ", "E_MAC_PJ", "SYNAPSES", "SynapticOps", "energy_uJ", "is_spikes", "layer_ops", "synapse_stages"]
