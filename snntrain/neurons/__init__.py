"""Spiking neuron models (registry kind ``neuron``)."""
from .base import SpikingNeuron, detach_state
from .lif import IF, LIF

__all__ = ["SpikingNeuron", "detach_state", "IF", "LIF"]
