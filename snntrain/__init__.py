"""snntrain: config-driven training of spiking neural networks in PyTorch.

Python API::

    import snntrain
    snntrain.available("norm")                  # ['bn', 'bntt', 'layernorm', 'neunorm', 'none', 'tdbn', 'tebn']
    lif = snntrain.build("neuron", "lif", decay=0.9)
    cfg = snntrain.compose("trainer.epochs=1")  # the config `snntrain trainer.epochs=1` runs
    snntrain.train(cfg, run_dir="outputs/mine")  # what the `snntrain` command runs

``import snntrain`` is quick: torch and the components are imported on first use (the
registry's first query, or ``snntrain.train`` / ``snntrain.neurons`` ...).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from .errors import ConfigError  # noqa: E402
from .registry import available, build, describe  # noqa: E402

_SUBMODULES = ("data", "layers", "models", "neurons", "norm", "surrogates", "training", "learning", "kernels",
               "sweep", "evaluation", "export", "cli")


def __getattr__(name: str) -> Any:
    if name == "train":
        from .training import train

        return train
    if name == "compose":
        from .cli import compose

        return compose
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'snntrain' has no attribute {name!r}")


__all__ = ["ConfigError", "available", "build", "compose", "describe", "train", "__version__"]
