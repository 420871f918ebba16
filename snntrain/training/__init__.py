"""Training: the run engine, the trainers (``bptt``, ``stdp``), losses, optimizers, checkpoints.

Imported lazily: ``snntrain.training.schema`` (the config checks) and ``distributed`` need no
torch, so the command line refuses a bad config before paying for ``import torch``. The
names below load their module on first use; the registry imports the registering modules
(:data:`snntrain.registry.COMPONENT_MODULES`).
"""
from __future__ import annotations

import importlib
from typing import Any

_NAMES = {"TrainerBase": "engine", "build_trainer": "engine", "train": "engine", "evaluate": "bptt", "setup": "bptt"}
_MODULES = ("bptt", "stdp", "losses", "optim", "engine", "checkpoint", "distributed", "schema", "config", "sops",
            "dashboard", "progress", "rundir")


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TrainerBase", "build_trainer", "bptt", "evaluate", "losses", "optim", "setup", "stdp", "train"]
