"""Spiking network architectures (registry kind ``model``)."""
from .mlp import mlp
from .net import SpikingNet, make_factories, spiking_stage
from .vgg import vgg

__all__ = ["SpikingNet", "make_factories", "mlp", "spiking_stage", "vgg"]
