r"""Common machinery of spiking neurons: fresh state per sequence, explicit streaming.

Every neuron is a module with two entry points:

* ``forward(x_seq)`` takes a whole sequence ``[T, B, ...]`` and returns the spikes
  ``[T, B, ...]``. The state is created inside the call from rest, so two calls never
  share state: there is nothing to reset. ``forward(x_seq, return_state=True)`` also
  returns the state traces, e.g. ``{"mem": [T, B, ...]}``.
* ``step(x, state)`` is the streaming API: one time step ``[B, ...]`` in, ``(spikes,
  new_state)`` out. ``state=None`` starts from rest. The state lives with the caller,
  the one place it is held; for truncated BPTT detach it between chunks with
  :func:`detach_state`. Running ``step`` over a sequence gives exactly ``forward``.

Options shared by all neurons (snnTorch's names where it has them):

* ``threshold`` :math:`V_{th}` (``learn_threshold`` makes it a parameter);
* ``reset``: ``subtract`` (:math:`V \leftarrow H - V_{th} S`), ``zero`` (hard reset,
  :math:`V \leftarrow (1-S) H + S\,V_{reset}`, with ``v_reset`` = 0 by default) or ``none``;
* ``detach_reset``: no gradient through the spike in the reset term;
* ``graded_spikes_factor`` :math:`g` (``learn_graded_spikes_factor``): emitted spikes are
  :math:`g S` (the reset uses :math:`S`);
* ``inhibition``: per sample, only the neuron with the highest membrane may fire
  (winner-take-all over all features; meant for dense layers, as in snnTorch);
* ``state_quant``: a Python callable applied to the membrane after charging (e.g. a
  fake-quantizer), snnTorch's state-quantization hook.

Traces of every neuron in a model can be recorded with :func:`record_states`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from ..errors import check
from ..surrogates import ATan, Surrogate

RESETS = ("subtract", "zero", "none")


def detach_state(state: Any) -> Any:
    """Detach a neuron state (a tensor or a tuple of tensors) from the graph."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state


def unroll(step: Callable[[Tensor, Any], tuple[Tensor, Any]], x_seq: Tensor) -> Tensor:
    """Run a streaming ``step(x, state) -> (y, state)`` over ``[T, B, ...]`` from a fresh state."""
    state, out = None, []
    for x in x_seq:
        y, state = step(x, state)
        out.append(y)
    return torch.stack(out)


def _value(v: float | Tensor, learn: bool) -> Tensor | nn.Parameter:
    t = torch.as_tensor(v, dtype=torch.get_default_dtype()).clone()
    return nn.Parameter(t) if learn else t


class SpikingNeuron(nn.Module):
    """Base class: subclasses implement ``init_state(x)`` and ``step(x, state)``.

    ``state_names`` names the entries of the state (a tensor for one entry, a tuple
    otherwise) in recorded traces.
    """

    state_names: tuple[str, ...] = ("mem",)

    def __init__(
        self,
        threshold: float = 1.0,
        learn_threshold: bool = False,
        reset: str = "subtract",
        v_reset: float = 0.0,
        detach_reset: bool = False,
        graded_spikes_factor: float = 1.0,
        learn_graded_spikes_factor: bool = False,
        inhibition: bool = False,
        surrogate: Surrogate | None = None,
        state_quant: Callable[[Tensor], Tensor] | None = None,
    ):
        super().__init__()
        check(threshold > 0, "threshold", f"must be > 0, got {threshold}")
        check(graded_spikes_factor > 0, "graded_spikes_factor", f"must be > 0 (the spike amplitude), got {graded_spikes_factor}")
        check(reset in RESETS, "reset", f"must be one of {', '.join(RESETS)}, got {reset!r}")
        self.surrogate = surrogate if surrogate is not None else ATan()
        self._param_or_buffer("threshold", threshold, learn_threshold)
        self._param_or_buffer("graded_spikes_factor", graded_spikes_factor, learn_graded_spikes_factor)
        self.reset, self.v_reset, self.detach_reset = reset, float(v_reset), detach_reset
        self.inhibition = inhibition
        self.state_quant = state_quant
        self.recorder: dict[str, Tensor] | None = None  # set by record_states()

    def _param_or_buffer(self, name: str, value: float | Tensor, learn: bool) -> None:
        t = _value(value, learn)
        if learn:
            setattr(self, name, t)
        else:
            self.register_buffer(name, t)

    # ---- pieces subclasses combine -------------------------------------------------
    def fire(self, mem: Tensor) -> Tensor:
        """Binary spikes :math:`S = \\Theta(mem - V_{th})` with the surrogate gradient (and inhibition)."""
        s = self.surrogate(mem - self.threshold)
        if self.inhibition:
            winner = (mem - self.threshold).flatten(1).argmax(1)
            mask = torch.zeros_like(s.flatten(1)).scatter_(1, winner[:, None], 1.0)
            s = s * mask.view_as(s)
        return s

    def apply_reset(self, h: Tensor, s: Tensor) -> Tensor:
        """Membrane after the reset, from the charged membrane ``h`` and binary spikes ``s``."""
        r = s.detach() if self.detach_reset else s
        if self.reset == "subtract":
            return h - r * self.threshold
        if self.reset == "zero":
            return h * (1 - r) + r * self.v_reset
        return h

    def quant(self, mem: Tensor) -> Tensor:
        return self.state_quant(mem) if self.state_quant is not None else mem

    def emit(self, s: Tensor) -> Tensor:
        """Spikes as sent downstream: binary, or graded by :math:`g`."""
        return s * self.graded_spikes_factor

    # ---- interface -----------------------------------------------------------------
    def init_state(self, x: Tensor) -> Any:
        return torch.zeros_like(x)

    def step(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x_seq: Tensor, return_state: bool = False):
        state = self.init_state(x_seq[0])
        keep = return_state or self.recorder is not None
        spikes, states = [], []
        for x in x_seq:
            s, state = self.step(x, state)
            spikes.append(s)
            if keep:
                states.append(state if isinstance(state, tuple) else (state,))
        out = torch.stack(spikes)
        if not keep:
            return out
        traces = {name: torch.stack([st[i] for st in states]) for i, name in enumerate(self.state_names)}
        if self.recorder is not None:
            self.recorder.update(traces)
        return (out, traces) if return_state else out

    def extra_repr(self) -> str:
        return f"threshold={float(self.threshold):g}, reset={self.reset}, detach_reset={self.detach_reset}"


def neuron_layers(model: nn.Module) -> dict[str, SpikingNeuron]:
    """Spiking layers of ``model`` by name: ``<name in named_modules()>_<class>``, e.g. ``2_lif``."""
    return {f"{n}_{type(m).__name__.lower()}": m for n, m in model.named_modules() if isinstance(m, SpikingNeuron)}


@contextmanager
def record_states(model: nn.Module) -> Iterator[dict[str, dict[str, Tensor]]]:
    """Record the state traces of every neuron layer during the forward passes inside.

    ::

        with record_states(model) as traces:
            out = model(x_seq)
        traces["2_lif"]["mem"]  # [T, B, ...], still attached to the graph (usable in a loss)

    The recorder is the one place the traces are held; it is removed on exit.
    """
    layers = neuron_layers(model)
    traces: dict[str, dict[str, Tensor]] = {name: {} for name in layers}
    for name, m in layers.items():
        m.recorder = traces[name]
    try:
        yield traces
    finally:
        for m in layers.values():
            m.recorder = None
