"""Example arguments and shapes for every registered layer, one module per family.

Each module here defines ``LAYER_EXAMPLES = {name: (kwargs, per_step_in_shape, per_step_out_shape)}``;
the generated tests in test_registry.py build every registered layer from these and
fail for a layer that has no example.
"""
import importlib
import pkgutil


def layer_examples() -> dict:
    merged: dict = {}
    for m in pkgutil.iter_modules(__path__):
        merged.update(importlib.import_module(f"{__name__}.{m.name}").LAYER_EXAMPLES)
    return merged
