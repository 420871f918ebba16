"""Datasets (registry kind ``dataset``) and encoders (kind ``encoder``).

Every module in this package is imported here, so a new file that registers a dataset
or encoder is available without further edits; modules named ``_*`` (readers that pull in
heavy libraries) are imported by the module that needs them, when it needs them.
"""
import importlib
import pkgutil

from .bundle import DataBundle

for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["DataBundle"]
