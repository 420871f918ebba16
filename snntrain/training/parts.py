"""The one assembler: a run's config -> the parts a trainer works with.

:class:`Parts` turns the config's component sections into objects, each built on first
use and then kept (a trainer that needs no optimizer never builds one):

========================  =====================================================
``parts.data``            the dataset bundle (``train``, ``test``, ``in_shape``, ...)
``parts.encoder``         batch -> ``[T, B, ...]`` (a temporal dataset's batch only moves T first)
``parts.model``           the network, on the run's device
``parts.loss_fn``         readout sequence, labels -> loss
``parts.optimizer``       over ``parts.model``'s parameters
``parts.scheduler``       the lr schedule for ``parts.epochs`` epochs
``parts.neuron_factories(**changes)``  the neuron and norm factories (``changes`` update the neuron section)
========================  =====================================================

plus the plain values ``T``, ``seed``, ``epochs``, ``names`` (group -> chosen name,
for messages) and ``section(group)`` (a copy of one component's settings). A trainer is built as ``Trainer(parts, loop, device, dist, **its own
trainer.* keys)``: ``loop`` holds the checked shared ``trainer.*`` keys
(:data:`~snntrain.training.schema.LOOP`), and nothing hands it the config itself.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any

import torch

from ..errors import ConfigError
from ..registry import build
from .config import section_args

GROUPS = ("dataset", "encoder", "model", "neuron", "surrogate", "norm", "loss", "optimizer", "scheduler")


def sequence_input(data, encoder):
    """Batch -> ``[T, B, ...]``: encode static samples, or move T first for temporal data."""
    if data.temporal:
        return lambda x: x.transpose(0, 1)
    return encoder


class Parts:
    """The components of one run, built from its (validated) config on first use; see the module doc."""

    def __init__(self, cfg: dict[str, Any], device: torch.device | str = "cpu"):
        self._cfg = cfg
        self.device = torch.device(device)
        self.T: int = cfg["T"]
        self.seed: int = cfg["seed"]
        self.epochs: int = cfg["trainer"]["epochs"]
        #: group -> the chosen component's name
        self.names: dict[str, str] = {g: cfg[g]["name"] for g in GROUPS}

    def section(self, group: str) -> dict[str, Any]:
        """A copy of the config section of component ``group`` (its ``name`` and arguments), for a trainer
        that depends on the chosen component's settings (e.g. ``ottt`` on the neuron's decay)."""
        import copy

        return copy.deepcopy(self._cfg[group])

    def _build(self, group: str, context: dict[str, Any] | None = None) -> Any:
        return build(group, self.names[group], context=context, **section_args(self._cfg[group]))

    @cached_property
    def data(self) -> Any:
        return self._build("dataset", {"T": self.T})

    @cached_property
    def raw_encoder(self) -> Any:
        """The configured encoder itself (:attr:`encoder` skips it for temporal data)."""
        return self._build("encoder", {"T": self.T})

    @cached_property
    def encoder(self) -> Any:
        """Batch -> ``[T, B, ...]``: the encoder for static samples; temporal data only moves T first."""
        return sequence_input(self.data, self.raw_encoder)

    def neuron_factories(self, **changes: Any) -> tuple[Any, Any]:
        """``(neuron, norm)`` layer factories; ``changes`` replace keys of the neuron section (e.g. ``inhibition``)."""
        from ..models import make_factories

        return make_factories({**self._cfg["neuron"], **changes}, self._cfg["surrogate"], self._cfg["norm"], self.T)

    @cached_property
    def model(self) -> torch.nn.Module:
        from ..neurons import neuron_layers

        from . import budget

        data = self.data
        budget.check(self._cfg, data, self.device)  # the memory the run needs, estimated before the network exists
        neuron, norm = self.neuron_factories()
        ctx = {"in_shape": data.in_shape, "num_classes": data.num_classes, "T": self.T, "neuron": neuron, "norm": norm}
        model = self._build("model", ctx).to(self.device)
        if not neuron_layers(model):
            raise ConfigError(
                f"model: the {self.names['model']} network built from this config has no spiking layer (check model.* "
                f"such as model.hidden), so nothing in it spikes. Give it at least one hidden layer."
            )
        return model

    @cached_property
    def loss_fn(self) -> Any:
        return self._build("loss")

    @cached_property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._build("optimizer", {"model": self.model})

    @cached_property
    def scheduler(self) -> Any:
        return self._build("scheduler", {"optimizer": self.optimizer, "epochs": self.epochs})

    def supervised(self) -> dict[str, Any]:
        """Data, model, encoder (the configured one), loss, optimizer and scheduler, built in that order."""
        return {"data": self.data, "model": self.model, "encoder": self.raw_encoder, "loss_fn": self.loss_fn,
                "optimizer": self.optimizer, "scheduler": self.scheduler}
