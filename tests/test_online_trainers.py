"""SLTT and OTTT: gradients equal to SpikingJelly's online-learning nodes, SLTT-K, memory flat in T, checkpoints.

Parity: our trainer's ``train_step`` on a batch of the digits (an MLP 64 -> 16 -> 10 with LIF
neurons, no norm), against the same weights in SpikingJelly run step by step with
``SLTTLIFNode`` / ``OTTTLIFNode`` + ``OTTTSequential``, each step's loss
:math:`\\mathrm{CE}(o_t, y)/T` back-propagated at once: the accumulated gradients of every
parameter must agree.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from snntrain import ConfigError
from snntrain.training.engine import build_trainer

from .conftest import compose_cfg

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
from spikingjelly.activation_based import functional, surrogate  # noqa: E402
from spikingjelly.activation_based.layer.online_learning import OTTTSequential  # noqa: E402

T = 4
SLTT_LIF = ["neuron.tau=2.0", "neuron.decay_input=true", "neuron.reset=zero", "neuron.detach_reset=true"]
OTTT_LIF = ["neuron.tau=2.0", "neuron.decay_input=false", "neuron.reset=subtract", "neuron.detach_reset=true",
            "neuron.threshold=0.2"]


def trainer(name, *extra, T_=T):
    cfg = compose_cfg(f"trainer={name}", "model=mlp", "model.hidden=[16]", "norm=none", f"T={T_}",
                      "trainer.batch_size=8", "optimizer=sgd", "optimizer.lr=0.1", "optimizer.momentum=0.0", *extra)
    return build_trainer(cfg)


def batch(tr, n=8):
    xs, ys = zip(*[tr.data.train[i] for i in range(n)])
    return torch.stack(xs), torch.tensor(ys)


def peer_net(tr, node, sequential=nn.Sequential):
    lins = [m.module for m in tr.model.modules() if type(m).__name__ in ("SeqWrap", "TraceSynapse")
            and isinstance(getattr(m, "module", None), nn.Linear)]
    a, b = (nn.Linear(l.in_features, l.out_features) for l in lins)
    with torch.no_grad():
        a.load_state_dict(lins[0].state_dict()), b.load_state_dict(lins[1].state_dict())
    return sequential(nn.Flatten(), a, node, b), (a, b), lins


def peer_grads(tr, net, params, x, y):
    functional.reset_net(net)
    net.train()
    x_seq = tr.encoder(x)
    for t in range(x_seq.shape[0]):
        out = net(x_seq[t])
        (nn.functional.cross_entropy(out, y) / x_seq.shape[0]).backward()
    return [p.grad for m in params for p in (m.weight, m.bias)]


def test_sltt_gradients_equal_spikingjellys_sltt_node():
    tr = trainer("sltt", *SLTT_LIF)
    x, y = batch(tr)
    node = sj_neuron.SLTTLIFNode(tau=2.0, surrogate_function=surrogate.ATan())
    net, params, lins = peer_net(tr, node)  # the weights before the step
    tr.train_mode()
    tr.train_step(x, y)
    ref = peer_grads(tr, net, params, x, y)
    ours = [p.grad for m in lins for p in (m.weight, m.bias)]
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert ref[0].abs().sum() > 0


def test_sltt_differs_from_bptt():
    # the cut through the membrane changes the gradient: a test that can fail
    s, b = trainer("sltt", *SLTT_LIF), trainer("bptt", *SLTT_LIF, "loss=tet", "loss.lamb=0.0")
    b.model.load_state_dict(s.model.state_dict())
    x, y = batch(s)
    s.train_step(x, y), b.train_step(x, y)
    gs = next(s.model.parameters()).grad
    gb = next(b.model.parameters()).grad
    assert (gs - gb).abs().max() > 1e-4


def test_ottt_gradients_equal_spikingjellys_ottt_node():
    tr = trainer("ottt", *OTTT_LIF)
    x, y = batch(tr)
    s = trainer("sltt", *OTTT_LIF)
    s.model.load_state_dict(tr.model.state_dict())
    node = sj_neuron.OTTTLIFNode(tau=2.0, v_threshold=0.2, surrogate_function=surrogate.ATan())
    net, params, lins = peer_net(tr, node, OTTTSequential)
    tr.train_mode()
    tr.train_step(x, y)
    ref = peer_grads(tr, net, params, x, y)
    ours = [p.grad for m in lins for p in (m.weight, m.bias)]
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert ref[2].abs().sum() > 0  # the hidden layer fired
    # the trace matters: SLTT's gradient of the second layer differs
    s.train_step(x, y)
    w = [m.module.weight for m in s.model.modules() if type(m).__name__ == "SeqWrap" and isinstance(m.module, nn.Linear)][1]
    assert (w.grad - ours[2]).abs().max() > 1e-4


def test_sltt_k_backpropagates_k_steps_and_scales():
    tr = trainer("sltt", *SLTT_LIF, "+trainer.k=1")
    x, y = batch(tr)
    state = tr.steps_rng.get_state()
    (t,) = tr.chosen_steps(T)  # the step train_step will draw
    tr.steps_rng.set_state(state)
    node = sj_neuron.SLTTLIFNode(tau=2.0, surrogate_function=surrogate.ATan())
    net, params, lins = peer_net(tr, node)
    tr.train_step(x, y)
    functional.reset_net(net)
    x_seq = tr.encoder(x)
    for s in range(T):  # SpikingJelly, step by step: only step t back-propagated, times T/K
        with torch.set_grad_enabled(s == t):
            out = net(x_seq[s])
        if s == t:
            (nn.functional.cross_entropy(out, y) / T * T).backward()
    for a, b in zip([p.grad for m in lins for p in (m.weight, m.bias)], [p.grad for m in params for p in (m.weight, m.bias)]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="trainer.k"):
        trainer("sltt", "+trainer.k=0")


def test_online_trainers_refuse_what_they_cannot_do():
    with pytest.raises(ConfigError, match="neuron=lif or neuron=if"):
        trainer("ottt", "neuron=alif")
    with pytest.raises(ConfigError, match="tbptt_steps"):
        trainer("sltt", "trainer.tbptt_steps=2")


def saved_bytes(tr, x, y) -> int:
    """The most bytes autograd holds at once during one training step (tensors saved for backward)."""
    live, peak = [0], [0]

    def pack(t):
        live[0] += t.numel() * t.element_size()
        peak[0] = max(peak[0], live[0])
        return t

    def unpack(t):
        return t

    # a step's graph is freed by its backward: count what is alive per backward by resetting after it
    orig = torch.Tensor.backward

    def backward(self, *a, **k):
        orig(self, *a, **k)
        live[0] = 0

    torch.Tensor.backward = backward
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            tr.train_step(x, y)
    finally:
        torch.Tensor.backward = orig
    return peak[0]


@pytest.mark.parametrize("name", ["sltt", "ottt"])
def test_memory_does_not_grow_with_T(name):
    lif = SLTT_LIF if name == "sltt" else OTTT_LIF
    sizes = {}
    for T_ in (2, 8):
        tr = trainer(name, *lif, T_=T_)
        x, y = batch(tr)
        sizes[T_] = saved_bytes(tr, x, y)
    b2, b8 = (saved_bytes(t, *batch(t)) for t in (trainer("bptt", *lif, T_=2), trainer("bptt", *lif, T_=8)))
    assert sizes[8] == sizes[2] > 0
    assert b8 > 3 * b2  # BPTT's grows with T


def test_sltt_checkpoint_resumes_bitwise(tmp_path):
    from snntrain.training import train

    base = ["trainer=sltt", "model=mlp", "model.hidden=[16]", "T=2", "trainer.batch_size=16", "trainer.limit_batches=3",
            "trainer.progress=false", "+trainer.k=1"]
    full = train(compose_cfg(*base, "trainer.epochs=2"), tmp_path / "full")
    train(compose_cfg(*base, "trainer.epochs=1"), tmp_path / "half")
    resumed = train(compose_cfg(*base, "trainer.epochs=2", f"resume={tmp_path / 'half'}"), tmp_path / "half")
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "half" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_acc"] == full["test_acc"]


@pytest.mark.parametrize("norm", sorted(__import__("snntrain").available("norm")))
@pytest.mark.parametrize("name", ["sltt", "ottt"])
def test_one_step_with_every_norm(name, norm):
    lif = SLTT_LIF if name == "sltt" else OTTT_LIF
    tr = build_trainer(compose_cfg(f"trainer={name}", "model=vgg", "model.classifier=[16]", f"norm={norm}", "T=3",
                                   "trainer.batch_size=8", *lif))
    x, y = batch(tr)
    before = [p.detach().clone() for p in tr.model.parameters()]
    stats = tr.train_step(x, y)
    assert torch.isfinite(stats["loss"])
    grads = [p.grad for p in tr.model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(not torch.equal(a, p) for a, p in zip(before, tr.model.parameters()))
