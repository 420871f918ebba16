r"""Optimizers (kind ``optimizer``) and learning-rate schedules (kind ``scheduler``).

**Weight decay** applies to the weights of synapses only by default: the parameters of
norm layers (their scales and shifts, tdBN's, BNTT's per-step and TEBN's per-step
scales) and every bias are put in a group with ``weight_decay=0``, as timm and
Lightning's recipes do (decaying a BN scale only fights the normalisation). Set
``optimizer.decay_norm_and_bias=true`` to decay everything. A norm is a module of a class
registered as a ``norm`` (:func:`no_decay_names` says which parameters are exempt).

**Schedules** step once per epoch. Every schedule takes ``warmup_epochs`` :math:`w`: the
lr rises linearly over the first :math:`w` epochs, :math:`\eta_e = \eta\,\frac{e+1}{w+1}`
for :math:`e < w` (so the first epoch already trains, at :math:`\eta/(w+1)`), and the
schedule proper then runs over the remaining epochs (``torch.optim.lr_scheduler``'s
``LinearLR`` chained with the schedule by ``SequentialLR``).
"""
from __future__ import annotations

import inspect
import sys
from typing import Any, Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, MultiStepLR, SequentialLR, StepLR

from ..errors import check
from ..registry import classes, register


# ---------------------------------------------------------------- parameter groups
def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, classes("norm"))


def no_decay_names(model: nn.Module) -> list[str]:
    """Names of the parameters exempt from weight decay: those of norm layers, and biases."""
    names = []
    for mname, m in model.named_modules():
        norm = _is_norm(m)
        for pname, _ in m.named_parameters(recurse=False):
            if norm or pname == "bias" or pname.endswith("_bias"):
                names.append(f"{mname}.{pname}" if mname else pname)
    return names


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict[str, Any]]:
    """One group with ``weight_decay`` and, unless ``decay_norm_and_bias``, one without (norms, biases)."""
    params = dict(model.named_parameters())
    if decay_norm_and_bias or weight_decay == 0:
        return [{"params": list(params.values()), "weight_decay": weight_decay}]
    exempt = set(no_decay_names(model))
    groups = [{"params": [p for n, p in params.items() if n not in exempt], "weight_decay": weight_decay},
              {"params": [p for n, p in params.items() if n in exempt], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _checked(lr: float, weight_decay: float) -> None:
    check(lr > 0, "lr", f"must be > 0, got {lr}")
    check(weight_decay >= 0, "weight_decay", f"must be >= 0, got {weight_decay}")


def _betas(betas: list[float]) -> tuple[float, float]:
    check(len(betas) == 2 and all(0 <= b < 1 for b in betas), "betas", f"must be two numbers in [0, 1), got {list(betas)}")
    return float(betas[0]), float(betas[1])


# ---------------------------------------------------------------- optimizers
def _raw(fn: Callable) -> Callable:
    return inspect.unwrap(fn)


class _WithoutDynamoImport:
    """Mixin: torch.optim's methods, minus the ``torch._dynamo`` import while nothing has imported it.

    torch.optim wraps ``add_param_group``, ``zero_grad``, ``state_dict`` and
    ``load_state_dict`` in ``torch._disable_dynamo`` and ``step`` in
    ``_use_grad_for_differentiable`` so that ``torch.compile`` leaves them alone; each
    wrapper imports ``torch._dynamo`` on its first call, eager or not. That import costs
    about 2.5 s on 2 cores (three quarters of ``import torch``), in every run. Until some
    other code has imported ``torch._dynamo`` nothing can be compiling, so these methods
    call torch's unwrapped functions directly (``step`` under the grad mode the wrapper
    sets: ``torch.set_grad_enabled(differentiable)``); once it is imported they are torch's
    own. The arithmetic is torch's either way (``tests/test_optim.py`` checks bitwise
    equality with the plain classes, state dicts included).
    """

    def _eager(self) -> bool:
        return "torch._dynamo" not in sys.modules

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self._eager():
            return _raw(torch.optim.Optimizer.add_param_group)(self, param_group)
        return super().add_param_group(param_group)  # type: ignore[misc]

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self._eager():
            return _raw(torch.optim.Optimizer.zero_grad)(self, set_to_none)
        return super().zero_grad(set_to_none)  # type: ignore[misc]

    def state_dict(self) -> dict[str, Any]:
        if self._eager():
            return _raw(torch.optim.Optimizer.state_dict)(self)
        return super().state_dict()  # type: ignore[misc]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._eager():
            return _raw(torch.optim.Optimizer.load_state_dict)(self, state_dict)
        return super().load_state_dict(state_dict)  # type: ignore[misc]

    def step(self, closure: Callable[[], float] | None = None) -> Any:
        base = next(c for c in type(self).__mro__ if c.__module__.startswith("torch.optim")).step
        if self._eager():
            with torch.set_grad_enabled(self.defaults["differentiable"]):  # type: ignore[attr-defined]
                return _raw(base)(self, closure)
        if getattr(base, "hooked", False):  # torch's class step, hooked once a plain instance existed: this
            base = base.__wrapped__         # class's own step already runs the hooks (once, not twice)
        return base(self, closure)


class Adam(_WithoutDynamoImport, torch.optim.Adam):
    """``torch.optim.Adam`` without the eager ``torch._dynamo`` import (see :class:`_WithoutDynamoImport`)."""


class AdamW(_WithoutDynamoImport, torch.optim.AdamW):
    """``torch.optim.AdamW`` without the eager ``torch._dynamo`` import (see :class:`_WithoutDynamoImport`)."""


class SGD(_WithoutDynamoImport, torch.optim.SGD):
    """``torch.optim.SGD`` without the eager ``torch._dynamo`` import (see :class:`_WithoutDynamoImport`)."""


@register("optimizer", "adam")
def adam(model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.0, betas: list[float] = (0.9, 0.999),  # type: ignore[assignment]
         decay_norm_and_bias: bool = False) -> torch.optim.Adam:
    """Adam (Kingma & Ba, 2015); ``weight_decay`` is L2 added to the gradient."""
    _checked(lr, weight_decay)
    return Adam(param_groups(model, weight_decay, decay_norm_and_bias), lr=lr, betas=_betas(betas))


@register("optimizer", "adamw")
def adamw(model: nn.Module, lr: float = 1e-3, weight_decay: float = 1e-2, betas: list[float] = (0.9, 0.999),  # type: ignore[assignment]
          decay_norm_and_bias: bool = False) -> torch.optim.AdamW:
    r"""AdamW (Loshchilov & Hutter, ICLR 2019): decoupled decay, :math:`\theta \leftarrow \theta - \eta\lambda\theta` besides the Adam step."""
    _checked(lr, weight_decay)
    return AdamW(param_groups(model, weight_decay, decay_norm_and_bias), lr=lr, betas=_betas(betas))


@register("optimizer", "sgd")
def sgd(model: nn.Module, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False,
        decay_norm_and_bias: bool = False) -> torch.optim.SGD:
    """SGD with momentum (optionally Nesterov's)."""
    _checked(lr, weight_decay)
    check(0 <= momentum < 1, "momentum", f"must be in [0, 1), got {momentum}")
    check(not nesterov or momentum > 0, "nesterov", "needs momentum > 0")
    return SGD(param_groups(model, weight_decay, decay_norm_and_bias), lr=lr, momentum=momentum,
                           nesterov=nesterov)


# ---------------------------------------------------------------- schedules
def _warm(optimizer: torch.optim.Optimizer, epochs: int, warmup_epochs: int,
          main: Callable[[int], LRScheduler]) -> LRScheduler:
    """``main(epochs left)`` after ``warmup_epochs`` of linear warmup (none: ``main(epochs)`` alone)."""
    check(warmup_epochs >= 0, "warmup_epochs", f"must be >= 0, got {warmup_epochs}")
    check(warmup_epochs < epochs or warmup_epochs == 0, "warmup_epochs",
          f"must be less than trainer.epochs ({epochs}), got {warmup_epochs}")
    if warmup_epochs == 0:
        return main(epochs)
    warm = LinearLR(optimizer, start_factor=1.0 / (warmup_epochs + 1), end_factor=1.0, total_iters=warmup_epochs)
    return SequentialLR(optimizer, [warm, main(epochs - warmup_epochs)], milestones=[warmup_epochs])


@register("scheduler", "cosine")
def cosine(optimizer: torch.optim.Optimizer, epochs: int, eta_min: float = 0.0, warmup_epochs: int = 0) -> LRScheduler:
    r"""Cosine annealing from the optimizer's lr to ``eta_min`` over the epochs after warmup (Loshchilov & Hutter 2017)."""
    check(eta_min >= 0, "eta_min", f"must be >= 0, got {eta_min}")
    return _warm(optimizer, epochs, warmup_epochs, lambda n: CosineAnnealingLR(optimizer, T_max=n, eta_min=eta_min))


@register("scheduler", "step")
def step(optimizer: torch.optim.Optimizer, epochs: int, step_size: int = 30, gamma: float = 0.1,
         warmup_epochs: int = 0) -> LRScheduler:
    """Multiply the lr by ``gamma`` every ``step_size`` epochs (counted after warmup)."""
    check(step_size >= 1, "step_size", f"must be >= 1, got {step_size}")
    check(0 < gamma <= 1, "gamma", f"must be in (0, 1], got {gamma}")
    return _warm(optimizer, epochs, warmup_epochs, lambda n: StepLR(optimizer, step_size=step_size, gamma=gamma))


@register("scheduler", "multistep")
def multistep(optimizer: torch.optim.Optimizer, epochs: int, milestones: list[int] = (30, 60, 90),  # type: ignore[assignment]
              gamma: float = 0.1, warmup_epochs: int = 0) -> LRScheduler:
    """Multiply the lr by ``gamma`` at each epoch in ``milestones`` (counted from the run's start)."""
    ms = list(milestones)
    check(all(isinstance(m, int) and m >= 1 for m in ms) and ms == sorted(set(ms)), "milestones",
          f"must be increasing epoch numbers >= 1, got {ms}")
    check(0 < gamma <= 1, "gamma", f"must be in (0, 1], got {gamma}")
    check(not ms or ms[0] > warmup_epochs, "milestones", f"must come after the {warmup_epochs} warmup epochs, got {ms}")
    return _warm(optimizer, epochs, warmup_epochs,
                 lambda n: MultiStepLR(optimizer, milestones=[m - warmup_epochs for m in ms], gamma=gamma))


@register("scheduler", "none")
def constant(optimizer: torch.optim.Optimizer, epochs: int, warmup_epochs: int = 0) -> LRScheduler:
    """Constant learning rate (after an optional warmup)."""
    return _warm(optimizer, epochs, warmup_epochs, lambda n: StepLR(optimizer, step_size=1, gamma=1.0))


__all__ = ["no_decay_names", "param_groups"]
