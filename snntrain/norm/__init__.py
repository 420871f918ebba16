"""Normalization layers for ``[T, B, C, ...]`` sequences (registry kind ``norm``)."""
from .bn import BatchNorm, NoNorm, SeqBatchNorm
from .bntt import BatchNormThroughTime
from .neunorm import NeuNorm
from .tdbn import ThresholdDependentBatchNorm
from .tebn import TemporalEffectiveBatchNorm

__all__ = [
    "BatchNorm",
    "NoNorm",
    "SeqBatchNorm",
    "BatchNormThroughTime",
    "NeuNorm",
    "ThresholdDependentBatchNorm",
    "TemporalEffectiveBatchNorm",
]
