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


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    if name.startswith("__"):  # dunder probes (inspect, pickle): never a submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:  # a submodule: snntrain.training.checkpoint, .sops, ...
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TrainerBase", "build_trainer", "bptt", "evaluate", "losses", "optim", "setup", "stdp", "train"]
