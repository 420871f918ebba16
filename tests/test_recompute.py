"""``trainer.recompute=stage``: the same gradients (``torch.equal``) and running statistics as without recomputation.

For every norm (each batch-norm variant included), with dropout (the recomputed masks must be
the first forward's), under truncated BPTT and with compact gradient storage: one training
step with and without recomputation from the same weights and batch; every gradient and every
buffer (running mean and variance, batch counts) must be identical — a running statistic
updated twice by the recomputed forward makes the buffers differ.
"""
from __future__ import annotations

import pytest
import torch

from snntrain import available
from snntrain.norm.mpbn import MembraneBN
from snntrain.training.engine import build_trainer
from snntrain.training.recompute import stages

from .conftest import compose_cfg

BASE = ["trainer.batch_size=8", "T=4", "optimizer=sgd", "optimizer.lr=0.1"]


def pair(*overrides):
    a = build_trainer(compose_cfg(*BASE, *overrides))
    b = build_trainer(compose_cfg(*BASE, *overrides, "trainer.recompute=stage"))
    b.model.load_state_dict(a.model.state_dict())
    return a, b


def step_both(a, b, seed=0):
    xs, ys = zip(*[a.data.train[i] for i in range(8)])
    x, y = torch.stack(xs), torch.tensor(ys)
    for tr in (a, b):
        tr.train_mode()
        torch.manual_seed(seed)  # the same dropout masks and encoder draws in both runs
        tr.train_step(x, y)


def assert_same(a, b):
    for (n, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        assert p.grad is not None and torch.equal(p.grad, q.grad), f"gradient of {n} differs"
        assert torch.equal(p, q), n
    for (n, u), v in zip(a.model.named_buffers(), b.model.buffers()):
        assert torch.equal(u, v), f"buffer {n} differs (a running statistic updated twice?)"


@pytest.mark.parametrize("norm", available("norm"))
def test_gradients_and_running_statistics_equal_for_every_norm(norm):
    a, b = pair("model=vgg", "model.dropout=0.2", "model.classifier=[16]", f"norm={norm}")
    step_both(a, b)
    assert_same(a, b)
    for m in b.model.modules():  # once per step; MPBN's membrane BN once per time step (T=4)
        if getattr(m, "num_batches_tracked", None) is not None:
            assert int(m.num_batches_tracked) == (4 if isinstance(m, MembraneBN) else 1), type(m).__name__


@pytest.mark.parametrize("overrides", [["trainer.tbptt_steps=2"], ["neuron.grad_storage=int8", "neuron.detach_reset=true"],
                                       ["trainer.tbptt_steps=3", "norm=tab"]], ids=["tbptt", "int8", "tbptt-tab"])
def test_composes_with_tbptt_and_grad_storage(overrides):
    norm = [] if any(o.startswith("norm=") for o in overrides) else ["norm=bn"]
    a, b = pair("model=vgg", *norm, *overrides)
    step_both(a, b)
    assert_same(a, b)


@pytest.mark.parametrize("model", ["resnet18", "spikformer", "ms_resnet18"])
def test_residual_and_transformer_models(model):
    extra = ["model.dim=32", "model.heads=2", "model.depth=1"] if model == "spikformer" else ["model.width=0.125"]
    a, b = pair(f"model={model}", "norm=tdbn", *extra)
    step_both(a, b)
    assert_same(a, b)


def test_stages_end_with_a_neuron_and_inputs_are_kept_as_bits():
    a, b = pair("model=vgg", "norm=bn")
    cut = stages(b.model)
    assert len(cut) == 3 and sum(len(s) for s in cut) == len(b.model)
    saved = {}
    for name, tr in (("none", a), ("stage", b)):  # what the forward leaves for the backward
        total = [0]

        def pack(t, total=total):
            total[0] += t.numel() * t.element_size()
            return t

        xs, _ = zip(*[tr.data.train[i] for i in range(8)])
        tr.train_mode()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            tr.net(tr.encoder(torch.stack(xs)))
        saved[name] = total[0]
    assert saved["stage"] < saved["none"] / 4
