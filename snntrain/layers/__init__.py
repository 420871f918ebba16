"""Synapse and utility layers for ``[T, B, ...]`` sequences (registry kind ``layer``)."""
from .synapse import SeqWrap, avgpool2d, conv2d, flatten, linear, maxpool2d

__all__ = ["SeqWrap", "avgpool2d", "conv2d", "flatten", "linear", "maxpool2d"]
