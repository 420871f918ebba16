"""A neuron and the 2x2 average pool after it run as one kernel pass, bit for bit the pair run apart.

The reference is the same layers in a plain ``nn.Sequential`` (neuron, then ``avg_pool2d`` and
its backward); a spy on the C++ engine tells whether the fused pass ran.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from snntrain import build
from snntrain.backends import lif
from snntrain.layers.carry import carry_state
from snntrain.layers.synapse import SeqWrap
from snntrain.models.net import SpikingNet
from snntrain.neurons import record_states

from .test_backends import use_kernel


@pytest.fixture
def widths(monkeypatch):
    """The ``pool_w`` of every C++ engine forward (0: not fused)."""
    use_kernel("kernel", monkeypatch)
    seen: list[int] = []
    forward = lif._Cpu.forward

    def spy(self, p, meta, x_seq, v0):
        seen.append(meta.pool_w)
        return forward(self, p, meta, x_seq, v0)

    monkeypatch.setattr(lif._Cpu, "forward", spy)
    return seen


def layers(neuron="lif", size=(12, 10), pool=None, **kw):
    torch.manual_seed(0)
    h, w = size
    context = {"shape": (8, h, w)}
    if "surrogate" in kw:
        context["surrogate"] = build("surrogate", kw.pop("surrogate"))
    n = build("neuron", neuron, context=context, backend="fused", **kw)
    pool = pool or nn.AvgPool2d(2)
    out = pool(torch.zeros(1, 8, h, w)).numel()
    return [SeqWrap(nn.Conv2d(3, 8, 3, padding=1)), n, SeqWrap(pool), SeqWrap(nn.Flatten(1)), SeqWrap(nn.Linear(out, 4))]


def run_both(parts, size=(12, 10), T=3, fused_net=SpikingNet):
    fused, apart = fused_net(*parts), nn.Sequential(*copy.deepcopy(parts))
    x = torch.randn(T, 2, 3, *size, generator=torch.Generator().manual_seed(1)) * 2
    ys, grads = [], []
    for net in (fused, apart):
        y = net(x)
        ys.append(y)
        grads.append(torch.autograd.grad(y.square().sum(), list(net.parameters())))
    return ys, grads


@pytest.mark.parametrize("neuron,kw", [
    ("lif", {}), ("lif", {"learn_threshold": True}), ("plif", {}), ("if", {}),
    ("lif", {"reset": "zero"}), ("lif", {"reset": "zero", "detach_reset": True, "grad_storage": "bf16"}),
    ("lif", {"grad_storage": "int8"}), ("lif", {"surrogate": "sigmoid"}),
    ("lif", {"decay_shape": "neuron", "learn_decay": True}), ("lif", {"decay_shape": "channel"}),
])
def test_fused_pair_equals_the_pair_run_apart_bit_for_bit(widths, neuron, kw):
    (y, y_ref), (g, g_ref) = run_both(layers(neuron, **dict(kw)))
    assert widths[0] == 10 and 0 in widths  # the SpikingNet fused (W = 10); the reference did not
    assert torch.equal(y, y_ref)
    assert all(torch.equal(a, b) for a, b in zip(g, g_ref))
    assert any(a.abs().sum() > 0 for a in g)  # the spikes fired and the gradients are not all zero


def test_wide_maps_over_many_tiles(widths):
    """Wide maps: three pairs of rows per tile, many tiles over two threads."""
    (y, y_ref), (g, g_ref) = run_both(layers("lif", size=(8, 300)), size=(8, 300), T=2)
    assert widths[0] == 300
    assert torch.equal(y, y_ref) and all(torch.equal(a, b) for a, b in zip(g, g_ref))


@pytest.mark.parametrize("case", ["odd height", "3x3 window", "ceil_mode", "graded", "torch backend"])
def test_pairs_that_cannot_fuse_run_apart(widths, case):
    size, pool, kw = (12, 10), None, {}
    if case == "odd height":
        size = (11, 10)
    elif case == "3x3 window":
        pool = nn.AvgPool2d(3)
    elif case == "ceil_mode":
        pool = nn.AvgPool2d(2, ceil_mode=True)
    elif case == "graded":
        kw = {"graded_spikes_factor": 0.5}
    parts = layers(size=size, pool=pool, **kw)
    if case == "torch backend":
        parts[1].backend = "torch"
    (y, y_ref), (g, g_ref) = run_both(parts, size=size)
    assert 10 not in widths
    assert torch.equal(y, y_ref) and all(torch.equal(a, b) for a, b in zip(g, g_ref))


def test_a_hook_sees_the_full_spike_map(widths):
    """A forward hook on the neuron (a monitor) sees the neuron's own output, so the pair runs apart."""
    net = SpikingNet(*layers())
    seen = []
    handle = net[1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    net(torch.randn(3, 2, 3, 12, 10))
    handle.remove()
    assert seen == [torch.Size([3, 2, 8, 12, 10])] and widths == [0]
    net(torch.randn(3, 2, 3, 12, 10))
    assert widths == [0, 10]  # without the hook it fuses again


def test_recorded_traces_and_truncated_bptt_run_apart(widths):
    net = SpikingNet(*layers())
    x = torch.randn(4, 2, 3, 12, 10)
    with record_states(net) as traces:
        net(x)
    assert widths == [0] and traces
    widths.clear()
    with carry_state(net) as carry:
        for chunk in x.split(2):
            net(chunk)
            carry.next_chunk()
    assert widths == [0, 0]


def test_the_eager_engine_runs_the_pair_apart(monkeypatch):
    use_kernel("eager", monkeypatch)
    (y, y_ref), (g, g_ref) = run_both(layers())
    assert torch.equal(y, y_ref) and all(torch.equal(a, b) for a, b in zip(g, g_ref))
