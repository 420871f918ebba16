"""Spiking network architectures (registry kind ``model``).

Every module in this package is imported here, so a new file that registers a model is
available without further edits.
"""
import importlib
import pkgutil

from .mlp import mlp
from .net import SpikingNet, make_factories, spiking_stage
from .vgg import vgg

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["SpikingNet", "make_factories", "mlp", "spiking_stage", "vgg"]
