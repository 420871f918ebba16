"""The snnTorch-derived neurons against snnTorch itself, by hand, and step-by-step == forward.

Each parity test runs the same random input ([T=16, B, F] or [T=16, B, C, H, W]) through
our neuron and snnTorch's, with the parameters copied across, and compares spikes
(identical), state traces (max abs diff <= 1e-5) and the gradients of one random
projection of spikes and traces w.r.t. the input and every learnable parameter
(max abs diff <= 1e-4). Both use the ATan surrogate with alpha=2.
"""
from __future__ import annotations

import math

import pytest
import torch

from snntrain import ConfigError, build

snn = pytest.importorskip("snntorch")

T = 16
DENSE, CONV = (4, 8), (2, 3, 5, 5)  # [B, F], [B, C, H, W]
SHAPES = [DENSE, CONV]
SHAPE_IDS = ["dense", "conv"]
RESETS = ["subtract", "zero", "none"]
SNN_DELAY = {"reset_delay": True, "detach_reset": True}  # snnTorch's reset semantics


def seq(shape, seed=0, scale=1.5, shift=0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, *shape, generator=g) * scale + shift


def ours(name, shape, **kw):
    return build("neuron", name, context={"shape": tuple(shape[1:])}, **kw)


def run_snn(neuron, x, names):
    """snnTorch's neuron stepped over ``x`` from rest: spikes and the named state traces."""
    spk, tr = [], {n: [] for n in names}
    for xt in x:
        out = neuron(xt)
        spk.append(out[0])
        for n, v in zip(names, out[1:]):
            tr[n].append(v)
    return torch.stack(spk), {n: torch.stack(v) for n, v in tr.items()}


def maxdiff(a, b):
    return float((a - b).detach().abs().max())


def parity(mine, theirs, x, names, params, snn_fn=None):
    """Compare forward and gradients; ``params``: (our tensor, their tensor[, map of their grad])."""
    torch.manual_seed(123)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, tr1 = mine(xa, return_state=True)
    s2, tr2 = snn_fn(xb) if snn_fn else run_snn(theirs, xb, names)
    assert 0 < float(s1.detach().mean()) < 1, "the test input should make some, not all, neurons fire"
    assert torch.equal(s1, s2)
    diffs = {"state": max(maxdiff(tr1[n], tr2[n]) for n in names)}
    assert diffs["state"] <= 1e-5, diffs
    w_s = torch.randn_like(s1)
    w = {n: torch.randn_like(tr1[n]) for n in names}
    loss = lambda s, tr: (s * w_s).sum() + sum((tr[n] * w[n]).sum() for n in names)  # noqa: E731
    loss(s1, tr1).backward()
    loss(s2, tr2).backward()
    diffs["grad_x"] = maxdiff(xa.grad, xb.grad)
    assert xa.grad.abs().sum() > 0 and diffs["grad_x"] <= 1e-4, diffs
    for p in params:
        a, b = p[0], p[1]
        gb = p[2](b.grad) if len(p) > 2 else b.grad
        assert a.grad is not None and gb is not None and a.grad.abs().sum() > 0
        # a shared (scalar) parameter's gradient sums over every neuron and step, so it can
        # be large: the tolerance is 1e-4 absolute, relative above magnitude 1
        d_abs = maxdiff(a.grad, gb.reshape(a.grad.shape))
        d = d_abs / max(1.0, float(gb.abs().max()))
        diffs["grad_params_abs"] = max(diffs.get("grad_params_abs", 0.0), d_abs)
        diffs["grad_params"] = max(diffs.get("grad_params", 0.0), d)
        assert d <= 1e-4, (diffs, tuple(a.shape))
    return diffs


def copy_(dst, src):
    with torch.no_grad():
        dst.copy_(src.reshape(dst.shape))


# ---------------------------------------------------------------- synaptic
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_synaptic_matches_snntorch(shape, reset):
    mine = ours("synaptic", shape, alpha=0.8, beta=0.7, learn_alpha=True, learn_beta=True, learn_threshold=True, reset=reset, **SNN_DELAY)
    theirs = snn.Synaptic(alpha=0.8, beta=0.7, learn_alpha=True, learn_beta=True, learn_threshold=True, reset_mechanism=reset)
    x = seq(shape, scale=1.0, shift=0.1)
    parity(mine, theirs, x, ["syn", "mem"], [(mine.alpha, theirs.alpha), (mine.beta, theirs.beta), (mine.threshold, theirs.threshold)])


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_synaptic_per_neuron_decays_match_snntorch(shape):
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(shape[1:], generator=g) * 0.5 + 0.4, torch.rand(shape[1:], generator=g) * 0.5 + 0.4
    mine = ours("synaptic", shape, decay_shape="neuron", learn_alpha=True, learn_beta=True, **SNN_DELAY)
    copy_(mine.alpha, a)
    copy_(mine.beta, b)
    theirs = snn.Synaptic(alpha=a.clone(), beta=b.clone(), learn_alpha=True, learn_beta=True)
    parity(mine, theirs, seq(shape, 2, 1.0, 0.1), ["syn", "mem"], [(mine.alpha, theirs.alpha), (mine.beta, theirs.beta)])


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", ["synaptic", "rleaky"])
def test_snntorch_immediate_zero_reset_matches(name, shape):
    """snnTorch's reset_delay=False with reset "zero" is our immediate reset, gradient through the spike included."""
    if name == "synaptic":
        mine = ours("synaptic", shape, alpha=0.8, beta=0.7, learn_beta=True, learn_threshold=True, reset="zero")
        theirs = snn.Synaptic(alpha=0.8, beta=0.7, learn_beta=True, learn_threshold=True, reset_mechanism="zero", reset_delay=False)
        pairs, names = [(mine.beta, theirs.beta), (mine.threshold, theirs.threshold)], ["syn", "mem"]
    else:
        mine, theirs, pairs = recurrent_pair("rleaky", shape, True, "zero", beta=0.7)
        mine.reset_delay, mine.detach_reset, theirs.reset_delay = False, False, False
        names = ["mem"]
    parity(mine, theirs, seq(shape, 19, 1.0, 0.3), names, pairs)


def test_synaptic_inhibition_matches_snntorch():
    mine = ours("synaptic", DENSE, alpha=0.8, beta=0.7, inhibition=True, **SNN_DELAY)
    with pytest.warns(UserWarning):
        theirs = snn.Synaptic(alpha=0.8, beta=0.7, inhibition=True)
    parity(mine, theirs, seq(DENSE, 3), ["syn", "mem"], [])


@pytest.mark.parametrize(
    "delay,reset,spikes,syn,mem",
    [
        # alpha = beta = 0.5, threshold 1, input 0.8, 0.4, 0.2; immediate reset:
        #   syn 0.8, 0.4+0.4=0.8, 0.4+0.2=0.6; H 0.8, 0.4+0.8=1.2 (spike, U=0.2), 0.1+0.6=0.7
        (False, "subtract", [0, 1, 0], [0.8, 0.8, 0.6], [0.8, 0.2, 0.7]),
        #   zero: U2 = 0 -> H3 = 0.6
        (False, "zero", [0, 1, 0], [0.8, 0.8, 0.6], [0.8, 0.0, 0.6]),
        # snnTorch's delayed reset: U2 = 1.2 stays, U3 = 0.6 + 0.6 - 1 = 0.2 (or 0 for zero)
        (True, "subtract", [0, 1, 0], [0.8, 0.8, 0.6], [0.8, 1.2, 0.2]),
        (True, "zero", [0, 1, 0], [0.8, 0.8, 0.6], [0.8, 1.2, 0.0]),
        (False, "none", [0, 1, 1], [0.8, 0.8, 0.6], [0.8, 1.2, 1.2]),
    ],
)
def test_synaptic_hand_computed(delay, reset, spikes, syn, mem):
    n = build("neuron", "synaptic", alpha=0.5, beta=0.5, reset=reset, reset_delay=delay)
    s, tr = n(torch.tensor([0.8, 0.4, 0.2]).view(3, 1, 1), return_state=True)
    assert s.flatten().tolist() == spikes
    assert torch.allclose(tr["syn"].flatten(), torch.tensor(syn)) and torch.allclose(tr["mem"].flatten(), torch.tensor(mem))


# ---------------------------------------------------------------- alpha
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_alpha_matches_snntorch(shape, reset):
    # snnTorch's Alpha cannot learn alpha (learn_alpha=True raises); beta and threshold can
    mine = ours("alpha", shape, alpha=0.9, beta=0.8, learn_beta=True, learn_threshold=True, reset=reset, detach_reset=True)
    theirs = snn.Alpha(alpha=0.9, beta=0.8, learn_beta=True, learn_threshold=True, reset_mechanism=reset)
    x = seq(shape, 4, scale=1.0, shift=0.6)
    parity(mine, theirs, x, ["syn_exc", "syn_inh", "mem"], [(mine.beta, theirs.beta), (mine.threshold, theirs.threshold)])


def test_alpha_learns_alpha_and_responds_one_step_late():
    n = build("neuron", "alpha", alpha=0.9, beta=0.8, learn_alpha=True)
    x = torch.tensor([2.0, 0.0, 0.0]).view(3, 1, 1)
    _, tr = n(x, return_state=True)
    tau = math.log(0.9) / (math.log(0.8) - math.log(0.9)) + 1
    # U1 = tau (2 - 2) = 0; U2 = tau (0.9 * 2 - 0.8 * 2); U3 = tau (0.81 * 2 - 0.64 * 2)
    assert torch.allclose(tr["mem"].flatten(), torch.tensor([0.0, tau * 0.2, tau * 0.34]))
    tr["mem"].sum().backward()
    assert n.alpha.grad.abs() > 0


# ---------------------------------------------------------------- lapicque
LAPICQUE_ARGS = [
    ({"decay": 0.8}, {"beta": 0.8}),
    ({"R": 2.0, "C": 3.0}, {"R": 2.0, "C": 3.0}),
    ({"decay": 0.7, "C": 2.0, "time_step": 0.5}, {"beta": 0.7, "C": 2.0, "time_step": 0.5}),
]


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("args", LAPICQUE_ARGS, ids=["beta", "RC", "beta_C"])
def test_lapicque_matches_snntorch(args, shape, reset):
    kw, snn_kw = args
    mine = ours("lapicque", shape, learn_threshold=True, reset=reset, **kw, **SNN_DELAY)
    theirs = snn.Lapicque(learn_threshold=True, reset_mechanism=reset, **snn_kw)
    assert mine.R == pytest.approx(float(theirs.R), rel=1e-6) and mine.C == pytest.approx(float(theirs.C), rel=1e-6)
    parity(mine, theirs, seq(shape, 5, 1.5, 1.0), ["mem"], [(mine.threshold, theirs.threshold)])


@pytest.mark.parametrize(
    "delay,reset,spikes,mem",
    [
        # R=1, C=2, dt=1: H = 0.5 U + 0.5 I; input 1.2, 1.6, 0.4:
        #   H1 = 0.6; H2 = 0.3 + 0.8 = 1.1 spike -> U2 = 0.1; H3 = 0.05 + 0.2 = 0.25
        (False, "subtract", [0, 1, 0], [0.6, 0.1, 0.25]),
        (False, "zero", [0, 1, 0], [0.6, 0.0, 0.2]),
        # delayed (snnTorch): U2 = 1.1 kept; U3 = 0.55 + 0.2 - 1 = -0.25, or 0 for zero
        (True, "subtract", [0, 1, 0], [0.6, 1.1, -0.25]),
        (True, "zero", [0, 1, 0], [0.6, 1.1, 0.0]),
    ],
)
def test_lapicque_hand_computed(delay, reset, spikes, mem):
    n = build("neuron", "lapicque", R=1.0, C=2.0, reset=reset, reset_delay=delay)
    s, tr = n(torch.tensor([1.2, 1.6, 0.4]).view(3, 1, 1), return_state=True)
    assert s.flatten().tolist() == spikes
    assert torch.allclose(tr["mem"].flatten(), torch.tensor(mem))


def test_lapicque_derivations():
    n = build("neuron", "lapicque", decay=0.5)  # R = 1, C = dt / ln 2
    assert n.R == 1.0 and n.C == pytest.approx(1 / math.log(2))
    assert float(n.leak) == pytest.approx(1 - math.log(2)) and float(n.gain) == pytest.approx(math.log(2))
    n = build("neuron", "lapicque", decay=0.5, C=2.0, time_step=0.5)  # R = dt / (C ln 2)
    assert n.R == pytest.approx(0.5 / (2 * math.log(2)))
    n = build("neuron", "lapicque", R=2.0, C=4.0)
    assert n.beta == pytest.approx(math.exp(-1 / 8))
    assert build("neuron", "lapicque").beta == 0.5  # default when nothing is given


# ---------------------------------------------------------------- rleaky / rsynaptic
def recurrent_pair(name, shape, all_to_all, reset, **decays):
    kw = dict(learn_threshold=True, reset_mechanism=reset, learn_recurrent=True, **{k: v for k, v in decays.items()})
    learn = {f"learn_{k}": True for k in decays}
    mine = ours(name, shape, all_to_all=all_to_all, learn_threshold=True, reset=reset, **decays, **learn, **SNN_DELAY)
    cls = snn.RLeaky if name == "rleaky" else snn.RSynaptic
    if all_to_all:
        size = {"linear_features": shape[1]} if len(shape) == 2 else {"conv2d_channels": shape[1], "kernel_size": 3}
        theirs = cls(all_to_all=True, **size, **kw, **learn)
        mine.recurrent.load_state_dict(theirs.recurrent.state_dict())
        pairs = [(mine.recurrent.weight, theirs.recurrent.weight), (mine.recurrent.bias, theirs.recurrent.bias)]
    else:
        V = torch.rand(shape[1:], generator=torch.Generator().manual_seed(6)) * 1.5 - 0.5
        theirs = cls(all_to_all=False, V=V.clone(), **kw, **learn)
        copy_(mine.V, V)
        pairs = [(mine.V, theirs.V)]
    pairs += [(getattr(mine, k), getattr(theirs, k)) for k in decays] + [(mine.threshold, theirs.threshold)]
    return mine, theirs, pairs


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("all_to_all", [True, False], ids=["all_to_all", "one_to_one"])
def test_rleaky_matches_snntorch(all_to_all, shape, reset):
    mine, theirs, pairs = recurrent_pair("rleaky", shape, all_to_all, reset, beta=0.7)
    silent_V = not all_to_all and reset == "zero"
    if silent_V:  # snnTorch quirk kept: V S_{t-1} only arrives when R_t = S_{t-1} = 1 zeroes the membrane
        pairs = pairs[1:]
    parity(mine, theirs, seq(shape, 7, 1.5, 0.3), ["mem"], pairs)  # snnTorch returns (spk, mem)
    if silent_V:
        assert not mine.V.grad.any() and not theirs.V.grad.any()


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("all_to_all", [True, False], ids=["all_to_all", "one_to_one"])
def test_rsynaptic_matches_snntorch(all_to_all, shape, reset):
    mine, theirs, pairs = recurrent_pair("rsynaptic", shape, all_to_all, reset, alpha=0.6, beta=0.7)
    parity(mine, theirs, seq(shape, 8, 1.0, 0.1), ["syn", "mem"], pairs)


def test_recurrent_feedback_shapes():
    assert isinstance(ours("rleaky", DENSE).recurrent, torch.nn.Linear)
    conv = ours("rsynaptic", CONV, kernel_size=5).recurrent
    assert isinstance(conv, torch.nn.Conv2d) and conv.weight.shape == (3, 3, 5, 5)
    assert ours("rleaky", CONV, all_to_all=False).V.shape == CONV[1:]
    assert ours("rleaky", CONV, all_to_all=False, V_shape="channel").V.shape == (3, 1, 1)
    frozen = ours("rleaky", DENSE, learn_V=False)
    assert not any(p.requires_grad for p in frozen.parameters())


# ---------------------------------------------------------------- leaky_parallel
@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar_beta", "neuron_beta"])
def test_leaky_parallel_relu_matches_snntorch(per_neuron):
    F = DENSE[1]
    theirs = snn.LeakyParallel(F, F, beta=0.8, bias=False, learn_beta=True, learn_threshold=True)
    with torch.no_grad():
        theirs.rnn.weight_ih_l0.copy_(torch.eye(F))  # the synapse is a separate layer here
    theirs.rnn.weight_ih_l0.requires_grad_(False)
    mine = ours("leaky_parallel", DENSE, beta=0.8, learn_beta=True, learn_threshold=True, relu_membrane=True,
                decay_shape="neuron" if per_neuron else "scalar")
    if per_neuron:
        b = torch.rand(F, generator=torch.Generator().manual_seed(9)) * 0.6 + 0.35
        copy_(mine.beta, b)
        with torch.no_grad():
            theirs.rnn.weight_hh_l0.copy_(torch.diag(b))
    diag = lambda g: torch.diagonal(g) if per_neuron else torch.diagonal(g).sum()  # noqa: E731

    def snn_fn(x):
        return theirs(x), {"mem": theirs.rnn(x)[0]}

    parity(mine, theirs, seq(DENSE, 10, 1.5, 0.2), ["mem"], [(mine.beta, theirs.rnn.weight_hh_l0, diag), (mine.threshold, theirs.threshold)], snn_fn)


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("decay_shape", ["scalar", "channel", "neuron"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_leaky_parallel_forward_equals_recurrence(shape, decay_shape, relu):
    """The T x T matmul (or the ReLU scan) against the step-by-step recurrence, values and gradients."""
    n = ours("leaky_parallel", shape, beta=0.8, learn_beta=True, decay_shape=decay_shape, relu_membrane=relu)
    with torch.no_grad():
        n.beta.uniform_(0.3, 0.95)
    x = seq(shape, 11, 1.0, 0.2)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, tr1 = n(xa, return_state=True)
    s2, tr2 = SpikingNeuronForward(n, xb)
    assert torch.equal(s1, s2) and 0 < float(s1.detach().mean()) < 1
    assert maxdiff(tr1["mem"], tr2["mem"]) <= 1e-5
    w = torch.randn_like(x)
    g1 = torch.autograd.grad(((s1 + tr1["mem"]) * w).sum(), (xa, n.beta))
    g2 = torch.autograd.grad(((s2 + tr2["mem"]) * w).sum(), (xb, n.beta))
    assert maxdiff(g1[0], g2[0]) <= 1e-4 and maxdiff(g1[1], g2[1]) <= 1e-4


def SpikingNeuronForward(n, x):
    """The base class's sequential forward (loops ``step``)."""
    from snntrain.neurons.base import SpikingNeuron

    return SpikingNeuron.forward(n, x, return_state=True)


def test_leaky_parallel_closed_form_by_hand():
    n = build("neuron", "leaky_parallel", beta=0.5)
    x = torch.tensor([1.0, -2.0, 4.0]).view(3, 1, 1)
    _, tr = n(x, return_state=True)
    assert tr["mem"].flatten().tolist() == [1.0, -1.5, 3.25]  # 1; 0.5 - 2; -0.75 + 4
    n = build("neuron", "leaky_parallel", beta=0.5, relu_membrane=True)
    _, tr = n(x, return_state=True)
    assert tr["mem"].flatten().tolist() == [1.0, 0.0, 4.0]


# ---------------------------------------------------------------- slstm / sconv2dlstm
@pytest.mark.parametrize("reset", RESETS)
def test_slstm_matches_snntorch(reset):
    F = DENSE[1]
    torch.manual_seed(12)
    theirs = snn.SLSTM(F, F, threshold=0.1, learn_threshold=True, reset_mechanism=reset)
    mine = ours("slstm", DENSE, threshold=0.1, learn_threshold=True, reset=reset, **SNN_DELAY)
    mine.lstm_cell.load_state_dict(theirs.lstm_cell.state_dict())
    pairs = [(a, b) for a, b in zip(mine.lstm_cell.parameters(), theirs.lstm_cell.parameters())]
    parity(mine, theirs, seq(DENSE, 13), ["syn", "mem"], pairs + [(mine.threshold, theirs.threshold)])


@pytest.mark.parametrize("reset", RESETS)
def test_sconv2dlstm_matches_snntorch(reset):
    C = CONV[1]
    torch.manual_seed(14)
    theirs = snn.SConv2dLSTM(C, C, 3, threshold=0.1, learn_threshold=True, reset_mechanism=reset)
    mine = ours("sconv2dlstm", CONV, kernel_size=3, threshold=0.1, learn_threshold=True, reset=reset, **SNN_DELAY)
    mine.conv.load_state_dict(theirs.conv.state_dict())
    pairs = [(mine.conv.weight, theirs.conv.weight), (mine.conv.bias, theirs.conv.bias)]
    parity(mine, theirs, seq(CONV, 15), ["syn", "mem"], pairs + [(mine.threshold, theirs.threshold)])


def test_slstm_on_conv_layer_is_a_per_position_lstm():
    n = ours("slstm", CONV)
    x = seq(CONV, 16)[:4]
    s, tr = n(x, return_state=True)
    # position (1, 2) alone, as a dense [B, C] sequence through the same cell
    h = c = torch.zeros(CONV[0], CONV[1])
    for t in range(4):
        h, c = n.lstm_cell(x[t, :, :, 1, 2], (h, c))
    assert torch.allclose(tr["mem"][-1, :, :, 1, 2], h, atol=1e-6) and torch.allclose(tr["syn"][-1, :, :, 1, 2], c, atol=1e-6)


def test_sconv2dlstm_on_dense_layer_uses_a_1x1_kernel():
    assert ours("sconv2dlstm", DENSE, kernel_size=5).conv.weight.shape == (4 * 8, 2 * 8, 1, 1)


# ---------------------------------------------------------------- streaming and arguments
STREAMING = [
    ("synaptic", {}), ("synaptic", {"reset": "zero", **SNN_DELAY}),
    ("alpha", {}), ("alpha", {"reset": "subtract"}),
    ("lapicque", {}), ("lapicque", {"reset": "zero", "reset_delay": True}),
    ("rleaky", {}), ("rleaky", {"all_to_all": False, **SNN_DELAY}),
    ("rsynaptic", {}), ("rsynaptic", {"all_to_all": False, "reset": "zero", "reset_delay": True}),
    ("leaky_parallel", {}), ("leaky_parallel", {"relu_membrane": True, "decay_shape": "neuron"}),
    ("slstm", {}), ("slstm", {"reset": "subtract", "reset_delay": True}),
    ("sconv2dlstm", {}), ("sconv2dlstm", {"reset": "zero"}),
]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name,kw", STREAMING, ids=[f"{n}-{i % 2}" for i, (n, _) in enumerate(STREAMING)])
def test_step_by_step_equals_forward(name, kw, shape):
    torch.manual_seed(17)
    n = ours(name, shape, **kw)
    x = seq(shape, 18, 1.5, 0.5)
    with torch.no_grad():
        s, tr = n(x, return_state=True)
        state, steps, states = None, [], []
        for xt in x:
            st, state = n.step(xt, state)
            steps.append(st)
            states.append(state if isinstance(state, tuple) else (state,))
    assert torch.equal(torch.stack(steps), s) and 0 < float(s.mean()) < 1
    for i, key in enumerate(n.state_names):
        assert maxdiff(torch.stack([st[i] for st in states]), tr[key]) <= 1e-5
    assert torch.equal(n(x), s)  # fresh state per call


@pytest.mark.parametrize(
    "name,kw,key",
    [
        ("synaptic", {"alpha": 1.5}, "alpha"),
        ("synaptic", {"beta": 0.0}, "beta"),
        ("alpha", {"alpha": 0.7, "beta": 0.8}, "beta"),
        ("lapicque", {"decay": 0.5, "R": 1.0, "C": 1.0}, "decay"),
        ("lapicque", {"R": 1.0}, "C"),
        ("lapicque", {"decay": 1.0}, "decay"),
        ("lapicque", {"time_step": 0.0}, "time_step"),
        ("rleaky", {"kernel_size": 0}, "kernel_size"),
        ("rsynaptic", {"alpha": -0.1}, "alpha"),
        ("leaky_parallel", {"beta": 2.0}, "beta"),
        ("slstm", {"threshold": 1.0}, "threshold"),
        ("sconv2dlstm", {"kernel_size": 0}, "kernel_size"),
    ],
)
def test_bad_arguments_name_the_key(name, kw, key):
    with pytest.raises(ConfigError) as e:
        build("neuron", name, context={"shape": (3, 4, 4)}, **kw)
    assert str(e.value).startswith(f"neuron.{key}:")


def test_layer_shape_is_required_where_it_sizes_weights():
    with pytest.raises(ConfigError, match="neuron.all_to_all:"):
        build("neuron", "rleaky")
    assert build("neuron", "rleaky", all_to_all=False, V_shape="scalar").V.shape == ()


def test_state_quant_hook_feeds_back():
    q = lambda v: torch.round(v * 4) / 4  # noqa: E731  (2 fractional bits)
    x = torch.tensor([0.3, 0.3, 0.3]).view(3, 1, 1)
    syn = build("neuron", "synaptic", alpha=0.5, beta=0.5)
    syn.state_quant = q
    _, tr = syn(x, return_state=True)
    # syn 0.3 -> 0.25 (mem charged with 0.3 -> 0.25); syn 0.125 + 0.3 = 0.425 -> 0.5, mem 0.125 + 0.425 -> 0.5
    assert tr["syn"].flatten().tolist() == [0.25, 0.5, 0.5] and tr["mem"].flatten().tolist()[:2] == [0.25, 0.5]
    par = build("neuron", "leaky_parallel", beta=0.5)
    par.state_quant = q  # forces the sequential path: the quantised membrane feeds back
    _, tr = par(x, return_state=True)
    assert tr["mem"].flatten().tolist() == [0.25, 0.5, 0.5]  # 0.3; 0.125 + 0.3; 0.25 + 0.3
