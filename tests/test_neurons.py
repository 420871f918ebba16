"""Neurons and surrogates against hand-computed values and closed forms."""
from __future__ import annotations

import math

import pytest
import torch

from snntrain import build
from snntrain.neurons import detach_state


def run(name, inputs, **kw):
    neuron = build("neuron", name, **kw)
    x = torch.tensor(inputs).view(-1, 1, 1)
    return neuron(x).flatten().tolist()


# decay 0.5, threshold 1.0, worked by hand from H_t = 0.5 V_{t-1} + I_t:
#   [1.8, 0.7]: H1 = 1.8 spikes; subtract leaves V1 = 0.8 -> H2 = 0.4 + 0.7 = 1.1 spikes;
#               zero leaves V1 = 0 -> H2 = 0.7, silent.
#   [1.2, 0.0, 0.9]: none keeps V1 = 1.2 -> H2 = 0.6, H3 = 0.3 + 0.9 = 1.2 spikes;
#               subtract: V1 = 0.2 -> H2 = 0.1, H3 = 0.95 silent.
@pytest.mark.parametrize(
    "inputs,reset,expected",
    [
        ([1.8, 0.7], "subtract", [1.0, 1.0]),
        ([1.8, 0.7], "zero", [1.0, 0.0]),
        ([1.2, 0.0, 0.9], "none", [1.0, 0.0, 1.0]),
        ([1.2, 0.0, 0.9], "subtract", [1.0, 0.0, 0.0]),
        ([0.6, 0.6, 0.6, 1.5], "subtract", [0.0, 0.0, 1.0, 1.0]),
    ],
)
def test_lif_hand_computed(inputs, reset, expected):
    assert run("lif", inputs, decay=0.5, threshold=1.0, reset=reset) == expected


def test_if_integrates_without_leak():
    # 0.375 per step (exact in binary): H = 0.375, 0.75, 1.125 -> spike, V = 0.125;
    # then H = 0.5, 0.875, 1.25 -> spike. A leak of any size would delay the spikes.
    assert run("if", [0.375] * 6, threshold=1.0) == [0, 0, 1, 0, 0, 1]


def test_lif_membrane_and_input_gradient_single_step():
    lif = build("neuron", "lif", decay=0.5, threshold=1.0)
    x = torch.tensor([[0.3, 1.4]], requires_grad=True)
    s, v = lif.step(x, torch.tensor([[0.8, 0.2]]))
    # H = 0.5 * V + x = [0.7, 1.5]; second spikes and subtracts the threshold
    assert torch.allclose(v, torch.tensor([[0.7, 0.5]]))
    s.sum().backward()
    h = torch.tensor([[0.7, 1.5]])
    alpha = 2.0
    expected = (alpha / 2) / (1 + (math.pi / 2 * alpha * (h - 1.0)) ** 2)
    assert torch.allclose(x.grad, expected)


def test_learnable_decay_and_threshold_get_gradients():
    lif = build("neuron", "lif", decay=0.8, learn_decay=True, learn_threshold=True)
    assert {n for n, _ in lif.named_parameters()} == {"decay", "threshold"}
    lif(torch.randn(6, 4, 3) + 1).sum().backward()
    assert lif.decay.grad.abs() > 0 and lif.threshold.grad.abs() > 0


def test_detach_reset_changes_only_gradients():
    torch.manual_seed(0)
    x = torch.randn(8, 4, 5) + 0.8
    grads, outs = [], []
    for detach in (False, True):
        xi = x.clone().requires_grad_()
        s = build("neuron", "lif", detach_reset=detach)(xi)
        s.sum().backward()
        outs.append(s.detach())
        grads.append(xi.grad)
    assert torch.equal(outs[0], outs[1]) and not torch.allclose(grads[0], grads[1])


def test_truncated_bptt_chunks_equal_whole_sequence_forward():
    torch.manual_seed(0)
    lif = build("neuron", "lif", decay=0.7)
    x = torch.randn(10, 2, 3) + 0.5
    state, chunks = None, []
    for chunk in x.split(4):
        for xt in chunk:
            s, state = lif.step(xt, state)
            chunks.append(s)
        state = detach_state(state)
        assert not state.requires_grad
    assert torch.equal(torch.stack(chunks), lif(x))


# ---------------------------------------------------------------- surrogates
CLOSED_FORM = {
    "atan": lambda x, a=2.0: (a / 2) / (1 + (math.pi / 2 * a * x) ** 2),
    "sigmoid": lambda x, a=4.0: a * torch.sigmoid(a * x) * (1 - torch.sigmoid(a * x)),
    "triangle": lambda x, w=1.0: torch.clamp(w - x.abs(), min=0) / w**2,
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_surrogate_backward_equals_closed_form(name):
    x = torch.linspace(-2.5, 2.5, 201, requires_grad=True)
    build("surrogate", name)(x).sum().backward()
    assert torch.allclose(x.grad, CLOSED_FORM[name](x.detach()), atol=1e-7)


def test_surrogates_match_peer_libraries():
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    snn_surrogate = pytest.importorskip("snntorch.surrogate")
    x = torch.linspace(-2, 2, 81)

    def grad_of(fn):
        xi = x.clone().requires_grad_()
        fn(xi).sum().backward()
        return xi.grad

    ours_atan = grad_of(build("surrogate", "atan", alpha=2.0))
    assert torch.allclose(ours_atan, grad_of(sj_surrogate.ATan(alpha=2.0)), atol=1e-6)
    assert torch.allclose(ours_atan, grad_of(snn_surrogate.atan(alpha=2.0)), atol=1e-6)
    ours_sig = grad_of(build("surrogate", "sigmoid", alpha=4.0))
    assert torch.allclose(ours_sig, grad_of(sj_surrogate.Sigmoid(alpha=4.0)), atol=1e-6)
    assert torch.allclose(ours_sig, grad_of(snn_surrogate.sigmoid(slope=4.0)), atol=1e-6)


# ---------------------------------------------------------------- shared base options
def test_record_states_returns_membrane_traces_that_carry_gradients():
    from snntrain.models import make_factories
    from snntrain.neurons import record_states

    neuron, norm = make_factories({"name": "lif"}, {"name": "atan"}, {"name": "none"}, 4)
    model = build("model", "mlp", context={"in_shape": (1, 8, 8), "num_classes": 10, "T": 4, "neuron": neuron, "norm": norm}, hidden=[7])
    x = torch.rand(4, 2, 1, 8, 8)
    with record_states(model) as traces:
        model(x)
    mem = traces["stage1"]["mem"]
    assert mem.shape == (4, 2, 7) and mem.requires_grad
    lif = model[3]
    assert lif.recorder is None  # the recorder is gone after the block
    _, direct = lif(model[1](model[0](x)), return_state=True)
    assert torch.equal(direct["mem"], mem)
    mem.pow(2).sum().backward()  # a membrane loss reaches the weights
    assert model[1].module.weight.grad.abs().sum() > 0


def test_state_quant_hook_is_applied_to_the_membrane():
    lif = build("neuron", "lif", decay=0.5)
    lif.state_quant = lambda v: torch.round(v * 4) / 4  # 2 fractional bits
    _, traces = lif(torch.tensor([0.3, 0.3, 0.3]).view(3, 1, 1), return_state=True)
    # H1 = 0.3 -> 0.25; H2 = 0.125 + 0.3 = 0.425 -> 0.5; H3 = 0.25 + 0.3 = 0.55 -> 0.5
    assert traces["mem"].flatten().tolist() == [0.25, 0.5, 0.5]


def test_graded_spikes_scale_output_not_reset():
    x = torch.tensor([1.5, 0.2]).view(2, 1, 1)
    plain = build("neuron", "lif", decay=0.5)
    graded = build("neuron", "lif", decay=0.5, graded_spikes_factor=0.3, learn_graded_spikes_factor=True)
    s_plain, tp = plain(x, return_state=True)
    s_graded, tg = graded(x, return_state=True)
    assert torch.allclose(s_graded, 0.3 * s_plain) and torch.equal(tp["mem"], tg["mem"])
    s_graded.sum().backward()
    assert graded.graded_spikes_factor.grad == 1.0  # one spike emitted


def test_inhibition_lets_only_the_strongest_neuron_fire():
    lif = build("neuron", "lif", decay=0.5, inhibition=True)
    x = torch.tensor([[[1.2, 3.0, 2.0], [0.1, 0.2, 0.3]]])  # [T=1, B=2, F=3]
    assert lif(x).tolist() == [[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]


def test_tau_and_decay_are_exclusive_and_equivalent():
    from snntrain import ConfigError

    x = torch.randn(8, 3, 4) + 0.5
    assert torch.equal(build("neuron", "lif", tau=4.0)(x), build("neuron", "lif", decay=0.75)(x))
    with pytest.raises(ConfigError, match="neuron.tau: set decay or tau, not both"):
        build("neuron", "lif", tau=4.0, decay=0.75)


def test_per_channel_decay_has_one_value_per_channel():
    lif = build("neuron", "lif", context={"shape": (3, 4, 4)}, decay=0.9, decay_shape="channel", learn_decay=True)
    assert lif.decay.shape == (3, 1, 1)
    lif(torch.randn(5, 2, 3, 4, 4) + 1).sum().backward()
    assert lif.decay.grad.shape == (3, 1, 1) and (lif.decay.grad != 0).all()
