r"""Spatial learning through time (``trainer=sltt``), with SLTT-K.

Meng, Xiao, Yan, Wang, Lin & Luo, "Towards Memory- and Time-Efficient Backpropagation for
Training Spiking Neural Networks", ICCV 2023. BPTT's gradient of a per-step loss
:math:`\mathcal{L} = \frac1T\sum_t \ell(o_t, y)` has a spatial part (through the layers at
one step) and a temporal part (through the membrane from step to step). SLTT keeps only
the spatial part, which the paper shows dominates:

.. math::
    \frac{\partial \mathcal{L}}{\partial W^l} \approx \sum_{t=1}^{T}
    \frac{\partial \mathcal{L}}{\partial u^l_t}\,\frac{\partial u^l_t}{\partial W^l},
    \qquad \frac{\partial \mathcal{L}}{\partial u^l_t} =
    \frac{\partial \mathcal{L}}{\partial s^l_t}\frac{\partial s^l_t}{\partial u^l_t}
    \quad (\partial u^l_{t+1}/\partial u^l_t \text{ treated as } 0),

so each step is run forward from the detached state of the step before and its loss
:math:`\ell(o_t, y)/T` is back-propagated at once: only one step's graph is ever held and
the memory does not grow with T. **SLTT-K** (``k``): only K steps, drawn at random per
batch, are back-propagated (the others run forward without a graph), which also saves
time; the paper scales their gradient by :math:`T/K` (the sum over K steps estimates the sum
over T), as here.

Here a step is a chunk of one step of :func:`snntrain.layers.carry.carry_state` (the
state carried, detached, as truncated BPTT does), so every neuron and norm runs as it does
under ``tbptt_steps=1``: norms with batch statistics take them over the step's batch
(tdBN and BN as in the paper's code, which runs step by step), TEBN and BNTT use the
scale of the step, TAB its accumulated statistics. The loss is the loss of each step's
readout (``ce``: :math:`\frac1T\sum_t \mathrm{CE}(o_t, y)`). Equal to SpikingJelly's
``SLTTLIFNode`` trained step by step (tested). Everything else (optimizer, checkpoints,
resume, DDP, evaluation on whole sequences) is ``bptt``'s.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..layers.carry import carry_state
from ..registry import register
from .bptt import BPTT
from .distributed import SINGLE, Dist
from .parts import Parts
from .recompute import carrying


@register("trainer", "sltt")
class SLTT(BPTT):
    r"""SLTT (Meng et al. ICCV 2023): back-propagate each step's loss at once through the layers, not through time; ``k``: SLTT-K."""

    def __init__(self, parts: Parts, loop: dict[str, Any], device: torch.device, dist: Dist = SINGLE,
                 k: int | None = None):
        if k is not None and k < 1:
            raise ConfigError(f"trainer.k: SLTT-K back-propagates k >= 1 random steps per batch, got {k}; null: all T.")
        if loop.get("tbptt_steps") is not None:
            raise ConfigError("trainer.tbptt_steps: sltt and ottt already cut the gradient between every two steps; "
                              "remove trainer.tbptt_steps.")
        super().__init__(parts, loop, device, dist)
        self.k = k
        self.steps_rng = torch.Generator().manual_seed(int(parts.seed))  # which K steps: reproducible, checkpointed

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "steps_rng": self.steps_rng.get_state()}

    def load_state_dict(self, state: dict[str, Any], extended: bool) -> None:
        super().load_state_dict(state, extended)
        if "steps_rng" in state:
            self.steps_rng.set_state(state["steps_rng"])

    def chosen_steps(self, T: int) -> set[int]:
        """The steps whose loss is back-propagated: all T, or K drawn at random (SLTT-K)."""
        if self.k is None or self.k >= T:
            return set(range(T))
        return set(torch.randperm(T, generator=self.steps_rng)[: self.k].tolist())

    def train_step(self, x: Tensor, y: Tensor, micro: int = 0, window: int = 1) -> dict[str, Tensor]:
        last = micro == window - 1
        if micro == 0:
            self.optimizer.zero_grad(set_to_none=True)
        x_seq = self.encoder(x)
        T = x_seq.shape[0]
        chosen = self.chosen_steps(T)
        scale = T / len(chosen)
        final = max(chosen)
        outs, loss = [], torch.zeros((), device=self.device)
        with carry_state(self.model) as carry, carrying(self.recompute, carry):
            for t in range(T):
                backward = t in chosen
                # only the last backward of the optimizer step all-reduces the gradients
                sync = contextlib.nullcontext() if (last and t == final) or not self.dist.enabled else self.net.no_sync()
                with sync, torch.set_grad_enabled(backward):
                    with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                        out_t = self.net(x_seq[t : t + 1])
                        loss_t = self.loss_fn(out_t, y)
                    if backward:
                        self.scaler.scale(loss_t * (scale / (T * window))).backward()
                outs.append(out_t.detach())
                loss = loss + loss_t.detach() / T
                carry.next_chunk()
        return self.finish_step(torch.cat(outs), loss, y, last)
