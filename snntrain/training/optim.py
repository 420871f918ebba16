"""Optimizers (kind ``optimizer``) and learning-rate schedules (kind ``scheduler``).

Schedules step once per epoch.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR

from ..errors import check
from ..registry import register


@register("optimizer", "adam")
def adam(params: Iterable, lr: float = 1e-3, weight_decay: float = 0.0, betas: list[float] = (0.9, 0.999)) -> torch.optim.Adam:  # type: ignore[assignment]
    """Adam (Kingma & Ba, 2015)."""
    check(lr > 0, "lr", f"must be > 0, got {lr}")
    check(weight_decay >= 0, "weight_decay", f"must be >= 0, got {weight_decay}")
    check(len(betas) == 2 and all(0 <= b < 1 for b in betas), "betas", f"must be two numbers in [0, 1), got {list(betas)}")
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))


@register("optimizer", "sgd")
def sgd(params: Iterable, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False) -> torch.optim.SGD:
    """SGD with momentum."""
    check(lr > 0, "lr", f"must be > 0, got {lr}")
    check(0 <= momentum < 1, "momentum", f"must be in [0, 1), got {momentum}")
    check(weight_decay >= 0, "weight_decay", f"must be >= 0, got {weight_decay}")
    check(not nesterov or momentum > 0, "nesterov", "needs momentum > 0")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


@register("scheduler", "cosine")
def cosine(optimizer: torch.optim.Optimizer, epochs: int, eta_min: float = 0.0) -> LRScheduler:
    """Cosine annealing from the optimizer's lr to ``eta_min`` over all epochs."""
    check(eta_min >= 0, "eta_min", f"must be >= 0, got {eta_min}")
    return CosineAnnealingLR(optimizer, T_max=epochs, eta_min=eta_min)


@register("scheduler", "step")
def step(optimizer: torch.optim.Optimizer, step_size: int = 30, gamma: float = 0.1) -> LRScheduler:
    """Multiply the lr by ``gamma`` every ``step_size`` epochs."""
    check(step_size >= 1, "step_size", f"must be >= 1, got {step_size}")
    check(0 < gamma <= 1, "gamma", f"must be in (0, 1], got {gamma}")
    return StepLR(optimizer, step_size=step_size, gamma=gamma)


@register("scheduler", "none")
def constant(optimizer: torch.optim.Optimizer) -> LRScheduler:
    """Constant learning rate."""
    return StepLR(optimizer, step_size=1, gamma=1.0)
