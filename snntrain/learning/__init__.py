"""Local (unsupervised) learning rules: trace-based STDP."""
from .stdp import REDUCTIONS, WEIGHT_FUNCTIONS, STDPLearner, trace_step, weight_function

__all__ = ["REDUCTIONS", "STDPLearner", "WEIGHT_FUNCTIONS", "trace_step", "weight_function"]
