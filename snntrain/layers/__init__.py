"""Synapse and utility layers for ``[T, B, ...]`` sequences (registry kind ``layer``).

Every module in this package is imported here, so a new file that registers a layer is
available without further edits.
"""
import importlib
import pkgutil

from .synapse import SeqWrap, avgpool2d, conv2d, flatten, linear, maxpool2d

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["SeqWrap", "avgpool2d", "conv2d", "flatten", "linear", "maxpool2d"]
