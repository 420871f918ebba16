"""Component registry: names in configs map to Python builders.

Each *kind* (neuron, surrogate, norm, ...) maps names to classes or functions::

    @register("norm", "tebn")
    class TEBN(nn.Module): ...

    build("norm", "tebn", context={"num_features": 16, "T": 4}, eps=1e-5)
    available("norm")  # ['bn', 'bntt', ...]

Arguments come in two sorts. *User arguments* are what a config file sets; they are
checked strictly (unknown names, missing required ones, wrong types, values outside a
``Literal``) and every error names the config key, e.g. ``norm.eps``. *Context
arguments* are what the model supplies from its structure (channel count, ``T``,
the next neuron's threshold); each kind declares their names in :data:`KINDS`, and a
builder receives only those its signature asks for.
"""
from __future__ import annotations

import inspect
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError, ParamError, did_you_mean

#: kind -> names of the context arguments the framework passes (never set by users).
KINDS: dict[str, tuple[str, ...]] = {
    "neuron": ("surrogate", "shape", "T"),
    "surrogate": (),
    "norm": ("num_features", "T", "v_th", "shape"),
    "layer": (),
    "model": ("in_shape", "num_classes", "T", "neuron", "norm"),
    "dataset": ("T",),
    "encoder": ("T",),
    "loss": (),
    "optimizer": ("model",),
    "scheduler": ("optimizer", "epochs"),
    "trainer": ("parts", "loop", "device", "dist"),
}


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: Callable[..., Any]

    @property
    def signature(self) -> inspect.Signature:
        # a class may publish its config signature as ``__signature__`` (the neurons
        # flatten their shared options into it: snntrain.neurons.base.SpikeOptions)
        published = inspect.isclass(self.obj) and "__signature__" in vars(self.obj)
        target = self.obj.__init__ if inspect.isclass(self.obj) and not published else self.obj
        sig = inspect.signature(target)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        return sig.replace(parameters=params)

    def user_params(self) -> list[inspect.Parameter]:
        ctx = KINDS[self.kind]
        return [
            p
            for p in self.signature.parameters.values()
            if p.name not in ctx and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def hints(self) -> dict[str, Any]:
        target = self.obj.__init__ if inspect.isclass(self.obj) else self.obj
        try:
            hints = typing.get_type_hints(target)
        except Exception:  # unresolvable forward refs: skip type checks
            hints = {}
        published = {
            p.name: p.annotation for p in self.signature.parameters.values()
            if p.annotation is not p.empty and not isinstance(p.annotation, str)
        }
        return {**hints, **published}

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.obj) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


_REGISTRY: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``obj`` as component ``name`` of ``kind``."""
    if kind not in KINDS:
        raise KeyError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")

    def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY[kind]:
            raise KeyError(f"{kind} {name!r} is registered twice")
        _REGISTRY[kind][name] = Entry(kind, name, obj)
        return obj

    return deco


#: the modules whose import registers the built-in components (imported on the first query)
COMPONENT_MODULES = ("data", "layers", "models", "neurons", "norm", "surrogates", "training.losses",
                     "training.optim", "training.bptt", "training.stdp", "training.sltt", "training.ottt")
_loaded = False


def load_components() -> None:
    """Import the built-in components (and torch with them) once, on the first query of the registry.

    ``import snntrain`` and the command line's help and config errors do not need them,
    so they do not pay for importing torch.
    """
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for name in COMPONENT_MODULES:
        importlib.import_module(f"{__package__}.{name}")


def _check_kind(kind: str) -> None:
    if kind not in _REGISTRY:
        raise ConfigError(
            f"Unknown component kind {kind!r}. Valid kinds: {', '.join(sorted(_REGISTRY))}."
        )


def available(kind: str) -> list[str]:
    """Sorted names registered under ``kind``."""
    _check_kind(kind)
    load_components()
    return sorted(_REGISTRY[kind])


def classes(kind: str) -> tuple[type, ...]:
    """The registered components of ``kind`` that are classes (for ``isinstance`` checks)."""
    _check_kind(kind)
    load_components()
    return tuple(e.obj for e in _REGISTRY[kind].values() if isinstance(e.obj, type))


def entry(kind: str, name: str) -> Entry:
    _check_kind(kind)
    if name not in _REGISTRY[kind]:  # a component registered while the built-ins load needs no loading
        load_components()
    if name not in _REGISTRY[kind]:
        raise ConfigError(
            f"{kind}: unknown {kind} {name!r}. Valid choices: {', '.join(available(kind))}. "
            f"Pick one on the command line, e.g. `{kind}={available(kind)[0]}`."
        )
    return _REGISTRY[kind][name]


def _type_ok(value: Any, hint: Any) -> tuple[bool, str]:
    """Whether ``value`` fits annotation ``hint``; also a readable form of the hint."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return True, "any"
    if origin is typing.Literal:
        return value in args, "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        results = [_type_ok(value, a) for a in args]
        return any(ok for ok, _ in results), " or ".join(desc for _, desc in results)
    if hint is type(None):
        return value is None, "null"
    if hint is float:  # a float argument means a finite number: nan and inf are never meant
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return ok, "a finite number"
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), "an integer"
    if hint is bool:
        return isinstance(value, bool), "true or false"
    if hint is str:
        return isinstance(value, str), "a string"
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        ok = isinstance(value, (list, tuple))
        if ok and args and args[-1] is not Ellipsis:
            ok = all(_type_ok(v, args[0])[0] for v in value)
        return ok, "a list"
    return True, getattr(hint, "__name__", str(hint))


def build(kind: str, name: str, context: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Build component ``name`` of ``kind`` with user ``kwargs`` and framework ``context``.

    Errors name the config key ``<kind>.<argument>`` and the valid options.
    """
    e = entry(kind, name)
    params = {p.name: p for p in e.user_params()}
    sig_params = e.signature.parameters
    for key in kwargs:
        if key not in params:
            valid = ", ".join(params) or "(none)"
            hint = did_you_mean(f"{kind}.{key}", [f"{kind}.{p}" for p in params], {"name": name})
            raise ConfigError(
                f"{kind}.{key}: {kind} {name!r} has no argument {key!r}.{hint} "
                f"Valid arguments: {valid}. Remove the key or fix its spelling."
            )
    for p in params.values():
        if p.default is p.empty and p.name not in kwargs:
            raise ConfigError(f"{kind}.{p.name}: {kind} {name!r} needs a value for {p.name!r}.")
    hints = e.hints()
    for key, value in kwargs.items():
        if key in hints:
            ok, desc = _type_ok(value, hints[key])
            if not ok:
                raise ConfigError(
                    f"{kind}.{key}: expected {desc}, got {value!r}. Fix the value in the "
                    f"{kind} config or on the command line ({kind}.{key}=...)."
                )
    ctx = {k: v for k, v in (context or {}).items() if k in sig_params}
    try:
        return e.obj(**ctx, **kwargs)
    except ParamError as err:
        raise ConfigError(
            f"{kind}.{err.param}: {err.message}. Fix it on the command line ({kind}.{err.param}=...) "
            f"or in the {kind} config file."
        ) from None


class Effective:
    """The value a component uses for an argument left unset (``None``), as listings show it: ``0.5 (β ...)``.

    A component declares them in ``effective_defaults = {"decay": (0.5, "β, unless tau is set")}``.
    """

    def __init__(self, value: Any, note: str):
        self.value, self.note = value, note

    def __repr__(self) -> str:
        return f"{self.value!r} ({self.note})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Effective) and (self.value, self.note) == (other.value, other.note)


def describe(kind: str | None = None) -> list[dict[str, Any]]:
    """One record per component: kind, name, summary, ``args`` (defaults) and ``required`` argument names.

    An argument whose default is ``None`` but which the component fills in (its
    ``effective_defaults``) is shown as :class:`Effective`.
    """
    rows = []
    for k in [kind] if kind else list(KINDS):
        for name in available(k):
            e = _REGISTRY[k][name]
            params = e.user_params()
            args = {
                p.name: list(p.default) if isinstance(p.default, tuple) else p.default
                for p in params
                if p.default is not p.empty
            }
            required = [p.name for p in params if p.default is p.empty]
            for arg, (value, note) in getattr(e.obj, "effective_defaults", {}).items():
                if arg in args and args[arg] is None:
                    args[arg] = Effective(value, note)
            rows.append({"kind": k, "name": name, "summary": e.summary, "args": args, "required": required})
    return rows
