"""Neurons against the peer libraries (SpikingJelly 2.0, snnTorch 1.0) and hand-written loops.

Each case runs a random input ``[T=16, B, ...]`` (a dense ``[B, F]`` and a conv
``[B, C, H, W]`` shape) through our neuron and the peer, and asks for identical spikes,
membrane traces within 1e-5 and gradients (input and learnable parameters) within 1e-4.
Spikes are ``x >= 0`` here and ``x > 0`` in snnTorch: ties have probability zero.
"""
from __future__ import annotations

import warnings

import pytest
import torch

from snntrain import ConfigError, build

# test extras: a missing one fails collection, it is never skipped
import snntorch  # noqa: E402
import snntorch.surrogate as snn_surrogate  # noqa: E402
import spikingjelly.activation_based.functional as sj_functional  # noqa: E402
import spikingjelly.activation_based.neuron as sj_neuron  # noqa: E402
import spikingjelly.activation_based.surrogate as sj_surrogate  # noqa: E402

T = 16
SHAPES = {"dense": (4, 8), "conv": (2, 3, 4, 4)}  # [B, ...]
MEM_TOL, GRAD_TOL = 1e-5, 1e-4
V_RESETS = [None, 0.0, -0.2]  # SpikingJelly: None = soft reset, a float = hard reset to it


def inputs(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input sequence and two fixed random cotangents (for spikes and for membranes)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, *shape, generator=g) * 1.5 + 0.5
    return x, torch.randn(T, *shape, generator=g), torch.randn(T, *shape, generator=g)


def backward(spikes, mem, x, ws, wm, params):
    """Gradients of a random linear read-out of spikes and membranes w.r.t. x and params."""
    loss = (spikes * ws).sum() + (mem * wm).sum()
    return torch.autograd.grad(loss, [x, *params])


def assert_same(ours, peer, names):
    (s_o, v_o, g_o), (s_p, v_p, g_p) = ours, peer
    assert 0 < (s_o != 0).float().mean() < 1, "degenerate case: no spikes or all spikes"
    assert torch.equal(s_o, s_p), f"{int((s_o != s_p).sum())} spikes differ"
    assert (v_o - v_p).abs().max() <= MEM_TOL
    for name, a, b in zip(names, g_o, g_p):
        assert a.shape == b.shape, name
        diff = float((a - b).abs().max())
        assert diff <= GRAD_TOL, f"gradient w.r.t. {name} differs by {diff:g}"


def ours_run(neuron, x, ws, wm, params, v0=None):
    """Our neuron over the sequence: ``forward``, or ``step`` from membrane ``v0`` if given."""
    x = x.clone().requires_grad_()
    if v0 is None:
        s, traces = neuron(x, return_state=True)
        v = traces["mem"]
    else:
        state, out, mems = torch.full_like(x[0], v0), [], []
        for xt in x:
            st, state = neuron.step(xt, state)
            out.append(st)
            mems.append(state)
        s, v = torch.stack(out), torch.stack(mems)
    return s.detach(), v.detach(), backward(s, v, x, ws, wm, params)


# ---------------------------------------------------------------- SpikingJelly
def sj_run(node, x, ws, wm, params):
    sj_functional.reset_net(node)  # SpikingJelly's neurons keep their state between calls
    x = x.clone().requires_grad_()
    s = node(x)
    v = node.v_seq
    return s.detach(), v.detach(), backward(s, v, x, ws, wm, params)


def sj_kwargs(v_reset, detach_reset):
    return dict(
        v_threshold=1.0, v_reset=v_reset, detach_reset=detach_reset,
        surrogate_function=sj_surrogate.ATan(alpha=2.0), step_mode="m", store_v_seq=True,
    )


def our_reset(v_reset):
    return {"reset": "subtract"} if v_reset is None else {"reset": "zero", "v_reset": v_reset}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("v_reset", V_RESETS, ids=["soft", "hard0", "hard-0.2"])
def test_if_matches_spikingjelly(v_reset, detach_reset, shape):
    x, ws, wm = inputs(shape)
    ours = build("neuron", "if", detach_reset=detach_reset, **our_reset(v_reset))
    peer = sj_neuron.IFNode(**sj_kwargs(v_reset, detach_reset))
    assert_same(ours_run(ours, x, ws, wm, []), sj_run(peer, x, ws, wm, []), ["x"])


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("decay_input", [True, False], ids=["decay_input", "raw_input"])
@pytest.mark.parametrize("v_reset", V_RESETS, ids=["soft", "hard0", "hard-0.2"])
def test_lif_matches_spikingjelly(v_reset, decay_input, detach_reset, shape):
    x, ws, wm = inputs(shape)
    ours = build("neuron", "lif", tau=3.0, decay_input=decay_input, detach_reset=detach_reset, **our_reset(v_reset))
    peer = sj_neuron.LIFNode(tau=3.0, decay_input=decay_input, **sj_kwargs(v_reset, detach_reset))
    assert_same(ours_run(ours, x, ws, wm, []), sj_run(peer, x, ws, wm, []), ["x"])


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("decay_input", [True, False], ids=["decay_input", "raw_input"])
@pytest.mark.parametrize("v_reset", V_RESETS, ids=["soft", "hard0", "hard-0.2"])
def test_plif_matches_spikingjelly(v_reset, decay_input, detach_reset, shape):
    x, ws, wm = inputs(shape)
    ours = build("neuron", "plif", init_tau=2.5, decay_input=decay_input, detach_reset=detach_reset, **our_reset(v_reset))
    peer = sj_neuron.ParametricLIFNode(init_tau=2.5, decay_input=decay_input, **sj_kwargs(v_reset, detach_reset))
    assert torch.equal(ours.w.detach(), peer.w.detach()) and ours.tau == pytest.approx(2.5)
    assert_same(ours_run(ours, x, ws, wm, [ours.w]), sj_run(peer, x, ws, wm, [peer.w]), ["x", "w"])


@pytest.mark.parametrize("name", ["if", "lif"])
def test_if_lif_forward_starts_at_rest_potential(name):
    x, ws, wm = inputs(SHAPES["dense"])
    ours = build("neuron", name, reset="zero", v_reset=-0.2)
    node = sj_neuron.IFNode if name == "if" else sj_neuron.LIFNode
    peer = node(**({} if name == "if" else {"tau": 2.0, "decay_input": False}), **sj_kwargs(-0.2, False))
    assert_same(ours_run(ours, x, ws, wm, []), sj_run(peer, x, ws, wm, []), ["x"])


# ---------------------------------------------------------------- snnTorch
def snn_run(leaky, x, ws, wm, params):
    x = x.clone().requires_grad_()
    mem, spikes, mems = torch.zeros_like(x[0]), [], []
    for xt in x:
        spk, mem = leaky(xt, mem)
        spikes.append(spk)
        mems.append(mem)
    s, v = torch.stack(spikes), torch.stack(mems)
    return s.detach(), v.detach(), backward(s, v, x, ws, wm, params)


def snn_pair(reset, inhibition=False):
    """Our ``lif`` as snnTorch's ``Leaky`` (delayed, detached reset), everything learnable.

    snnTorch's ``fire_inhibition`` ignores ``graded_spikes_factor``, so with inhibition
    the factor stays 1 and fixed.
    """
    graded = dict(graded_spikes_factor=1.0) if inhibition else dict(graded_spikes_factor=1.5, learn_graded_spikes_factor=True)
    common = dict(threshold=0.9, learn_threshold=True, inhibition=inhibition, **graded)
    ours = build("neuron", "lif", decay=0.8, learn_decay=True, reset=reset, reset_delay=True, detach_reset=True, **common)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # snnTorch warns that inhibition is experimental
        peer = snntorch.Leaky(beta=0.8, learn_beta=True, reset_mechanism=reset, spike_grad=snn_surrogate.atan(alpha=2.0), **common)
    params = [[ours.decay, ours.threshold], [peer.beta, peer.threshold]]
    if not inhibition:
        params[0].append(ours.graded_spikes_factor)
        params[1].append(peer.graded_spikes_factor)
    return ours, peer, params


SNN_NAMES = ["x", "beta", "threshold", "graded_spikes_factor"]


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_lif_matches_snntorch_leaky(reset, shape):
    x, ws, wm = inputs(shape, seed=1)
    ours, peer, (p_ours, p_peer) = snn_pair(reset)
    assert_same(ours_run(ours, x, ws, wm, p_ours), snn_run(peer, x, ws, wm, p_peer), SNN_NAMES)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_lif_inhibition_matches_snntorch_leaky(reset):
    x, ws, wm = inputs((4, 8), seed=2)
    ours, peer, (p_ours, p_peer) = snn_pair(reset, inhibition=True)
    result = ours_run(ours, x, ws, wm, p_ours)
    assert_same(result, snn_run(peer, x, ws, wm, p_peer), SNN_NAMES)
    assert (result[0] > 0).sum(-1).max() == 1  # one winner per sample and step at most


# ---------------------------------------------------------------- per-channel / per-neuron decay
@pytest.mark.parametrize(
    "decay_shape,shape",
    [("channel", (2, 3, 4, 4)), ("neuron", (2, 3, 4, 4)), ("neuron", (4, 8))],
    ids=["channel-conv", "neuron-conv", "neuron-dense"],
)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_shaped_decay_matches_hand_loop(decay_shape, shape, reset):
    x, ws, wm = inputs(shape, seed=3)
    ours = build("neuron", "lif", decay_shape=decay_shape, learn_decay=True, reset=reset, context={"shape": shape[1:]})
    expected_shape = (shape[1], 1, 1) if decay_shape == "channel" else shape[1:]
    assert ours.decay.shape == expected_shape
    with torch.no_grad():  # distinct values, so a wrong broadcast cannot pass
        ours.decay.copy_(torch.rand(expected_shape, generator=torch.Generator().manual_seed(4)) * 0.9 + 0.05)
    beta = ours.decay.detach().clone().requires_grad_()
    sg = build("surrogate", "atan")

    def hand(x):
        v, out, mems = torch.zeros_like(x[0]), [], []
        for xt in x:
            h = beta * v + xt
            s = sg(h - 1.0)
            v = h - s if reset == "subtract" else h * (1 - s)
            out.append(s)
            mems.append(v)
        return torch.stack(out), torch.stack(mems)

    xh = x.clone().requires_grad_()
    s, v = hand(xh)
    peer = (s.detach(), v.detach(), backward(s, v, xh, ws, wm, [beta]))
    assert_same(ours_run(ours, x, ws, wm, [ours.decay]), peer, ["x", "decay"])


# ---------------------------------------------------------------- PLIF
def test_plif_learns_its_time_constant():
    plif = build("neuron", "plif", init_tau=4.0)
    assert [n for n, _ in plif.named_parameters()] == ["w"]
    assert plif.decay.item() == pytest.approx(0.75) and plif.tau == pytest.approx(4.0)
    plif(torch.randn(6, 4, 3) + 1).sum().backward()
    assert plif.w.grad.abs() > 0
    with pytest.raises(ConfigError, match="^neuron.init_tau:"):
        build("neuron", "plif", init_tau=1.0)


def test_plif_is_lif_with_sigmoid_decay():
    x, ws, wm = inputs((4, 8), seed=5)
    plif = build("neuron", "plif", init_tau=3.0, decay_input=False)
    lif = build("neuron", "lif", tau=3.0, decay_input=False)
    a, b = ours_run(plif, x, ws, wm, []), ours_run(lif, x, ws, wm, [])
    assert_same(a, b, ["x"])


# ---------------------------------------------------------------- ALIF (no peer has one: hand-computed)
# decay 0.5, rho 0.5, adapt 1.0, threshold 1.0, inputs [1.5, 1.0, 1.0, 0.75] (all exact in binary):
#   t1: H = 1.5,                 A = 1     -> spike, V = 0.5,   b = 0.5
#   t2: H = 0.25 + 1.0 = 1.25,   A = 1.5   -> silent (a LIF would fire), V = 1.25, b = 0.25
#   t3: H = 0.625 + 1.0 = 1.625, A = 1.25  -> spike, V = 1.625 - 1.25 = 0.375, b = 0.625
#   t4: H = 0.1875 + 0.75,       A = 1.625 -> silent, V = 0.9375, b = 0.3125
# With zero reset: t1 spike V = 0 b = .5; t2 H = 1.0 < 1.5 silent b = .25; t3 H = 1.5 >= 1.25 spike V = 0,
#   b = .625; t4 H = .75 silent, b = .3125.
@pytest.mark.parametrize(
    "reset,spikes,mem",
    [
        ("subtract", [1, 0, 1, 0], [0.5, 1.25, 0.375, 0.9375]),
        ("zero", [1, 0, 1, 0], [0.0, 1.0, 0.0, 0.75]),
    ],
)
def test_alif_hand_computed(reset, spikes, mem):
    alif = build("neuron", "alif", decay=0.5, rho=0.5, adapt=1.0, reset=reset)
    s, traces = alif(torch.tensor([1.5, 1.0, 1.0, 0.75]).view(4, 1, 1), return_state=True)
    assert s.flatten().tolist() == spikes
    assert traces["mem"].flatten().tolist() == mem
    assert traces["adapt"].flatten().tolist() == [0.5, 0.25, 0.625, 0.3125]
    lif = build("neuron", "lif", decay=0.5)
    assert lif(torch.tensor([1.5, 1.0, 1.0, 0.75]).view(4, 1, 1)).flatten().tolist() == [1, 1, 1, 0]


def test_alif_without_adaptation_is_lif():
    x, ws, wm = inputs((2, 3, 4, 4), seed=6)
    alif = build("neuron", "alif", tau=3.0, tau_adapt=20.0, adapt=0.0, decay_input=True, reset="zero")
    lif = build("neuron", "lif", tau=3.0, decay_input=True, reset="zero")
    assert alif.rho == pytest.approx(0.95)
    assert_same(ours_run(alif, x, ws, wm, []), ours_run(lif, x, ws, wm, []), ["x"])


@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
def test_alif_gradients_match_hand_loop(detach_reset):
    """Gradients flow through the adaptation variable b (and through A_t in the reset)."""
    x, ws, wm = inputs((4, 8), seed=7)
    alif = build("neuron", "alif", decay=0.7, rho=0.8, adapt=1.5, detach_reset=detach_reset, learn_decay=True)
    sg = build("surrogate", "atan")
    beta = alif.decay.detach().clone().requires_grad_()

    def hand(x):
        v, b, out, mems = torch.zeros_like(x[0]), torch.zeros_like(x[0]), [], []
        for xt in x:
            h = beta * v + xt
            a = 1.0 + 1.5 * b
            s = sg(h - a)
            v = h - (s.detach() if detach_reset else s) * a
            b = 0.8 * b + 0.2 * s
            out.append(s)
            mems.append(v)
        return torch.stack(out), torch.stack(mems)

    xh = x.clone().requires_grad_()
    s, v = hand(xh)
    peer = (s.detach(), v.detach(), backward(s, v, xh, ws, wm, [beta]))
    ours = ours_run(alif, x, ws, wm, [alif.decay])
    assert 0 < ours[0].mean() < 1
    assert_same(ours, peer, ["x", "decay"])


def test_alif_argument_errors_name_the_key():
    with pytest.raises(ConfigError, match="^neuron.tau_adapt:"):
        build("neuron", "alif", rho=0.9, tau_adapt=10.0)
    with pytest.raises(ConfigError, match="^neuron.rho:"):
        build("neuron", "alif", rho=1.5)
    with pytest.raises(ConfigError, match="^neuron.adapt:"):
        build("neuron", "alif", adapt=-1.0)
