"""Normalization layers for ``[T, B, C, ...]`` sequences (registry kind ``norm``) and inference folding.

Every module in this package is imported here, so a new file that registers a norm is
available without further edits.
"""
import importlib
import pkgutil

from .bn import BatchNorm, NoNorm, SeqBatchNorm
from .bntt import BatchNormThroughTime
from .fold import ConvBatchNorm, fold_model, fuse_conv_bn
from .layernorm import LayerNorm
from .neunorm import NeuNorm
from .tdbn import ThresholdDependentBatchNorm
from .tebn import TemporalEffectiveBatchNorm

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = [
    "BatchNorm", "NoNorm", "SeqBatchNorm", "BatchNormThroughTime", "ConvBatchNorm", "fold_model", "fuse_conv_bn",
    "LayerNorm", "NeuNorm", "ThresholdDependentBatchNorm", "TemporalEffectiveBatchNorm",
]
