"""Truncated BPTT: chunked forwards equal the whole sequence, gradients equal a hand-written chunked loop."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snntrain import ConfigError, build
from snntrain.layers.carry import carry_state
from snntrain.models import make_factories
from snntrain.training import build_trainer

from .conftest import compose_cfg


def _model(neuron: str, norm: str, T: int, dropout: float = 0.0):
    nf, mf = make_factories({"name": neuron}, {"name": "atan"}, {"name": norm}, T)
    return build("model", "mlp", context={"in_shape": (12,), "num_classes": 3, "T": T, "neuron": nf, "norm": mf},
                 hidden=[16, 8], dropout=dropout)


@pytest.mark.parametrize("neuron", ["lif", "if", "plif", "alif", "synaptic", "alpha", "rleaky", "leaky_parallel"])
@pytest.mark.parametrize("norm", ["none", "bntt", "neunorm"])
@pytest.mark.parametrize("K", [1, 3, 7])
def test_chunked_forward_equals_the_whole_sequence(neuron, norm, K):
    """Chunks of K steps with the carried state compute what one forward over T computes (train mode, dropout on).

    BNTT's statistics are per step and NeuNorm's auxiliary neuron is a carried state, so
    both are exact under chunking; dropout keeps one mask for the whole sequence.
    """
    T = 7
    torch.manual_seed(0)
    model = _model(neuron, norm, T, dropout=0.3).train()
    x = torch.rand(T, 5, 12) * 2
    torch.manual_seed(1)
    full = model(x)
    torch.manual_seed(1)
    with carry_state(model) as carry:
        parts = []
        for chunk in x.split(K):
            parts.append(model(chunk))
            carry.next_chunk()
    torch.testing.assert_close(torch.cat(parts), full, rtol=1e-6, atol=1e-6)
    torch.manual_seed(1)
    assert torch.equal(model(x), full)  # outside the block: from rest again, nothing carried over


def test_tebn_uses_the_scales_of_the_chunks_steps():
    T = 4
    tebn = build("norm", "tebn", context={"num_features": 3, "T": T, "shape": (3,), "v_th": 1.0}).eval()
    with torch.no_grad():
        tebn.scale.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    x = torch.randn(T, 2, 3)
    with carry_state(tebn) as carry:
        a = tebn(x[:3])
        carry.next_chunk()
        b = tebn(x[3:])
    torch.testing.assert_close(torch.cat([a, b]), tebn(x))
    with carry_state(tebn), pytest.raises(ValueError, match="starts at step"):
        tebn(torch.randn(5, 2, 3))


def _trainer(*overrides):
    sgd = ["optimizer=sgd", "optimizer.lr=0.1", "optimizer.momentum=0", "optimizer.weight_decay=0", "scheduler=none"]
    cfg = compose_cfg("T=6", "trainer.progress=false", "model.hidden=[32]", "neuron.backend=torch", *sgd, *overrides)
    torch.manual_seed(0)
    return build_trainer(cfg)


def _grads(trainer):
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


def test_tbptt_steps_T_is_full_bptt_exactly():
    x, y = torch.rand(8, 64), torch.randint(0, 10, (8,))
    full, chunked = _trainer(), _trainer("trainer.tbptt_steps=6")
    full.optimizer.step = chunked.optimizer.step = lambda: None  # keep the gradients to compare
    full.train_step(x, y)
    chunked.train_step(x, y)
    for n, g in _grads(full).items():
        assert torch.equal(g, _grads(chunked)[n]), n


@pytest.mark.parametrize("K", [1, 2, 4])
def test_tbptt_equals_a_hand_written_chunked_loop(K):
    """The trainer's gradients against a loop written out here with the neuron's streaming ``step``.

    Hand loop: for each chunk c of K steps, run flatten -> linear -> lif.step (state from
    the previous chunk, detached) -> linear, loss_c = CE(mean over the chunk's readout, y)
    * K_c / T, backward; the gradients add up over the chunks.
    """
    T = 6
    x, y = torch.rand(8, 64), torch.randint(0, 10, (8,))
    trainer = _trainer(f"trainer.tbptt_steps={K}")
    lif = trainer.model[3]
    hand = {n: p.detach().clone().requires_grad_() for n, p in trainer.model.named_parameters()}
    trainer.optimizer.step = lambda: None
    trainer.train_step(x, y)

    x_seq = x.unsqueeze(0).expand(T, -1, -1)  # the direct encoder repeats the sample
    state = None
    for start in range(0, T, K):
        chunk = x_seq[start:start + K]
        outs = []
        for xt in chunk:
            h = F.linear(xt, hand["1.module.weight"], hand["1.module.bias"])
            s, state = lif.step(h, state)
            outs.append(F.linear(s, hand["4.module.weight"], hand["4.module.bias"]))
        loss = F.cross_entropy(torch.stack(outs).mean(0), y) * (len(chunk) / T)
        loss.backward()
        state = state.detach()
    for n, p in trainer.model.named_parameters():
        torch.testing.assert_close(p.grad, hand[n].grad, rtol=1e-5, atol=1e-6, msg=n)
    if K < T:  # the cut changes the gradient: the test can tell truncated from full BPTT
        full = _trainer()
        full.optimizer.step = lambda: None
        full.train_step(x, y)
        assert not torch.allclose(full.model[1].module.weight.grad, trainer.model[1].module.weight.grad, atol=1e-6)


def test_tbptt_trains_with_a_time_indexed_norm_and_dropout(tmp_path):
    from snntrain.training import train

    m = train(compose_cfg("T=4", "norm=bntt", "model.dropout=0.2", "trainer.tbptt_steps=2", "trainer.epochs=1",
                          "trainer.limit_batches=3", "trainer.progress=false"), tmp_path)
    assert m["status"] == "finished" and 0 <= m["test_acc"] <= 1


def test_tbptt_is_refused_by_a_gradient_free_trainer():
    with pytest.raises(ConfigError, match="trainer.tbptt_steps"):
        build_trainer(compose_cfg("trainer=stdp", "trainer.tbptt_steps=2"))
