r"""Containers: run modules over ``[T, B, ...]`` sequences, and recurrent wrappers around a neuron.

* :class:`SeqToANN` -- stateless modules, the whole sequence as one ``[T*B, ...]`` call.
* :class:`MultiStep` -- any chain of single-step modules, looped over T; stateful members
  (snntrain neurons and layers with ``step(x, state) -> (y, state)``) get their state
  threaded from step to step, starting fresh at every ``forward``.
* :class:`ElementWiseRecurrent` (``element_wise_recurrent``) and :class:`LinearRecurrent`
  (``linear_recurrent``) -- SpikingJelly's recurrent containers, with the recurrent
  output held in the state instead of the module.

A module is *stateful* when it is a :class:`~snntrain.neurons.SpikingNeuron` or has a
class attribute ``stateful = True``; its ``step`` then takes and returns a state.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ParamError, check
from ..neurons.base import SpikingNeuron, unroll
from ..registry import build, register


def is_stateful(module: nn.Module) -> bool:
    """Whether ``module.step`` takes and returns a state (neurons, ``stateful = True`` layers)."""
    return isinstance(module, SpikingNeuron) or bool(getattr(module, "stateful", False))


def step_module(module: nn.Module, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
    """One time step of any module: ``module.step(x, state)`` if stateful, else ``module(x)``."""
    if is_stateful(module):
        return module.step(x, state)
    return module(x), None


class SeqToANN(nn.Sequential):
    r"""Stateless modules applied to every time step at once: ``[T, B, ...] -> [T*B, ...] -> modules -> [T, B, ...]``.

    Same as SpikingJelly's ``SeqToANNContainer`` (and its ``state_dict`` keys):
    :math:`y[t] = f(x[t])` for a per-sample ``f``, computed as one batched call.
    ``step(x)`` applies the modules to one step ``[B, ...]``.
    """

    def step(self, x: Tensor) -> Tensor:
        return super().forward(x)

    def forward(self, x_seq: Tensor) -> Tensor:
        y = super().forward(x_seq.flatten(0, 1))
        return y.view(x_seq.shape[0], x_seq.shape[1], *y.shape[1:])


class MultiStep(nn.Sequential):
    r"""Runs a chain of single-step modules over time: :math:`y[t] = f(x[t]; s[t-1])` for t = 0..T-1.

    SpikingJelly's ``MultiStepContainer`` (same ``state_dict`` keys), without hidden
    state: stateful members (neurons, ``stateful = True`` layers) are stepped with
    ``step(x, state)`` and their states threaded through the loop, from fresh state at
    each ``forward``; other members are called as ``module(x[t])``. A foreign
    single-step module that keeps its own state (e.g. a SpikingJelly node) still keeps
    it between calls: reset it yourself.

    Streaming: ``step(x, state=None) -> (y, state)``, the state a list with one entry
    per member.
    """

    stateful = True

    def step(self, x: Tensor, state: list | None = None) -> tuple[Tensor, list]:
        state = [None] * len(self) if state is None else state
        new = []
        for m, s in zip(self, state):
            x, s = step_module(m, x, s)
            new.append(s)
        return x, new

    def forward(self, x_seq: Tensor) -> Tensor:
        return unroll(self.step, x_seq)


def _nested_error(prefix: str, err: ConfigError) -> ParamError:
    """Re-key an error of a nested ``build`` (``neuron.reset: ...``) as ``<prefix>.reset``."""
    m = re.match(r"^(\w+)(?:\.(\w+))?: (.*)$", str(err), re.S)
    if not m:
        return ParamError(prefix, str(err))
    kind, key, msg = m.groups()
    param = prefix if kind == "neuron" else f"{prefix}.{kind}"
    return ParamError(f"{param}.{key}" if key else param, msg)


def build_neuron(cfg: Mapping, shape: tuple[int, ...] | None = None, param: str = "neuron") -> nn.Module:
    """A neuron from a nested config ``{"name": "if", "reset": "subtract", "surrogate": {"name": "atan"}}``.

    ``surrogate`` (a name or ``{"name": ..., **args}``) is optional; the neuron's default
    surrogate is used without it. Errors name the nested key, e.g. ``layer.neuron.reset``.
    """
    check(isinstance(cfg, Mapping), param, f"must be a neuron config such as {{name: if, reset: subtract}}, got {cfg!r}")
    args = dict(cfg)
    name = args.pop("name", None)
    check(isinstance(name, str), param, f"needs a 'name' (a registered neuron, e.g. 'if' or 'lif'), got {cfg!r}")
    sg_cfg = args.pop("surrogate", None)
    try:
        sg = None
        if sg_cfg is not None:
            sg_args = {"name": sg_cfg} if isinstance(sg_cfg, str) else dict(sg_cfg)
            sg = build("surrogate", sg_args.pop("name"), **sg_args)
        ctx = {"shape": shape} if shape is not None else {}
        if sg is not None:
            ctx["surrogate"] = sg
        return build("neuron", name, context=ctx, **args)
    except ConfigError as err:
        raise _nested_error(param, err) from None


#: element-wise functions f(x[t], y[t-1]) of ``element_wise_recurrent``. No ``mul``/``min``:
#: with y[-1] = 0 and a neuron silent at zero input they give i[t] = 0 at every step.
ELEMENT_WISE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "add": torch.add,
    "sub": torch.sub,
    "max": torch.maximum,
}


class ElementWiseRecurrent(nn.Module):
    r"""Element-wise recurrence around a sub-module: :math:`y[t] = g\bigl(f(x[t], y[t-1])\bigr)`, :math:`y[-1] = 0`.

    :math:`g` is ``sub_module`` (stateful or not; input and output shapes equal) and
    :math:`f` an element-wise function of the input and the previous output. State:
    ``(y[t-1], sub-module state)``; ``forward`` starts from :math:`y[-1] = 0` and a fresh
    sub-module. SpikingJelly's ``ElementWiseRecurrentContainer`` (same ``state_dict``
    keys); note that SpikingJelly 2.0 calls its function as ``f(y[t-1], x[t])``.
    """

    stateful = True

    def __init__(self, sub_module: nn.Module, function: Callable[[Tensor, Tensor], Tensor]):
        super().__init__()
        self.sub_module = sub_module
        self.function = function

    def step(self, x: Tensor, state: tuple | None = None) -> tuple[Tensor, tuple]:
        y_prev, sub_state = (torch.zeros_like(x), None) if state is None else state
        y, sub_state = step_module(self.sub_module, self.function(x, y_prev), sub_state)
        return y, (y, sub_state)

    def forward(self, x_seq: Tensor) -> Tensor:
        return unroll(self.step, x_seq)

    def extra_repr(self) -> str:
        return f"function={getattr(self.function, '__name__', self.function)}"


@register("layer", "element_wise_recurrent")
def element_wise_recurrent(
    neuron: dict, function: Literal["add", "sub", "max"] = "add"
) -> ElementWiseRecurrent:
    r"""Neuron with element-wise self-feedback: :math:`y[t] = \mathrm{neuron}(f(x[t], y[t-1]))`, :math:`y[-1] = 0`.

    ``function`` picks :math:`f`: ``add`` :math:`x + y`, ``sub`` :math:`x - y` or ``max``
    :math:`\max(x, y)` (element-wise; ``mul``/``min`` are left out: from :math:`y[-1] = 0`
    they keep the neuron's input at or below 0 forever). ``neuron`` is a neuron config,
    e.g. ``{name: if, reset: subtract}``, optionally with a ``surrogate`` entry
    (``{name: atan, alpha: 2}``). With ``add`` and an IF neuron each spike feeds 1 back
    into the next step's input. SpikingJelly ``layer.ElementWiseRecurrentContainer``
    (its example: ``IFNode(v_reset=None)`` with ``x + y``).
    """
    check(function in ELEMENT_WISE, "function", f"must be one of {', '.join(ELEMENT_WISE)}, got {function!r}")
    return ElementWiseRecurrent(build_neuron(neuron), ELEMENT_WISE[function])


class LinearRecurrent(nn.Module):
    r"""Linear recurrence around a sub-module: :math:`y[t] = g\bigl([x[t], y[t-1]]\, W^T + b\bigr)`, :math:`y[-1] = 0`.

    ``x[t]`` is ``[B, ..., in_features]``, ``sub_module`` :math:`g` maps ``in_features`` to
    ``out_features`` features and :math:`W` is ``[in_features, in_features + out_features]``
    (``self.rc = nn.Linear(in + out, in, bias)``). State ``(y[t-1], sub-module state)``;
    ``forward`` starts from zero. SpikingJelly's ``LinearRecurrentContainer`` (same
    ``state_dict`` keys ``rc.*`` and ``sub_module.*``).
    """

    stateful = True

    def __init__(self, sub_module: nn.Module, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.sub_module_out_features = out_features
        self.rc = nn.Linear(in_features + out_features, in_features, bias)
        self.sub_module = sub_module

    def step(self, x: Tensor, state: tuple | None = None) -> tuple[Tensor, tuple]:
        if state is None:
            y_prev, sub_state = x.new_zeros(*x.shape[:-1], self.sub_module_out_features), None
        else:
            y_prev, sub_state = state
        y, sub_state = step_module(self.sub_module, self.rc(torch.cat((x, y_prev), dim=-1)), sub_state)
        return y, (y, sub_state)

    def forward(self, x_seq: Tensor) -> Tensor:
        return unroll(self.step, x_seq)


@register("layer", "linear_recurrent")
def linear_recurrent(
    in_features: int, neuron: dict, out_features: int | None = None, bias: bool = True
) -> LinearRecurrent:
    r"""Neuron with dense self-feedback: :math:`y[t] = \mathrm{neuron}([x[t], y[t-1]]\, W^T + b)`, :math:`y[-1] = 0`.

    :math:`W` is ``[in_features, in_features + out_features]``. Without ``out_features``
    the sub-module is the neuron alone (``out_features = in_features``); with it, the
    sub-module is ``Linear(in_features, out_features)`` followed by the neuron, as in
    SpikingJelly's example. ``neuron`` is a neuron config, e.g. ``{name: lif, tau: 2}``.
    SpikingJelly ``layer.LinearRecurrentContainer``.
    """
    check(in_features > 0, "in_features", f"must be > 0, got {in_features}")
    check(out_features is None or out_features > 0, "out_features", f"must be > 0, got {out_features}")
    if out_features is None:
        return LinearRecurrent(build_neuron(neuron, (in_features,)), in_features, in_features, bias)
    sub = MultiStep(nn.Linear(in_features, out_features), build_neuron(neuron, (out_features,)))
    return LinearRecurrent(sub, in_features, out_features, bias)
