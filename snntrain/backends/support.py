r"""Which backend runs a neuron: the declarations, the one table of what each backend cannot do, the choice.

A neuron declares ``supported_backends`` (a class attribute, e.g. ``("torch", "fused",
"triton")``); the ``fused`` backend runs it in one of two forms (:func:`form`): the lif form
(a hand-written backward, compiled kernels) when the neuron declares a ``charge`` function
and resets immediately, the generic form otherwise. :func:`why_not` is the one table of
what a backend cannot run; its build-time part (:func:`static_why_not`) is checked once
when the neuron is built, its input-dependent part (dtype, device, hooks set later) when
the backend is chosen for a call (:func:`choose`).

Mixed precision: the fused forms integrate a 16-bit input (``trainer.precision=bf16-mixed``)
in float32 (the cast is part of the graph, so the input's gradient comes back in its own
dtype) and emit spikes in the input's dtype (0 and 1 are exact in it); the ``torch``
backend runs the step in the input's dtype.

``auto`` picks the fastest valid backend: ``triton`` on CUDA, else ``fused``, for the lif
form; ``torch`` for the others, where the generic fused form (which re-runs every step in
its backward) measured slower on the CPU. An option the chosen backend cannot run falls
back, with one log line saying why; a named backend that cannot run the neuron is an error
naming the option.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import ConfigError, ParamError

if TYPE_CHECKING:  # the backends never import the neurons package at run time
    from ..neurons.base import SpikingNeuron

log = logging.getLogger("snntrain.backends")

#: the input dtypes the fused forms run; 16-bit inputs (mixed precision) are integrated in float32
FLOATS = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
LOW = (torch.bfloat16, torch.float16)


def form(neuron: "SpikingNeuron") -> str:
    """``lif`` if the neuron declares its charge :math:`H = C(V, I)` and resets immediately, else ``generic``."""
    return "lif" if getattr(neuron, "charge", None) is not None and not neuron.reset_delay else "generic"


def static_why_not(neuron: "SpikingNeuron", backend: str, storage: str) -> tuple[str, str] | None:
    """``(option, reason)`` if ``backend`` can never run ``neuron`` with ``grad_storage=storage``, else None."""
    name = type(neuron).__name__
    lif = form(neuron) == "lif"
    if backend == "triton" and not (lif and "triton" in neuron.supported_backends):
        return "backend", f"the triton kernels run if, lif and plif with an immediate reset, not {name}" + (
            " with reset_delay" if neuron.reset_delay else "") + "; use backend fused or auto"
    if backend not in neuron.supported_backends:
        return "backend", (f"{name} supports the backends {', '.join(neuron.supported_backends)}"
                           + (" (it runs a module inside its step)" if neuron.supported_backends == ("torch",) else ""))
    if backend == "torch":
        if storage != "exact":
            return "grad_storage", (f"the torch backend keeps what autograd saves; grad_storage={storage} needs backend "
                                    "fused or triton (if, lif, plif), or auto; or use grad_storage=exact")
        return None
    if neuron.inhibition:
        return "inhibition", "winner-take-all across features is not fused"
    if backend == "triton":
        if neuron.surrogate.kernel() is None:
            return "surrogate", "a user-defined surrogate has no triton derivative; use backend fused or auto"
        try:
            from ..kernels import triton_lif
        except ImportError as e:
            return "backend", f"triton does not import ({e}); pip install 'snntrain[triton]'"
        why = triton_lif.unavailable()
        if why is not None:
            return "backend", why
    if storage != "exact":
        if not lif:
            return "grad_storage", f"compact storage is implemented for if, lif and plif with an immediate reset, not {name}" + (
                " with reset_delay" if neuron.reset_delay else "") + "; use grad_storage=exact"
        if neuron.reset == "zero" and not neuron.detach_reset:
            return "grad_storage", ("a zero reset's gradient needs H itself (dV/dS = V_reset - H), not only g'(H - V_th); "
                                    "set detach_reset=true, or grad_storage=exact")
    return None


def why_not(neuron: "SpikingNeuron", backend: str, storage: str, x_seq: Tensor | None = None) -> tuple[str, str] | None:
    """The whole table: :func:`static_why_not`, then what depends on this call (the input, hooks set after building)."""
    why = static_why_not(neuron, backend, storage)
    if why is not None or backend == "torch" or x_seq is None:
        return why
    if neuron.state_quant is not None:
        return "state_quant", "a state-quantization hook is an arbitrary callable and is not fused"
    if x_seq.dtype not in FLOATS:
        return "backend", f"it runs floating-point inputs ({', '.join(map(str, FLOATS))}), got {x_seq.dtype}"
    if backend == "triton":
        from ..kernels import triton_lif

        if not (x_seq.is_cuda or triton_lif.interpreting()) or x_seq.dtype == torch.float64:
            return "backend", f"the triton kernels run float32 (or 16-bit) CUDA tensors, got {x_seq.dtype} on {x_seq.device.type}"
    if storage != "exact" and torch.is_grad_enabled():
        learnt = [n for n, p in neuron.named_parameters() if p.requires_grad and n not in ("threshold", "graded_spikes_factor")]
        if learnt:
            return "grad_storage", (f"its {learnt[0]} is learnt: that gradient needs the input, which the backward then keeps "
                                    "in fp32 (nothing left to compact); freeze it or use grad_storage=exact")
    return None


def validate(neuron: "SpikingNeuron") -> None:
    """At build time: a named backend (or compact storage) that can never run this neuron is an error naming the option."""
    backend = neuron.backend
    if backend == "auto":  # runs what it can; what it could not is one log line at the first call
        return
    why = static_why_not(neuron, backend, neuron.grad_storage)
    if why is not None:
        raise ParamError(why[0], f"the {backend} backend cannot run this neuron: {why[1]}")


def choose(neuron: "SpikingNeuron", x_seq: Tensor) -> tuple[str, str]:
    """``(backend, grad_storage)`` that run ``neuron`` on ``x_seq`` (see the module docstring)."""
    backend, storage = neuron.backend, neuron.grad_storage
    if backend == "torch":
        return "torch", storage
    if backend != "auto":
        why = why_not(neuron, backend, storage, x_seq)
        if why is not None:
            option, reason = why
            raise ConfigError(
                f"neuron.{option}: the {backend} backend cannot run this neuron: {reason}. "
                f"neuron.backend=auto runs what it can and says in the log what it could not."
            )
        return backend, storage
    notes: list[tuple[str, str]] = []
    chosen = "torch"
    lif = form(neuron) == "lif" and "fused" in neuron.supported_backends
    if lif:
        for b in (("triton", "fused") if x_seq.is_cuda and "triton" in neuron.supported_backends else ("fused",)):
            why = why_not(neuron, b, "exact", x_seq)
            if why is None:
                chosen = b
                break
            notes.append(why)
    if storage != "exact":
        why = why_not(neuron, chosen, storage, x_seq)
        if why is not None:
            notes.append(why)
            storage = "exact"
    if notes and not getattr(neuron, "_fallback_logged", False):
        log.info("neuron backend auto: %s runs on %s%s (%s)", type(neuron).__name__, chosen,
                 " with grad_storage=exact" if storage != neuron.grad_storage else "",
                 "; ".join(f"{o}: {r}" for o, r in notes))
        neuron._fallback_logged = True
    return chosen, storage


__all__ = ["form", "static_why_not", "why_not", "validate", "choose"]
