"""Normalization layers (registry kind ``norm``): equations, SpikingJelly and snnTorch.

Three kinds of check, all numeric (max abs difference <= 1e-5 unless stated):

1. Our layers against the equations of their docstrings, written out here with plain
   torch ops on the raw input (float64 references): pooled T·B(·space) statistics for
   ``bn``/``tdbn``/``tebn``, per-step statistics for ``bntt``, the tdBN weight init,
   TEBN's per-step scale, the NeuNorm recurrence on hand-computed spikes, and the
   running-statistics momentum update plus eval-mode use of those statistics.
2. Against SpikingJelly 2.x (``activation_based.layer``) with identical random
   parameters and buffers: outputs, input and parameter gradients for three train
   forwards, the running statistics, then eval forward and gradients.
3. Against snnTorch's ``BatchNormTT1d/2d`` (a ModuleList of per-step BatchNorms).

Also: a sequence with another T than BNTT/TEBN were built for is a ValueError.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import snntrain
from snntrain.norm import (
    BatchNorm,
    BatchNormThroughTime,
    NeuNorm,
    NoNorm,
    TemporalEffectiveBatchNorm,
    ThresholdDependentBatchNorm,
)

TOL = 1e-5
T, B, C = 4, 6, 3
EPS = 1e-5
#: spatial shapes after [T, B, C]; "1d" is [T, B, C], "1dL" is [T, B, C, L]
SPATIAL = {"1d": (), "1dL": (7,), "2d": (5, 5), "3d": (2, 3, 3)}
DIMS = list(SPATIAL)


# --------------------------------------------------------------------------- helpers


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
    return (a.double() - b.double()).abs().max().item()


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str, tol: float = TOL) -> None:
    d = max_diff(a, b)
    assert d <= tol, f"{what}: max abs diff {d:.3g} > {tol}"


def build(name: str, spatial=(5, 5), T_: int = T, v_th: float = 1.0, **kwargs):
    ctx = {"num_features": C, "T": T_, "v_th": v_th, "shape": (C, *spatial)}
    return snntrain.build("norm", name, context=ctx, **kwargs)


def make_input(spatial, seed: int, T_: int = T) -> torch.Tensor:
    """Float32 [T, B, C, *spatial] whose statistics differ per step and per channel."""
    torch.manual_seed(seed)
    x = torch.randn(T_, B, C, *spatial)
    bshape = (T_, 1, 1) + (1,) * len(spatial)
    step_scale = (1.0 + 0.5 * torch.arange(T_, dtype=torch.float32)).view(bshape)
    step_shift = (2.0 * torch.arange(T_, dtype=torch.float32) - 3.0).view(bshape)
    chan_shift = torch.tensor([0.5, -1.0, 2.0]).view((1, 1, C) + (1,) * len(spatial))
    return x * step_scale + step_shift + chan_shift


def make_spikes(spatial, seed: int, T_: int = T) -> torch.Tensor:
    torch.manual_seed(seed)
    return (torch.rand(T_, B, C, *spatial) < 0.4).float()


def chan_view(v: torch.Tensor, ndim: int, axis: int) -> torch.Tensor:
    """Reshape a per-channel vector to broadcast on ``axis`` of an ``ndim`` tensor."""
    shape = [1] * ndim
    shape[axis] = -1
    return v.double().reshape(shape)


def pooled_dims(x: torch.Tensor) -> tuple[int, ...]:
    return (0, 1, *range(3, x.dim()))


def ref_pooled(x, weight, bias, eps=EPS):
    """BN with per-channel statistics over T, B and space of x [T, B, C, ...]."""
    x = x.double()
    d = pooled_dims(x)
    mu = x.mean(d, keepdim=True)
    var = ((x - mu) ** 2).mean(d, keepdim=True)  # biased
    xhat = (x - mu) / torch.sqrt(var + eps)
    return xhat * chan_view(weight, x.dim(), 2) + chan_view(bias, x.dim(), 2)


def ref_per_step(x, weight_tc, eps=EPS):
    """BNTT: at every step t, per-channel statistics over B and space; no bias."""
    out = []
    for t in range(x.shape[0]):
        xt = x[t].double()
        d = (0, *range(2, xt.dim()))
        mu = xt.mean(d, keepdim=True)
        var = ((xt - mu) ** 2).mean(d, keepdim=True)
        out.append((xt - mu) / torch.sqrt(var + eps) * chan_view(weight_tc[t], xt.dim(), 1))
    return torch.stack(out)


def batch_stats(x, dims):
    """Per-channel mean and *unbiased* variance over ``dims`` (what running stats track)."""
    x = x.double()
    n = 1
    for d in dims:
        n *= x.shape[d]
    mu = x.mean(dims)
    var = ((x - x.mean(dims, keepdim=True)) ** 2).sum(dims) / (n - 1)
    return mu, var


def step_scale_view(scale, ndim):
    return scale.double().view(-1, *([1] * (ndim - 1)))


# ------------------------------------------------------- 1. equations, pooled layers


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("name", ["bn", "tdbn", "tebn"])
def test_pooled_statistics_match_equation(name, dim):
    spatial = SPATIAL[dim]
    m = build(name, spatial).train()
    assert type(m) is {"bn": BatchNorm, "tdbn": ThresholdDependentBatchNorm,
                       "tebn": TemporalEffectiveBatchNorm}[name]
    torch.manual_seed(1)
    with torch.no_grad():
        m.weight.copy_(torch.randn(C))
        m.bias.copy_(torch.randn(C))
        if name == "tebn":
            m.scale.copy_(torch.tensor([0.5, -1.0, 2.0, 3.0]))
    x = make_input(spatial, seed=2)
    y = m(x)
    ref = ref_pooled(x, m.weight.detach(), m.bias.detach())
    if name == "tebn":
        ref = ref * step_scale_view(m.scale.detach(), x.dim())
    assert_close(y, ref, f"{name} {dim} vs pooled BN equation")
    # The input has per-step statistics, so pooled and per-step BN really differ here:
    # a layer that normalized each step on its own would fail the check above.
    per_step = ref_per_step(x, m.weight.detach().expand(T, C))
    if name == "tebn":
        per_step = per_step * step_scale_view(m.scale.detach(), x.dim())
    assert max_diff(y, per_step) > 0.5


@pytest.mark.parametrize("dim", DIMS)
def test_bntt_per_step_statistics_match_equation(dim):
    spatial = SPATIAL[dim]
    m = build("bntt", spatial).train()
    assert isinstance(m, BatchNormThroughTime)
    assert tuple(m.weight.shape) == (T, C)
    assert [n for n, _ in m.named_parameters()] == ["weight"]  # no bias (beta)
    assert tuple(m.running_mean.shape) == (T, C) and tuple(m.running_var.shape) == (T, C)
    torch.manual_seed(3)
    with torch.no_grad():
        m.weight.copy_(torch.randn(T, C))
    x = make_input(spatial, seed=4)
    y = m(x)
    assert_close(y, ref_per_step(x, m.weight.detach()), f"bntt {dim} vs per-step equation")
    # distinguishes per-step from pooled statistics: pooled BN (same per-step weights
    # applied after pooled normalization) is far from the output
    pooled = ref_pooled(x, torch.ones(C), torch.zeros(C)) * m.weight.detach().double().view(
        T, 1, C, *([1] * len(spatial)))
    assert max_diff(y, pooled) > 0.5


def test_tdbn_weight_init_is_alpha_times_vth():
    m = build("tdbn", v_th=0.5, alpha=0.7071)
    assert m.weight.shape == (C,) and m.bias.shape == (C,)
    assert torch.equal(m.weight.detach(), torch.full((C,), 0.7071 * 0.5))
    assert torch.equal(m.bias.detach(), torch.zeros(C))
    # v_th comes from the context, alpha defaults to 1
    m2 = build("tdbn", v_th=2.5)
    assert torch.equal(m2.weight.detach(), torch.full((C,), 2.5))
    # fresh tdBN: per-channel output std is alpha*v_th (biased std, up to eps)
    x = make_input((5, 5), seed=5)
    y = m.train()(x)
    std = y.double().transpose(0, 2).reshape(C, -1).std(dim=1, unbiased=False)
    assert_close(std, torch.full((C,), 0.7071 * 0.5, dtype=torch.float64), "tdbn std", tol=1e-4)


def test_tebn_scale_multiplies_each_step():
    spatial = (5, 5)
    tebn = build("tebn", spatial).train()
    bn = build("bn", spatial).train()
    assert tuple(tebn.scale.shape) == (T,)
    assert torch.equal(tebn.scale.detach(), torch.ones(T))  # init 1
    scale = torch.tensor([0.5, -1.0, 2.0, 3.0])
    with torch.no_grad():
        tebn.scale.copy_(scale)
    x = make_input(spatial, seed=6)
    y, base = tebn(x), bn(x)
    for t in range(T):
        assert_close(y[t], scale[t] * base[t], f"tebn step {t}")
    # statistics are still pooled over time: the per-step scale does not touch them
    assert_close(tebn.running_mean, bn.running_mean, "tebn running mean")


# ---------------------------------------------------------------- 1. NeuNorm by hand

# T=3, B=2 (second sample silent), C=2, H=1, W=2; k=0.5 -> input scale (1-k)/C^2 = 0.125
_S = torch.tensor(
    [
        [[[1.0, 0.0]], [[1.0, 1.0]]],  # t=0, channel sums [2, 1]
        [[[0.0, 1.0]], [[0.0, 0.0]]],  # t=1, sums [0, 1]
        [[[1.0, 1.0]], [[1.0, 0.0]]],  # t=2, sums [2, 1]
    ]
)  # [T, C, H, W]
# X1 = .125*[2,1] = [.25,.125]; X2 = .5*X1 + .125*[0,1] = [.125,.1875];
# X3 = .5*X2 + .125*[2,1] = [.3125,.21875]; out = S - w*X
_W = torch.tensor([[[1.0, 2.0]], [[-1.0, 0.5]]])  # [C, H, W]
_EXPECTED = torch.tensor(
    [
        [[[0.75, -0.25]], [[1.25, 0.9375]]],
        [[[-0.125, 0.625]], [[0.125, -0.09375]]],
        [[[0.6875, 0.5625]], [[1.3125, -0.109375]]],
    ]
)
_EXPECTED_SHARED = torch.tensor(  # w = [[1, 2]] for both channels
    [
        [[[0.75, -0.25]], [[0.75, 0.75]]],
        [[[-0.125, 0.625]], [[-0.125, -0.375]]],
        [[[0.6875, 0.5625]], [[0.6875, -0.4375]]],
    ]
)


@pytest.mark.parametrize("shared", [False, True])
def test_neunorm_recurrence_by_hand(shared):
    m = snntrain.build(
        "norm", "neunorm", context={"num_features": 2, "T": 3, "shape": (2, 1, 2)},
        k=0.5, shared_across_channels=shared,
    )
    assert isinstance(m, NeuNorm)
    assert tuple(m.w.shape) == ((1, 1, 2) if shared else (2, 1, 2))
    with torch.no_grad():
        m.w.copy_(_W[:1] if shared else _W)
    s = torch.stack([_S, torch.zeros_like(_S)], dim=1)  # [T, B=2, C, H, W]
    y = m(s)
    expected = _EXPECTED_SHARED if shared else _EXPECTED
    assert_close(y[:, 0], expected, "neunorm sample 0")
    assert_close(y[:, 1], torch.zeros_like(_S), "neunorm silent sample (state per sample)")
    # the state starts at 0 on every call: a second call gives the same result
    assert_close(m(s), y, "neunorm second call")


def test_neunorm_1d_by_hand():
    # F=2 features, k=0.5 -> scale 0.125; sums 2, 1, 0 -> X = .25, .25, .125
    m = snntrain.build("norm", "neunorm", context={"shape": (2,)}, k=0.5)
    with torch.no_grad():
        m.w.copy_(torch.tensor([1.0, -2.0]))
    s = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]).view(3, 1, 2)
    expected = torch.tensor([[0.75, 1.5], [-0.25, 1.5], [-0.125, 0.25]]).view(3, 1, 2)
    assert_close(m(s), expected, "neunorm 1d")


def test_none_is_identity():
    m = build("none")
    assert isinstance(m, NoNorm)
    x = make_input((5, 5), seed=7)
    assert torch.equal(m(x), x)


# ------------------------------------------------ 1. running statistics and eval mode


def _randomize_running(m, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        m.running_mean.copy_(torch.randn_like(m.running_mean))
        m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dim", ["1d", "2d", "3d"])
@pytest.mark.parametrize("name", ["bn", "tdbn", "tebn"])
def test_pooled_running_stats_and_eval(name, dim, momentum):
    spatial = SPATIAL[dim]
    m = build(name, spatial, momentum=momentum).train()
    _randomize_running(m, seed=8)
    torch.manual_seed(9)
    with torch.no_grad():
        m.weight.copy_(torch.randn(C))
        m.bias.copy_(torch.randn(C))
        if name == "tebn":
            m.scale.copy_(torch.randn(T))
    rm, rv = m.running_mean.double().clone(), m.running_var.double().clone()
    for step in range(3):
        x = make_input(spatial, seed=10 + step)
        m(x)
        mu, var = batch_stats(x, pooled_dims(x))
        f = momentum if momentum is not None else 1.0 / (step + 1)
        rm = (1 - f) * rm + f * mu
        rv = (1 - f) * rv + f * var
    assert int(m.num_batches_tracked) == 3
    assert_close(m.running_mean, rm, f"{name} running_mean")
    assert_close(m.running_var, rv, f"{name} running_var (unbiased)")

    m.eval()
    x = make_input(spatial, seed=20) * 2.0 + 1.0  # off the training distribution
    y = m(x)
    shape = (1, 1, C) + (1,) * len(spatial)
    ref = (x.double() - rm.view(shape)) / torch.sqrt(rv.view(shape) + EPS)
    ref = ref * chan_view(m.weight.detach(), x.dim(), 2) + chan_view(m.bias.detach(), x.dim(), 2)
    if name == "tebn":
        ref = ref * step_scale_view(m.scale.detach(), x.dim())
    assert_close(y, ref, f"{name} eval output with running stats")
    batch_ref = ref_pooled(x, m.weight.detach(), m.bias.detach())
    if name == "tebn":
        batch_ref = batch_ref * step_scale_view(m.scale.detach(), x.dim())
    assert max_diff(y, batch_ref) > 0.1  # eval really differs from batch statistics
    assert_close(m.running_mean, rm, "eval leaves running_mean alone")


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dim", ["1d", "2d", "3d"])
def test_bntt_running_stats_and_eval(dim, momentum):
    spatial = SPATIAL[dim]
    m = build("bntt", spatial, momentum=momentum).train()
    _randomize_running(m, seed=21)
    torch.manual_seed(22)
    with torch.no_grad():
        m.weight.copy_(torch.randn(T, C))
    rm, rv = m.running_mean.double().clone(), m.running_var.double().clone()
    for step in range(3):
        x = make_input(spatial, seed=23 + step)
        m(x)
        f = momentum if momentum is not None else 1.0 / (step + 1)
        for t in range(T):
            mu, var = batch_stats(x[t], (0, *range(2, x[t].dim())))
            rm[t] = (1 - f) * rm[t] + f * mu
            rv[t] = (1 - f) * rv[t] + f * var
    assert int(m.num_batches_tracked) == 3
    assert_close(m.running_mean, rm, "bntt running_mean")
    assert_close(m.running_var, rv, "bntt running_var (unbiased)")

    m.eval()
    x = make_input(spatial, seed=30) * 2.0 + 1.0  # off the training distribution
    y = m(x)
    shape = (T, 1, C) + (1,) * len(spatial)
    ref = (x.double() - rm.view(shape)) / torch.sqrt(rv.view(shape) + EPS) * m.weight.detach().double().view(shape)
    assert_close(y, ref, "bntt eval output with per-step running stats")
    assert max_diff(y, ref_per_step(x, m.weight.detach())) > 0.1


# ---------------------------------------------------------------- 2./3. peer harness


class Flat:
    """A peer whose parameter and buffer names and shapes equal ours."""

    def __init__(self, module: nn.Module, reset=None):
        self.module, self.reset = module, reset

    def __call__(self, x):
        if self.reset is not None:
            self.reset(self.module)
        return self.module(x)

    def params(self):
        """name -> (value, grad) in our layout."""
        return {n: (p.detach(), p.grad) for n, p in self.module.named_parameters()}

    def buffers(self):
        return dict(self.module.named_buffers())

    def load_from(self, ours: nn.Module):
        self.module.load_state_dict(ours.state_dict())  # strict: names must match


class PerStep:
    """A peer made of T separate BatchNorms without bias, mapped to our [T, C] layout."""

    def __init__(self, module: nn.Module, bns, run):
        self.module, self.bns, self.run = module, list(bns), run
        assert all(bn.bias is None for bn in self.bns)

    def __call__(self, x):
        return self.run(x)

    def params(self):
        w = torch.stack([bn.weight.detach() for bn in self.bns])
        grads = [bn.weight.grad for bn in self.bns]
        return {"weight": (w, None if any(g is None for g in grads) else torch.stack(grads))}

    def buffers(self):
        out = {k: torch.stack([getattr(bn, k) for bn in self.bns]) for k in ("running_mean", "running_var")}
        counts = {int(bn.num_batches_tracked) for bn in self.bns}
        assert len(counts) == 1
        out["num_batches_tracked"] = self.bns[0].num_batches_tracked
        return out

    def load_from(self, ours):
        with torch.no_grad():
            for t, bn in enumerate(self.bns):
                bn.weight.copy_(ours.weight[t])
                bn.running_mean.copy_(ours.running_mean[t])
                bn.running_var.copy_(ours.running_var[t])
                bn.num_batches_tracked.copy_(ours.num_batches_tracked)


def _randomize(ours: nn.Module, seed: int):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            p.copy_(torch.randn_like(p) + (1.0 if name in ("weight", "scale") else 0.0))
        for name, b in ours.named_buffers():
            if name == "running_mean":
                b.copy_(torch.randn_like(b))
            elif name == "running_var":
                b.copy_(torch.rand_like(b) + 0.5)


def _fwd_bwd(call, params, x, g):
    for p in params:
        p.grad = None
    x = x.clone().requires_grad_(True)
    y = call(x)
    y.backward(g)
    return y.detach(), x.grad


def compare_with_peer(ours: nn.Module, peer, spatial, spikes=False, seed=0):
    _randomize(ours, seed)
    peer.load_from(ours)
    ours_params = dict(ours.named_parameters())
    peer_tensors = {**{k: v for k, (v, _) in peer.params().items()}, **peer.buffers()}
    ours_tensors = {**ours_params, **dict(ours.named_buffers())}
    assert set(ours_tensors) == set(peer_tensors)
    for k in ours_tensors:
        assert_close(ours_tensors[k], peer_tensors[k], f"initial {k}")
    peer_param_list = list(peer.module.parameters())
    gen = make_spikes if spikes else make_input

    def step(tag, s):
        x = gen(spatial, seed=seed + 100 + s)
        torch.manual_seed(seed + 200 + s)
        g = torch.randn_like(x)
        y_o, gx_o = _fwd_bwd(ours, list(ours.parameters()), x, g)
        y_p, gx_p = _fwd_bwd(peer, peer_param_list, x, g)
        assert_close(y_o, y_p, f"{tag} output")
        assert_close(gx_o, gx_p, f"{tag} grad wrt input")
        assert gx_o.abs().max() > 1e-3
        peer_p = peer.params()
        assert set(peer_p) == set(ours_params)
        for name, p in ours_params.items():
            peer_grad = peer_p[name][1]
            assert p.grad is not None and peer_grad is not None, name
            assert p.grad.abs().max() > 1e-3, f"{tag} grad of {name} is zero"
            assert_close(p.grad, peer_grad, f"{tag} grad wrt {name}")

    ours.train()
    peer.module.train()
    for s in range(3):
        step(f"train step {s}", s)
    peer_b = peer.buffers()
    for name, b in ours.named_buffers():
        assert_close(b, peer_b[name], f"{name} after 3 train steps")
    if "num_batches_tracked" in peer_b:
        assert int(ours.num_batches_tracked) == int(peer_b["num_batches_tracked"]) == 3

    ours.eval()
    peer.module.eval()
    step("eval", 3)
    peer_b = peer.buffers()
    for name, b in ours.named_buffers():
        assert_close(b, peer_b[name], f"{name} after eval")


# ------------------------------------------------------------------- 2. SpikingJelly


@pytest.fixture(scope="module")
def sj():
    layer = pytest.importorskip("spikingjelly.activation_based.layer")
    functional = pytest.importorskip("spikingjelly.activation_based.functional")
    return layer, functional


def _sj_suffix(dim):
    return {"1d": "1d", "1dL": "1d", "2d": "2d", "3d": "3d"}[dim]


@pytest.mark.parametrize("dim", DIMS)
def test_bn_vs_spikingjelly(sj, dim):
    layer, _ = sj
    peer = getattr(layer, "BatchNorm" + _sj_suffix(dim))(C, step_mode="m")
    compare_with_peer(build("bn", SPATIAL[dim]), Flat(peer), SPATIAL[dim], seed=1)


@pytest.mark.parametrize("dim", DIMS)
def test_tdbn_vs_spikingjelly(sj, dim):
    layer, _ = sj
    alpha, v_th = 0.7071, 0.5
    ours = build("tdbn", SPATIAL[dim], v_th=v_th, alpha=alpha)
    peer = getattr(layer, "ThresholdDependentBatchNorm" + _sj_suffix(dim))(alpha, v_th, C)
    # same initialisation before we randomize both
    assert_close(ours.weight, peer.weight, "tdbn init weight")
    assert_close(ours.bias, peer.bias, "tdbn init bias")
    compare_with_peer(ours, Flat(peer), SPATIAL[dim], seed=2)


@pytest.mark.parametrize("dim", DIMS)
def test_tebn_vs_spikingjelly(sj, dim):
    # Peer notes (spikingjelly 2.0.0): TEBN1d's _check_input_dim accepts [T*N, C] and
    # [T*N, C, L] (older releases rejected the 2-D [T*N, C] view of a [T, B, C] input),
    # so both 1d layouts compare. The peer does not check T itself: a wrong T is a
    # broadcasting RuntimeError, and a TEBN built with T=1 silently accepts any T.
    layer, _ = sj
    peer = getattr(layer, "TemporalEffectiveBatchNorm" + _sj_suffix(dim))(T, C)
    compare_with_peer(build("tebn", SPATIAL[dim]), Flat(peer), SPATIAL[dim], seed=3)


@pytest.mark.parametrize("dim", DIMS)
def test_bntt_vs_spikingjelly(sj, dim):
    # Peer notes (spikingjelly 2.0.0): BatchNormThroughTime is a MemoryModule whose
    # memory ``t`` indexes bn_list; step_mode='m' loops single steps, t += 1 each.
    # Without reset_net between sequences the second call fails with IndexError
    # (t runs past T-1); a sequence shorter than T silently uses the first BNs only.
    layer, functional = sj
    peer = getattr(layer, "BatchNormThroughTime" + _sj_suffix(dim))(T, C, step_mode="m")

    def run(x):
        functional.reset_net(peer)
        return peer(x)

    compare_with_peer(build("bntt", SPATIAL[dim]), PerStep(peer, peer.bn_list, run), SPATIAL[dim], seed=4)


@pytest.mark.parametrize("shared", [False, True])
def test_neunorm_vs_spikingjelly(sj, shared):
    layer, functional = sj
    spatial = (5, 5)
    ours = build("neunorm", spatial, k=0.8, shared_across_channels=shared)
    peer = layer.NeuNorm(C, *spatial, k=0.8, shared_across_channels=shared, step_mode="m")
    assert ours.w.shape == peer.w.shape
    compare_with_peer(ours, Flat(peer, reset=functional.reset_net), spatial, spikes=True, seed=5)
    # real-valued inputs too (the layer is linear in its input)
    compare_with_peer(ours, Flat(peer, reset=functional.reset_net), spatial, spikes=False, seed=6)


# ------------------------------------------------------------------------ 3. snnTorch


@pytest.mark.parametrize("dim", ["1d", "1dL", "2d"])
def test_bntt_vs_snntorch(dim):
    snntorch = pytest.importorskip("snntorch")
    factory = snntorch.BatchNormTT2d if dim == "2d" else snntorch.BatchNormTT1d
    bns = factory(C, T)
    assert isinstance(bns, nn.ModuleList) and len(bns) == T

    def run(x):
        return torch.stack([bns[t](x[t]) for t in range(x.shape[0])])

    compare_with_peer(build("bntt", SPATIAL[dim]), PerStep(bns, bns, run), SPATIAL[dim], seed=7)


# ----------------------------------------------------------------- 4. T is fixed


@pytest.mark.parametrize("bad_T", [3, 5])
@pytest.mark.parametrize("name", ["bntt", "tebn"])
def test_wrong_T_is_value_error(name, bad_T):
    m = build(name, (5, 5))
    m(make_input((5, 5), seed=40))  # the built T works
    with pytest.raises(ValueError, match=r"T=4"):
        m(make_input((5, 5), seed=41, T_=bad_T))


def test_tdbn_reset_parameters_restores_threshold_scaled_weight():
    layer = snntrain.build("norm", "tdbn", context={"num_features": 3, "v_th": 0.5}, alpha=0.7071)
    with torch.no_grad():
        layer.weight.fill_(9.0)
    layer.reset_parameters()
    assert torch.equal(layer.weight, torch.full((3,), 0.7071 * 0.5)) and torch.equal(layer.bias, torch.zeros(3))
