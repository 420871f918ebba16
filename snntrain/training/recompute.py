r"""Activation recomputation per spiking stage (``trainer.recompute=stage``).

BPTT keeps every intermediate of every layer at every step for the backward: its memory
grows with :math:`T \times` depth. With recomputation (gradient checkpointing, Chen et
al. 2016, "Training Deep Nets with Sublinear Memory Cost") the model is cut into
*stages* — a run of top-level layers ending with one that holds a spiking neuron
(``conv -> norm -> neuron``, a residual block, a transformer block) plus the readout —
and a stage's forward is run without a graph, keeping only its input. In the backward the
stage is run again with a graph, from that input, and back-propagated at once; only one
stage's graph is in memory at a time. A stage input that is binary (spikes, the output of
the stage before) is kept as bits, 8 to a byte (:mod:`snntrain.layers.bits`), so the
kept inputs cost :math:`1/32` of float32.

**Exactly the same training step.** The recomputed forward repeats the first one: the
random state is restored (dropout masks), autocast is re-entered as it was, and under
truncated BPTT the neurons' carried states are put back to what they were when the chunk
began. So on the CPU the gradients are ``torch.equal`` to those without recomputation.
Every buffer of the stage (a norm's running statistics and batch count, whatever the
variant) is saved before the recomputation and put back after it, so the running
statistics are updated once per step, as without recomputation (SpikingJelly's memopt
stops its BN updates during recomputation for the same reason).

The cost is a second forward of every stage: time for memory. The model must be a
:class:`~snntrain.models.SpikingNet` (every registered model is).
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..layers.bits import pack_if_binary, unpack_bits
from ..neurons import SpikingNeuron


def stages(model: nn.Sequential) -> list[list[nn.Module]]:
    """The top-level layers of ``model`` in runs that each end with a layer holding a spiking neuron; then the rest."""
    out, current = [], []
    for layer in model:
        current.append(layer)
        if any(isinstance(m, SpikingNeuron) for m in layer.modules()):
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


class _Stage(torch.autograd.Function):
    """Run ``stage.run`` without a graph; in the backward, run it again with one and back-propagate through it."""

    @staticmethod
    def forward(ctx: Any, stage: "Stage", x: Tensor, *params: Tensor) -> Tensor:
        ctx.stage = stage
        ctx.rng = torch.get_rng_state()
        ctx.cuda_rng = torch.cuda.get_rng_state(x.device) if x.is_cuda else None
        ctx.autocast = (torch.is_autocast_enabled(x.device.type), torch.get_autocast_dtype(x.device.type))
        ctx.carried = stage.carried_states()
        ctx.x_requires_grad = x.requires_grad
        packed = pack_if_binary(x) if x.dtype == torch.float32 else None
        ctx.x_shape, ctx.x_dtype, ctx.bits = x.shape, x.dtype, packed is not None
        ctx.save_for_backward(packed if packed is not None else x)
        with torch.no_grad():
            return stage.run(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor):
        (saved,) = ctx.saved_tensors
        x = unpack_bits(saved, ctx.x_shape, ctx.x_dtype) if ctx.bits else saved
        x = x.detach().requires_grad_(ctx.x_requires_grad)
        stage = ctx.stage
        buffers = [b.clone() for b in stage.buffers()]  # running statistics: updated once, by the first forward
        after = stage.carried_states()
        stage.set_carried(ctx.carried)
        devices = [x.device] if ctx.cuda_rng is not None else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.set_rng_state(ctx.rng)
                if ctx.cuda_rng is not None:
                    torch.cuda.set_rng_state(ctx.cuda_rng, x.device)
                enabled, dtype = ctx.autocast
                with torch.enable_grad(), torch.autocast(x.device.type, dtype=dtype, enabled=enabled):
                    y = stage.run(x)
            torch.autograd.backward(y, grad)
        finally:
            stage.set_carried(after)
            with torch.no_grad():  # after the backward: a buffer it saved must not change under it
                for b, v in zip(stage.buffers(), buffers):
                    if not torch.equal(b, v):
                        b.copy_(v)
        return (None, x.grad if ctx.x_requires_grad else None, *[None] * len(ctx.needs_input_grad[2:]))


class Stage:
    """Layers run as one recomputed stage (a view of the model's own layers: nothing is copied)."""

    def __init__(self, layers: list[nn.Module], owner: "Recompute"):
        self.layers, self.owner = list(layers), owner

    def run(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def buffers(self) -> list[Tensor]:
        return [b for layer in self.layers for b in layer.buffers()]

    def parameters(self) -> list[Tensor]:
        return [p for layer in self.layers for p in layer.parameters() if p.requires_grad]

    def _modules_in(self) -> list[nn.Module]:
        return [m for layer in self.layers for m in layer.modules()]

    def carried_states(self) -> dict[nn.Module, Any] | None:
        carry = self.owner.carry
        if carry is None:
            return None
        return {m: carry.states[m] for m in self._modules_in() if m in carry.states}

    def set_carried(self, states: dict[nn.Module, Any] | None) -> None:
        carry = self.owner.carry
        if carry is None or states is None:
            return
        for m in self._modules_in():
            carry.states.pop(m, None)
        carry.states.update(states)

    def __call__(self, x: Tensor) -> Tensor:
        params = self.parameters()
        if not torch.is_grad_enabled() or not (x.requires_grad or params):
            return self.run(x)
        return _Stage.apply(self, x, *params)


class Recompute(nn.Module):
    """What the trainer calls in place of the model: its training forward, stage by stage with recomputation.

    The model is a :class:`~snntrain.models.SpikingNet` and stays what is saved and
    evaluated; ``carry`` is set (:meth:`carrying`) to the
    :class:`~snntrain.layers.carry.Carry` of a truncated-BPTT step, so a recomputed
    chunk starts from the states its first forward did.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if not isinstance(model, nn.Sequential):
            raise ConfigError(
                f"trainer.recompute: stage recomputation cuts a SpikingNet (an nn.Sequential of sequence layers) into "
                f"stages; {type(model).__name__} is not one. Use trainer.recompute=none."
            )
        self.model = model
        self.carry = None
        self.stages = [Stage(layers, self) for layers in stages(model)]

    def forward(self, x_seq: Tensor) -> Tensor:
        if not self.model.training:
            return self.model(x_seq)
        if x_seq.dim() < 3:
            raise ValueError(f"expected a sequence [T, B, ...], got shape {tuple(x_seq.shape)}")
        for stage in self.stages:
            x_seq = stage(x_seq)
        return x_seq

    @contextlib.contextmanager
    def carrying(self, carry: Any):
        """Inside, recomputed chunks start from ``carry``'s states (truncated BPTT)."""
        self.carry = carry
        try:
            yield
        finally:
            self.carry = None


def install(model: nn.Module, how: str) -> Recompute | None:
    """``trainer.recompute``: ``none`` (None: train ``model`` itself) or ``stage`` (a :class:`Recompute` of it)."""
    if how == "none":
        return None
    if how != "stage":
        raise ConfigError(f"trainer.recompute: must be none or stage, got {how!r}.")
    return Recompute(model)


def carrying(recompute: Recompute | None, carry: Any):
    """:meth:`Recompute.carrying`, or nothing without recomputation."""
    return contextlib.nullcontext() if recompute is None else recompute.carrying(carry)
