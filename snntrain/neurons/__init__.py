"""Spiking neuron models (registry kind ``neuron``).

Every module in this package is imported here, so a new file that registers a neuron
with ``@register("neuron", ...)`` is available without further edits.
"""
import importlib
import pkgutil

from .base import SpikingNeuron, detach_state, neuron_layers, record_states
from .lif import IF, LIF

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["SpikingNeuron", "detach_state", "neuron_layers", "record_states", "IF", "LIF"]
