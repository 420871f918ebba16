"""Layers ported from SpikingJelly's layer package, against SpikingJelly 2.0 and their equations.

Covers snntrain/layers/{dropout,filter,misc,containers}.py. Peer comparisons use the same
weights (and the same RNG seed where both draw their random numbers in the same order);
outputs and gradients must agree within 1e-5. SpikingJelly modules keep state between
calls, so they are reset (``functional.reset_net``) between sequences; ours need no reset.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

# importing registers the layers (in case snntrain.layers does not import these modules yet)
from snntrain.layers import containers, dropout, filter, misc  # noqa: F401
from snntrain import ConfigError, build
from snntrain.layers.containers import MultiStep, SeqToANN

sj_layer = pytest.importorskip("spikingjelly.activation_based.layer")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
sj_functional = pytest.importorskip("spikingjelly.activation_based.functional")

TOL = 1e-5


def maxdiff(a, b) -> float:
    return float((a - b).detach().abs().max())


# ============================================================== dropout / dropout2d
@pytest.mark.parametrize("name", ["dropout", "dropout2d"])
def test_dropout_mask_shared_by_all_steps_and_new_per_sequence(name):
    torch.manual_seed(0)
    p = 0.4
    layer = build("layer", name, p=p)
    x = torch.rand(6, 8, 5, 3, 3) + 0.5  # strictly positive: zeros come from the mask only
    y1, y2 = layer(x), layer(x)
    for y in (y1, y2):
        ratio = y / x
        assert torch.equal(ratio == 0, (ratio[0] == 0).expand_as(ratio)), "mask changes within the sequence"
        kept = ratio[ratio != 0]
        assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)))
    assert not torch.equal(y1 == 0, y2 == 0), "the next sequence must get a new mask"
    if name == "dropout2d":  # whole channels: [b, c] all zero or all kept, at every step
        zero = (y1 == 0).flatten(3)  # [T, B, C, H*W]
        assert torch.equal(zero.all(-1), zero.any(-1))


@pytest.mark.parametrize("name,units", [("dropout", (64, 256)), ("dropout2d", (64, 64, 2, 2))])
def test_dropout_kept_fraction_is_one_minus_p(name, units):
    """Kept fraction of n independent draws: mean 1-p, sd sqrt(p(1-p)/n); allow 5 sd."""
    torch.manual_seed(1)
    p = 0.3
    layer = build("layer", name, p=p)
    y = layer(torch.ones(2, *units))
    n = units[0] * units[1] if name == "dropout2d" else math.prod(units)
    frac = float((y[0] != 0).float().mean())
    assert abs(frac - (1 - p)) <= 5 * math.sqrt(p * (1 - p) / n), frac
    assert abs(float(y.mean()) - 1.0) <= 5 * math.sqrt(p / (1 - p) / n)  # scaling keeps E[y] = x


@pytest.mark.parametrize("name", ["dropout", "dropout2d"])
def test_dropout_is_identity_in_eval(name):
    layer = build("layer", name, p=0.5).eval()
    x = torch.randn(4, 3, 2, 5, 5)
    assert torch.equal(layer(x), x)
    y, mask = layer.step(x[0])
    assert torch.equal(y, x[0]) and mask is None


@pytest.mark.parametrize("name,peer", [("dropout", "Dropout"), ("dropout2d", "Dropout2d")])
def test_dropout_equals_spikingjelly_with_same_seed(name, peer):
    """Both draw one mask from the first step's shape with the same RNG calls, so seeds give equal masks.

    SpikingJelly keeps the mask until reset_net: without the reset the second sequence
    would reuse the first mask (checked below); ours draws a new mask per call.
    """
    ours = build("layer", name, p=0.35)
    sj = getattr(sj_layer, peer)(p=0.35, step_mode="m")
    x = torch.rand(5, 4, 3, 6, 6) + 0.1
    for seed in (0, 1):
        torch.manual_seed(seed)
        y_ours = ours(x)
        torch.manual_seed(seed)
        y_sj = sj(x)
        assert torch.equal(y_ours, y_sj)
        sj_functional.reset_net(sj)
    # peer quirk: no reset -> same mask as the previous sequence
    torch.manual_seed(0)
    first = sj(x)
    torch.manual_seed(1)
    assert torch.equal(sj(x), first)
    torch.manual_seed(1)
    assert not torch.equal(ours(x), first)


@pytest.mark.parametrize("name", ["dropout", "dropout2d"])
def test_dropout_streaming_and_gradient(name):
    layer = build("layer", name, p=0.5)
    x = (torch.rand(4, 3, 2, 4, 4) + 0.1).requires_grad_()
    torch.manual_seed(3)
    y = layer(x)
    torch.manual_seed(3)
    mask, steps = None, []
    for xt in x:
        yt, mask = layer.step(xt, mask)
        steps.append(yt)
    assert torch.equal(torch.stack(steps), y)
    y.sum().backward()
    assert torch.equal(x.grad, (y / x).detach())  # d y / d x = the (scaled) mask


def test_dropout_bad_p_names_the_key():
    with pytest.raises(ConfigError, match=r"^layer\.p:.*\[0, 1\)"):
        build("layer", "dropout", p=1.0)


# ============================================================== dropconnect_linear
def _dropconnect_pair(activation: str, invariant: bool, bias: bool = True, p: float = 0.4, samples: int = 64):
    torch.manual_seed(0)
    ours = build(
        "layer", "dropconnect_linear", in_features=6, out_features=5, bias=bias, p=p,
        samples_num=samples, invariant=invariant, activation=activation,
    )
    act = nn.ReLU() if activation == "relu" else None
    sj = sj_layer.DropConnectLinear(6, 5, bias=bias, p=p, samples_num=samples, invariant=invariant, activation=act, step_mode="m")
    sj.load_state_dict(ours.state_dict())
    return ours, sj


def _run_with_grads(module, x, seed):
    x = x.clone().requires_grad_()
    torch.manual_seed(seed)
    y = module(x)
    g = torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum(), [x, *module.parameters()])
    return y, g


@pytest.mark.parametrize("invariant", [True, False])
@pytest.mark.parametrize("activation", ["none", "relu"])
def test_dropconnect_train_equals_spikingjelly_with_same_seed(invariant, activation):
    """Training: both draw [B, out, in] then [B, out] keep-masks (per step if not invariant) in the same order."""
    ours, sj = _dropconnect_pair(activation, invariant)
    x = torch.randn(4, 3, 6)
    for seed in (0, 1):
        y_o, g_o = _run_with_grads(ours, x, seed)
        y_s, g_s = _run_with_grads(sj, x, seed)
        sj_functional.reset_net(sj)
        assert maxdiff(y_o, y_s) <= TOL
        for a, b in zip(g_o, g_s):
            assert maxdiff(a, b) <= TOL


def test_dropconnect_invariant_mask_fixed_over_time():
    """Constant input over T: equal outputs at every step iff the masks are shared by the sequence."""
    x = torch.randn(1, 8, 6).expand(5, 8, 6)
    for invariant in (True, False):
        ours, _ = _dropconnect_pair("none", invariant)
        y = ours(x)
        same = torch.equal(y, y[:1].expand_as(y))
        assert same == invariant
    ours, _ = _dropconnect_pair("none", True)
    assert not torch.equal(ours(x), ours(x))  # a new mask per sequence


def test_dropconnect_streaming_and_extra_axes():
    """Training, invariant: step(x, state) reuses the masks, so stepping equals forward for the same seed; [T, B, K, in] inputs share a sample's mask over K."""
    ours, _ = _dropconnect_pair("relu", True)
    x = torch.randn(4, 3, 2, 6)
    torch.manual_seed(4)
    y = ours(x)
    torch.manual_seed(4)
    state, steps = None, []
    for xt in x:
        yt, state = ours.step(xt, state)
        steps.append(yt)
    assert maxdiff(torch.stack(steps), y) <= TOL
    mask_w, mask_b = state
    expect = torch.relu(torch.einsum("tbki,boi->tbko", x, ours.weight * mask_w) + (ours.bias * mask_b)[None, :, None])
    assert maxdiff(y, expect) <= TOL


def test_dropconnect_kept_fraction():
    ours, _ = _dropconnect_pair("none", True, p=0.3)
    torch.manual_seed(2)
    mask_w, mask_b = ours.draw(200)
    n = mask_w.numel()
    assert abs(float(mask_w.float().mean()) - 0.7) <= 5 * math.sqrt(0.21 / n)
    assert mask_b.shape == (200, 5)


@pytest.mark.parametrize("bias", [True, False])
def test_dropconnect_eval_relu_equals_spikingjelly_and_moment_matching(bias):
    """Inference (Algorithm 2): same seed -> identical Gaussian draws; the draws have the moments of the masked sum."""
    samples = 4096
    ours, sj = _dropconnect_pair("relu", True, bias=bias, samples=samples)
    ours.eval(), sj.eval()
    x = torch.randn(3, 4, 6)
    y_o, g_o = _run_with_grads(ours, x, 5)
    torch.manual_seed(5)
    with torch.no_grad():
        y_s = sj(x)
    assert maxdiff(y_o, y_s) <= TOL
    assert all(torch.isfinite(g).all() for g in g_o)  # reparametrised draws: gradients in eval too

    # moments: mu = (1-p)(Wx+b), var = p(1-p)((W*W)(x*x) + b*b), recorded from SpikingJelly's own draws
    p, w, b = ours.p, ours.weight.detach(), ours.bias
    mu = (1 - p) * (x @ w.T + (b.detach() if bias else 0))
    var = p * (1 - p) * (x.square() @ w.square().T + (b.detach().square() if bias else 0))

    class Record(nn.Module):
        def forward(self, s):
            self.samples = s
            return s

    rec = Record()
    sj_rec = sj_layer.DropConnectLinear(6, 5, bias=bias, p=p, samples_num=samples, activation=rec, step_mode="s").eval()
    sj_rec.load_state_dict(ours.state_dict())
    sj_rec(x[0])
    s = rec.samples  # [S, B, out]
    sd = var[0].sqrt()
    assert (s.mean(0) - mu[0]).abs().le(5 * sd / math.sqrt(samples) + 1e-6).all()
    assert (s.var(0) / var[0] - 1).abs().max() <= 5 * math.sqrt(2 / samples)

    # the output is E[relu(u)], u ~ N(mu, var): mu Phi(mu/sd) + sd phi(mu/sd), within 5 sd of the mean
    sd = var.sqrt()
    z = mu / sd
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = mu * normal.cdf(z) + sd * normal.log_prob(z).exp()
    assert (y_o.detach() - expected).abs().le(5 * sd / math.sqrt(samples)).all()


def test_dropconnect_eval_none_is_the_mean_spikingjelly_samples_around():
    """activation none: we return mu exactly; SpikingJelly returns the mean of its draws, mu +- sd/sqrt(S)."""
    samples = 2048
    ours, sj = _dropconnect_pair("none", True, samples=samples)
    ours.eval(), sj.eval()
    x = torch.randn(3, 4, 6)
    with torch.no_grad():
        y_o, y_s = ours(x), sj(x)
    p, w, b = ours.p, ours.weight, ours.bias
    mu = (1 - p) * (x @ w.T + b)
    sd = (p * (1 - p) * (x.square() @ w.square().T + b.square())).sqrt()
    assert maxdiff(y_o, mu) <= TOL
    assert (y_s - mu).abs().le(5 * sd / math.sqrt(samples)).all()


def test_dropconnect_eval_zero_variance():
    """Peer quirk: SpikingJelly's Normal(mu, sigma) rejects sigma = 0 (an all-zero input without bias); ours is finite."""
    ours, sj = _dropconnect_pair("relu", True, bias=False)
    ours.eval(), sj.eval()
    x = torch.randn(2, 3, 6)
    x[:, 1] = 0  # e.g. a sample without spikes
    y = ours(x)
    assert torch.isfinite(y).all() and torch.equal(y[:, 1], torch.zeros_like(y[:, 1]))
    with pytest.raises(ValueError):
        sj(x)


# ============================================================== synapse_filter
def _filter_by_hand(x, tau):
    i, out = torch.zeros_like(x[0]), []
    for xt in x:
        i = i - (1 - xt) * i / tau + xt
        out.append(i)
    return torch.stack(out)


def test_synapse_filter_hand_recurrence_and_spike_semantics():
    tau = 5.0
    layer = build("layer", "synapse_filter", tau=tau)
    x = (torch.rand(12, 3, 4) > 0.7).float()
    y = layer(x)
    assert maxdiff(y, _filter_by_hand(x, tau)) <= TOL
    prev = torch.cat([torch.zeros_like(y[:1]), y[:-1]])
    expect = torch.where(x == 1, prev + 1, prev * (1 - 1 / tau))  # +1 on a spike, decay otherwise
    assert maxdiff(y, expect) <= TOL
    state, steps = None, []
    for xt in x:
        yt, state = layer.step(xt, state)
        steps.append(yt)
    assert torch.equal(torch.stack(steps), y)
    assert torch.equal(layer(x), y)  # fresh state per call


@pytest.mark.parametrize("learnable", [False, True])
def test_synapse_filter_equals_spikingjelly(learnable):
    tau = 3.0
    ours = build("layer", "synapse_filter", tau=tau, learnable=learnable)
    sj = sj_layer.SynapseFilter(tau=tau, learnable=learnable, step_mode="m")
    if learnable:
        with torch.no_grad():
            ours.w.fill_(0.3)  # off the initial value, so tau != 3 and the gradient is generic
            sj.w.fill_(0.3)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):  # two sequences; SpikingJelly is reset in between
        x = torch.rand(10, 2, 3, 4, generator=g) * 1.5 - 0.25
        cot = torch.randn(10, 2, 3, 4, generator=g)
        xo, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
        yo, ys = ours(xo), sj(xs)
        assert maxdiff(yo, ys) <= TOL
        params_o, params_s = list(ours.parameters()), list(sj.parameters())
        go = torch.autograd.grad((yo * cot).sum(), [xo, *params_o])
        gs = torch.autograd.grad((ys * cot).sum(), [xs, *params_s])
        assert len(go) == len(gs) == 1 + learnable
        for a, b in zip(go, gs):
            assert maxdiff(a, b) <= TOL
        if not learnable:
            assert maxdiff(yo, _filter_by_hand(x, tau)) <= TOL
        sj_functional.reset_net(sj)


def test_synapse_filter_tau_gradient_matches_finite_difference():
    x = torch.rand(8, 3, dtype=torch.float64)
    layer = build("layer", "synapse_filter", tau=4.0, learnable=True).double()
    (g,) = torch.autograd.grad(layer(x).sum(), [layer.w])
    eps = 1e-6
    with torch.no_grad():
        layer.w += eps
        up = layer(x).sum()
        layer.w -= 2 * eps
        down = layer(x).sum()
    assert abs(float(g) - float(up - down) / (2 * eps)) <= 1e-6
    assert "tau=4" in repr(build("layer", "synapse_filter", tau=4.0, learnable=True))


def test_synapse_filter_bad_tau():
    with pytest.raises(ConfigError, match=r"^layer\.tau:.*> 1"):
        build("layer", "synapse_filter", tau=1.0)


# ============================================================== channels_pool, dct, axat, print_shape
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_channels_pool_matches_its_equation(mode):
    k, s = 3, 2
    layer = build("layer", "channels_pool", kernel_size=k, stride=s, mode=mode)
    x = torch.randn(2, 3, 9, 4, 5)  # [T, B, C, H, W]
    y = layer(x)
    c_out = (9 - k) // s + 1
    assert y.shape == (2, 3, c_out, 4, 5)
    for c in range(c_out):
        window = x[:, :, c * s : c * s + k]
        expect = window.amax(2) if mode == "max" else window.mean(2)
        assert maxdiff(y[:, :, c], expect) <= TOL
    # dense steps [B, C] work too
    assert build("layer", "channels_pool", kernel_size=2)(torch.randn(2, 3, 8)).shape == (2, 3, 4)


def test_channels_pool_equals_seed_implementation():
    """SpikingJelly (clock_driven) ChannelsPool: pool(x.flatten(2).permute(0, 2, 1)).permute(0, 2, 1).view(...)."""
    pool = nn.MaxPool1d(2, 2)
    x = torch.randn(3, 8, 4, 4)
    seed = pool(x.flatten(2).permute(0, 2, 1)).permute(0, 2, 1).reshape((x.shape[0], -1) + x.shape[2:])
    assert torch.equal(misc.ChannelsPool(pool)(x), seed)


def test_dct_constant_block_is_all_dc_and_transform_is_orthonormal():
    k = 4
    layer = build("layer", "dct", kernel_size=k)
    x = torch.full((2, 3, 8, 12), 0.0)
    x[..., :4, :4] = 2.5  # one constant block, the others zero
    y = layer(x)
    assert abs(float(y[..., 0, 0].min()) - k * 2.5) <= TOL and abs(float(y[..., 0, 0].max()) - k * 2.5) <= TOL
    y[..., 0, 0] = 0
    assert float(y.abs().max()) <= TOL  # every other coefficient vanishes
    d = misc.dct_matrix(k)
    assert maxdiff(d @ d.T, torch.eye(k)) <= TOL
    xr = torch.randn(2, 3, 8, 12)
    yr = layer(xr)
    assert abs(float(xr.square().sum() - yr.square().sum())) <= 1e-3  # Parseval
    # block (1, 2) equals D X D^T with D written from the cosine formula
    i = torch.arange(k)[:, None].double()
    j = torch.arange(k)[None, :].double()
    dd = torch.cos((j + 0.5) * math.pi * i / k) * torch.where(i == 0, math.sqrt(1 / k), math.sqrt(2 / k))
    blk = xr[..., 4:8, 8:12].double()
    assert maxdiff(yr[..., 4:8, 8:12].double(), dd @ blk @ dd.T) <= TOL
    scipy_fft = pytest.importorskip("scipy.fft")
    ref = scipy_fft.dctn(blk.numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert maxdiff(yr[..., 4:8, 8:12].double(), torch.from_numpy(ref)) <= TOL


def test_dct_rejects_indivisible_shape():
    with pytest.raises(ValueError, match="divisible by kernel_size=4"):
        build("layer", "dct", kernel_size=4)(torch.randn(2, 3, 8, 6))


def test_axat_equals_a_x_at():
    layer = build("layer", "axat", in_features=5, out_features=3)
    x = torch.randn(4, 2, 6, 5, 5, requires_grad=True)
    y = layer(x)
    a = layer.A
    assert y.shape == (4, 2, 6, 3, 3)
    assert maxdiff(y, torch.einsum("oi,...ij,pj->...op", a, x, a)) <= TOL
    assert maxdiff(y[1, 0, 2], a @ x[1, 0, 2] @ a.T) <= TOL
    with pytest.raises(ValueError, match=r"\[5, 5\]"):
        layer(torch.randn(2, 5, 4))


def test_print_shape_prints_and_returns_input(capsys):
    layer = build("layer", "print_shape", label="after conv")
    x = torch.randn(4, 2, 3)
    assert layer(x) is x
    assert layer.step(x[0]) is x[0] or torch.equal(layer.step(x[0]), x[0])
    out = capsys.readouterr().out
    assert "after conv shape=(4, 2, 3)" in out and "after conv shape=(2, 3)" in out


# ============================================================== containers
def _if_pair():
    return build("neuron", "if", reset="subtract"), sj_neuron.IFNode(v_reset=None, surrogate_function=sj_surrogate.ATan())


def _grads(module, x, cot, params):
    x = x.clone().requires_grad_()
    y = module(x)
    return y, torch.autograd.grad((y * cot).sum(), [x, *params])


def _assert_same_run(ours, sj, x, params_o=(), params_s=()):
    g = torch.Generator().manual_seed(7)
    cot = torch.randn(*ours(x).shape, generator=g)
    y_o, g_o = _grads(ours, x, cot, list(params_o))
    y_s, g_s = _grads(sj, x, cot, list(params_s))
    sj_functional.reset_net(sj)
    assert 0 < float((y_o != 0).float().mean()) < 1, "degenerate: no or all spikes"
    assert torch.equal(y_o, y_s)
    for a, b in zip(g_o, g_s):
        assert maxdiff(a, b) <= TOL
    assert torch.equal(ours(x), y_o)  # fresh state per call


@pytest.mark.parametrize("function", ["add", "sub", "max"])
def test_element_wise_recurrent_equals_spikingjelly(function):
    """Ours f(x, y) vs SpikingJelly 2.0's f(y, x) (its argument order): same i[t] = f(x[t], y[t-1])."""
    ours = build("layer", "element_wise_recurrent", neuron={"name": "if", "reset": "subtract"}, function=function)
    f = {"add": lambda y, x: x + y, "sub": lambda y, x: x - y, "max": lambda y, x: torch.maximum(x, y)}
    sj = sj_layer.ElementWiseRecurrentContainer(_if_pair()[1], f[function], step_mode="m")
    x = torch.randn(10, 3, 2, 4) * 0.8 + 0.4
    _assert_same_run(ours, sj, x)


def test_element_wise_recurrent_lif_and_spikingjelly_example():
    ours = build(
        "layer", "element_wise_recurrent",
        neuron={"name": "lif", "tau": 2.0, "decay_input": True, "reset": "subtract", "surrogate": {"name": "atan"}},
    )
    sj_lif = sj_neuron.LIFNode(tau=2.0, decay_input=True, v_reset=None, surrogate_function=sj_surrogate.ATan())
    sj = sj_layer.ElementWiseRecurrentContainer(sj_lif, lambda y, x: x + y, step_mode="m")
    _assert_same_run(ours, sj, torch.randn(10, 3, 6) * 1.5 + 0.8)
    # SpikingJelly's docstring example: IF(soft reset) fed back with x + y, one input of 1.5 at t = 0
    ew = build("layer", "element_wise_recurrent", neuron={"name": "if", "reset": "subtract"})
    x = torch.zeros(8, 1)
    x[0] = 1.5
    assert ew(x).flatten().tolist() == [1, 1, 1, 1, 1, 1, 1, 1]  # v: 1.5 -> 0.5+1 -> ... stays >= 1


@pytest.mark.parametrize("out_features", [None, 3])
def test_linear_recurrent_equals_spikingjelly(out_features):
    torch.manual_seed(0)
    ours = build("layer", "linear_recurrent", in_features=5, neuron={"name": "if", "reset": "subtract"}, out_features=out_features)
    _, sj_if = _if_pair()
    if out_features is None:
        sj = sj_layer.LinearRecurrentContainer(sj_if, 5, 5, step_mode="m")
        lin_o, lin_s = [], []
    else:
        sj = sj_layer.LinearRecurrentContainer(nn.Sequential(nn.Linear(5, 3), sj_if), 5, 3, step_mode="m")
        sj.sub_module[0].load_state_dict(ours.sub_module[0].state_dict())
        lin_o, lin_s = list(ours.sub_module[0].parameters()), list(sj.sub_module[0].parameters())
    sj.rc.load_state_dict(ours.rc.state_dict())
    assert ours.rc.weight.shape == sj.rc.weight.shape == (5, 5 + (out_features or 5))
    x = torch.randn(10, 4, 5) * 1.5 + 0.5
    _assert_same_run(ours, sj, x, [*ours.rc.parameters(), *lin_o], [*sj.rc.parameters(), *lin_s])


def test_linear_recurrent_hand_written():
    torch.manual_seed(1)
    layer = build("layer", "linear_recurrent", in_features=4, neuron={"name": "if", "reset": "subtract"})
    w, b = layer.rc.weight, layer.rc.bias
    x = torch.randn(6, 2, 4) * 2
    y_prev, v, out = torch.zeros(2, 4), torch.zeros(2, 4), []
    for xt in x:
        v = v + torch.cat([xt, y_prev], -1) @ w.T + b
        s = (v >= 1).float()
        v = v - s
        y_prev = s
        out.append(s)
    assert torch.equal(layer(x), torch.stack(out))


def test_seq_to_ann_and_multi_step_equal_spikingjelly():
    torch.manual_seed(0)
    ours = SeqToANN(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3))
    sj = sj_layer.SeqToANNContainer(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3))
    sj.load_state_dict(ours.state_dict())  # same keys
    x = torch.randn(4, 2, 2, 5, 5)
    assert maxdiff(ours(x), sj(x)) <= TOL
    ours.eval()
    assert maxdiff(torch.stack([ours.step(xt) for xt in x]), ours(x)) <= TOL

    neuron, sj_if = _if_pair()
    ms = MultiStep(nn.Linear(4, 6), neuron)
    sj_ms = sj_layer.MultiStepContainer(nn.Linear(4, 6), sj_if)
    sj_ms[0].load_state_dict(ms[0].state_dict())
    _assert_same_run(ms, sj_ms, torch.randn(8, 3, 4) * 2, ms[0].parameters(), sj_ms[0].parameters())
    state, steps = None, []
    xs = torch.randn(8, 3, 4) * 2
    for xt in xs:
        yt, state = ms.step(xt, state)
        steps.append(yt)
    assert torch.equal(torch.stack(steps), ms(xs))


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"neuron": {"name": "if", "reset": "soft"}}, "layer.neuron.reset:"),
        ({"neuron": {"name": "lif", "decya": 0.5}}, "layer.neuron.decya:"),
        ({"neuron": {"name": "nope"}}, "layer.neuron:"),
        ({"neuron": {"reset": "zero"}}, "layer.neuron:"),
        ({"neuron": {"name": "if", "surrogate": {"name": "atan", "alpha": -1.0}}}, "layer.neuron.surrogate.alpha:"),
        ({"neuron": {"name": "if"}, "function": "mul"}, "layer.function:"),
        ({"neuron": "if"}, "layer.neuron:"),
    ],
)
def test_recurrent_container_config_errors_name_the_nested_key(kwargs, key):
    with pytest.raises(ConfigError) as e:
        build("layer", "element_wise_recurrent", **kwargs)
    assert str(e.value).startswith(key), str(e.value)
