"""Firing-rate monitor: mean spike rate of every neuron layer, measured by forward hooks."""
from __future__ import annotations

from torch import Tensor, nn

from ..neurons import neuron_layers


class FiringRates:
    """Context manager that averages each neuron layer's output over the calls inside it.

    ``rates()`` maps layer names (see :func:`snntrain.neurons.neuron_layers`, e.g.
    ``stage1``) to the fraction of
    (step, sample, neuron) entries that spiked.
    """

    def __init__(self, model: nn.Module):
        self.layers = neuron_layers(model)
        self._sum: dict[str, Tensor] = {}
        self._count: dict[str, int] = {}
        self._handles: list = []

    def _hook(self, name: str):
        def hook(_module: nn.Module, _inp, out) -> None:
            out = out[0] if isinstance(out, tuple) else out
            s = (out.detach() != 0).float().sum()
            self._sum[name] = self._sum.get(name, 0) + s
            self._count[name] = self._count.get(name, 0) + out.numel()

        return hook

    def __enter__(self) -> "FiringRates":
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.layers.items()]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def counts(self) -> dict[str, tuple[Tensor, int]]:
        """Per layer: (spikes, entries) seen so far; sum these over processes before dividing."""
        return {n: (self._sum[n], self._count[n]) for n in self._sum}

    def rates(self) -> dict[str, float]:
        return {n: float(self._sum[n]) / self._count[n] for n in self._sum}
