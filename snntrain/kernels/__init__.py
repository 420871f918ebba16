"""Compiled kernels for the fused neuron backend (built on first use; optional)."""
