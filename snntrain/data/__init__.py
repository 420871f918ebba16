"""Datasets (registry kind ``dataset``) and encoders (kind ``encoder``)."""
from . import digits, encoders
from .bundle import DataBundle

__all__ = ["DataBundle", "digits", "encoders"]
