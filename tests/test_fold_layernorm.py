"""LayerNorm per time step, and folding BN into convolutions for inference.

1. ``layernorm`` against ``torch.nn.LayerNorm`` applied to every step (forward, input
   and parameter gradients, <= 1e-6), against its equation (float64), and against
   SpikingJelly 2.0.0 (no LayerNorm wrapper there: ``SeqToANNContainer(nn.LayerNorm)``
   and ``layer.GroupNorm(1, C, step_mode='m')`` with per-channel affine).
2. ``fuse_conv_bn``: the fused layer equals ``conv -> BN`` in eval mode (<= 1e-5) for
   conv1d/2d/3d and linear, ``bn`` and ``tdbn``, with trained running statistics and
   random gamma/beta; the other norms are refused with the reason.
3. ``ConvBatchNorm``: pooled statistics like ``bn``; ``get_fused_conv`` equals the
   module in eval; SpikingJelly's ``scale_fused_weight/bias`` example holds.
4. ``fold_model`` on trained vgg SpikingNets: identical spikes, readout <= 1e-5, no BN
   left, ``none`` dropped; models whose norms cannot fold raise (``strict=False``: warn,
   keep them). Residual networks: ``tests/test_fold.py``.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import snntrain
from snntrain.layers import SeqWrap
from snntrain.neurons.base import SpikingNeuron
from snntrain.norm.bn import NoNorm
from snntrain.norm.fold import ConvBatchNorm, fold_model, fuse_conv_bn
from snntrain.norm.layernorm import LayerNorm

T, B, C = 4, 5, 3
SPATIAL = {"1d": (), "1dL": (7,), "2d": (5, 5), "3d": (2, 3, 3)}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
    return (a.double() - b.double()).abs().max().item()


def assert_close(a, b, what: str, tol: float) -> None:
    d = max_diff(a, b)
    assert d <= tol, f"{what}: max abs diff {d:.3g} > {tol}"


def make_input(shape, seed: int, T_: int = T) -> torch.Tensor:
    """[T, B, *shape] with a different scale and offset per step and per sample."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T_, B, *shape, generator=g)
    extra = (1,) * len(shape)
    scale = torch.rand(T_, B, *extra, generator=g) * 3 + 0.2
    shift = torch.randn(T_, B, *extra, generator=g) * 2
    return x * scale + shift


def norm_ctx(shape, v_th: float = 1.0) -> dict:
    return {"num_features": shape[0], "T": T, "v_th": v_th, "shape": shape}


# ----------------------------------------------------------------- 1. layernorm


def _randomize_affine(m: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=g))
        m.bias.copy_(torch.randn(m.bias.shape, generator=g))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dim", list(SPATIAL))
def test_layernorm_equals_torch_layernorm_per_step(dim, dtype):
    shape = (C, *SPATIAL[dim])
    ours = snntrain.build("norm", "layernorm", context=norm_ctx(shape)).to(dtype)
    assert isinstance(ours, LayerNorm) and tuple(ours.normalized_shape) == shape
    assert ours.weight.shape == shape and list(ours.buffers()) == []  # no running statistics
    _randomize_affine(ours, seed=1)
    ref = nn.LayerNorm(shape).to(dtype)
    ref.load_state_dict(ours.state_dict())

    x = make_input(shape, seed=2).to(dtype)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = ours(x1)
    y_ref = torch.stack([ref(x2[t]) for t in range(T)])
    assert_close(y, y_ref, f"layernorm {dim} forward", 1e-6)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    (y_ref * gy).sum().backward()
    assert_close(x1.grad, x2.grad, f"layernorm {dim} input grad", 1e-6)
    # parameter gradients sum T*B terms of size ~10: in float32 the two summation
    # orders differ by an ulp of the sum, so the bound is 1e-6 relative to its size
    for p, q in ((ours.weight, ref.weight), (ours.bias, ref.bias)):
        tol = 1e-6 * max(1.0, q.grad.abs().max().item())
        assert_close(p.grad, q.grad, f"layernorm {dim} {dtype} parameter grad", tol)
    # no batch statistics: eval mode computes the same, and samples do not interact
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), y.detach())
        assert_close(ours(x[:, :1]), y[:, :1], "one sample alone", 1e-6)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dim", list(SPATIAL))
def test_layernorm_matches_equation(dim, affine):
    shape = (C, *SPATIAL[dim])
    m = snntrain.build("norm", "layernorm", context=norm_ctx(shape), eps=1e-3, elementwise_affine=affine)
    if affine:
        _randomize_affine(m, seed=3)
    x = make_input(shape, seed=4)
    xd = x.double()
    dims = tuple(range(2, x.dim()))
    mu = xd.mean(dims, keepdim=True)
    var = ((xd - mu) ** 2).mean(dims, keepdim=True)  # biased
    ref = (xd - mu) / torch.sqrt(var + 1e-3)
    if affine:
        ref = ref * m.weight.detach().double() + m.bias.detach().double()
    else:
        assert list(m.parameters()) == []
    assert_close(m(x), ref, f"layernorm {dim} vs equation", 1e-5)
    # per (t, b) statistics, not pooled over time or batch: pooling would differ a lot
    pooled = (xd - xd.mean()) / torch.sqrt(xd.var(unbiased=False) + 1e-3)
    if affine:
        pooled = pooled * m.weight.detach().double() + m.bias.detach().double()
    assert max_diff(m(x), pooled) > 0.5


def test_layernorm_rejects_other_shapes_and_bad_eps():
    m = snntrain.build("norm", "layernorm", context=norm_ctx((C, 5, 5)))
    with pytest.raises(ValueError, match=r"per-step shape \(3, 5, 5\)"):
        m(torch.randn(T, B, C, 4, 4))
    with pytest.raises(ValueError, match="expects"):
        m(torch.randn(B, C, 5, 5))  # one step without the T axis
    with pytest.raises(snntrain.ConfigError, match=r"^norm\.eps:"):
        snntrain.build("norm", "layernorm", context=norm_ctx((C,)), eps=0.0)


@pytest.fixture(scope="module")
def sj_layer():
    return pytest.importorskip("spikingjelly.activation_based.layer")


@pytest.mark.parametrize("dim", ["1d", "2d", "3d"])
def test_layernorm_vs_spikingjelly(sj_layer, dim):
    shape = (C, *SPATIAL[dim])
    ours = snntrain.build("norm", "layernorm", context=norm_ctx(shape))
    _randomize_affine(ours, seed=5)
    x = make_input(shape, seed=6)
    # generic multi-step container around torch's LayerNorm
    peer = sj_layer.SeqToANNContainer(nn.LayerNorm(shape))
    peer[0].load_state_dict(ours.state_dict())
    assert_close(ours(x), peer(x), f"layernorm {dim} vs SJ SeqToANNContainer(LayerNorm)", 1e-6)
    if dim == "1d":
        return  # GroupNorm needs [N, C, ...] with the same layout; (C,) alone is the trivial case
    # GroupNorm with one group = LayerNorm over (C, *spatial) with per-channel affine
    gn = sj_layer.GroupNorm(1, C, step_mode="m")
    g = torch.Generator().manual_seed(7)
    w, b = torch.randn(C, generator=g), torch.randn(C, generator=g)
    bshape = (C,) + (1,) * len(SPATIAL[dim])
    with torch.no_grad():
        gn.weight.copy_(w)
        gn.bias.copy_(b)
        ours.weight.copy_(w.view(bshape).expand(shape))
        ours.bias.copy_(b.view(bshape).expand(shape))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), gn(xb)
    assert_close(ya, yb, f"layernorm {dim} vs SJ GroupNorm(1, C)", 1e-5)
    gy = torch.randn_like(ya)
    (ya * gy).sum().backward()
    (yb * gy).sum().backward()
    assert_close(xa.grad, xb.grad, f"layernorm {dim} input grad vs SJ GroupNorm", 1e-5)


# ----------------------------------------------------------------- 2. fuse_conv_bn

LAYERS = {
    "conv1d": (lambda bias: nn.Conv1d(C, 4, 3, padding=1, bias=bias), (C, 7)),
    "conv2d": (lambda bias: nn.Conv2d(C, 4, 3, stride=2, padding=1, bias=bias), (C, 6, 6)),
    "conv3d": (lambda bias: nn.Conv3d(C, 4, 3, padding=1, bias=bias), (C, 3, 4, 4)),
    "linear": (lambda bias: nn.Linear(C * 2, 4, bias=bias), (C * 2,)),
    "grouped": (lambda bias: nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=bias), (4, 5, 5)),
}


def trained_bn(name: str, conv: SeqWrap, in_shape, seed: int, v_th: float = 0.5) -> nn.Module:
    """A ``bn``/``tdbn`` after ``conv`` with running statistics from 3 train batches and random gamma/beta."""
    out = conv.module.out_features if isinstance(conv.module, nn.Linear) else conv.module.out_channels
    bn = snntrain.build("norm", name, context={"num_features": out, "T": T, "v_th": v_th, "shape": (out,)})
    bn.train()
    with torch.no_grad():
        for i in range(3):
            bn(conv(make_input(in_shape, seed=seed + i) * 2 + 1))
    assert int(bn.num_batches_tracked) == 3
    assert (bn.running_mean.abs() > 1e-3).any() and (bn.running_var - 1).abs().max() > 0.1
    _randomize_affine(bn, seed=seed + 10)
    return bn


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("norm", ["bn", "tdbn"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_fused_conv_equals_conv_then_bn_in_eval(layer, norm, bias):
    make, in_shape = LAYERS[layer]
    torch.manual_seed(0)
    conv = SeqWrap(make(bias))
    bn = trained_bn(norm, conv, in_shape, seed=11)
    before = {k: v.clone() for k, v in {**conv.state_dict(), **bn.state_dict()}.items()}
    fused = fuse_conv_bn(conv, bn)  # bn still in train mode: running stats are used anyway
    assert type(fused) is type(conv.module) and fused.bias is not None
    bn.eval()
    x = make_input(in_shape, seed=20)
    with torch.no_grad():
        assert_close(SeqWrap(fused)(x), bn(conv(x)), f"{layer}/{norm} fused vs conv->bn", 1e-5)
        assert_close(fuse_conv_bn(conv.module, bn)(x[0]), bn(conv(x))[0], "raw module, one step", 1e-5)
    after = {**conv.state_dict(), **bn.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before), "fusing changed the inputs"


@pytest.mark.parametrize(
    "norm,kwargs,reason",
    [
        ("bntt", {}, "bntt keeps its own running statistics and scale for every time step"),
        ("tebn", {}, "tebn scales step t by its own learned p_t"),
        ("layernorm", {}, "layernorm normalizes every sample at every step"),
        ("neunorm", {}, "neunorm acts after the neuron"),
        ("bn", {"track_running_stats": False}, "no running statistics"),
    ],
)
def test_fuse_refuses_norms_that_cannot_fold(norm, kwargs, reason):
    conv = nn.Conv2d(C, 4, 3, padding=1)
    n = snntrain.build("norm", norm, context=norm_ctx((4, 5, 5)), **kwargs)
    with pytest.raises(ValueError, match=reason):
        fuse_conv_bn(conv, n)


def test_fuse_refuses_other_layers_and_mismatched_channels():
    bn = snntrain.build("norm", "bn", context=norm_ctx((4,)))
    with pytest.raises(ValueError, match="only into nn.Conv1d/2d/3d or nn.Linear"):
        fuse_conv_bn(nn.ConvTranspose2d(C, 4, 2), bn)
    with pytest.raises(ValueError, match="5 outputs but BatchNorm has 4"):
        fuse_conv_bn(nn.Conv2d(C, 5, 3), bn)


# ----------------------------------------------------------------- 3. ConvBatchNorm

CBN = {1: (C, 9), 2: (C, 6, 6), 3: (C, 3, 4, 4)}


def trained_convbn(d: int, seed: int, **kwargs) -> ConvBatchNorm:
    torch.manual_seed(seed)
    m = snntrain.build("layer", f"conv_bn{d}d", in_channels=C, out_channels=4, **kwargs).train()
    with torch.no_grad():
        for i in range(3):
            m(make_input(CBN[d], seed=seed + i) * 2 + 1)
        if m.bn.affine:
            m.bn.weight.copy_(torch.randn(4))
            m.bn.bias.copy_(torch.randn(4))
    return m


@pytest.mark.parametrize("d", [1, 2, 3])
def test_convbn_pools_statistics_like_bn(d):
    m = snntrain.build("layer", f"conv_bn{d}d", in_channels=C, out_channels=4, kernel_size=[3] * d, padding=1)
    assert isinstance(m, ConvBatchNorm) and m.conv.bias is None
    conv = SeqWrap(type(m.conv)(C, 4, 3, padding=1, bias=False))
    conv.module.load_state_dict(m.conv.state_dict())
    bn = snntrain.build("norm", "bn", context=norm_ctx((4,)))
    x = make_input(CBN[d], seed=30)
    assert_close(m(x), bn(conv(x)), f"conv_bn{d}d train vs conv -> bn", 1e-5)
    assert_close(m.bn.running_var, bn.running_var, "running var", 1e-6)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_convbn_fused_conv_and_seed_scaling_example(d, affine, dtype):
    m = trained_convbn(d, seed=40, affine=affine).eval().to(dtype)
    x = torch.rand(T, B, *CBN[d], generator=torch.Generator().manual_seed(50)).to(dtype)  # as the seed: torch.rand

    def out_tol(ref):
        # float64: the scaling rules are exact. float32: 1e-5, or ~8 ulps of the output
        # where it is larger than 10 (conv3d: 81-term sums of size ~19, float32 ulp 2e-6)
        return 1e-10 if dtype == torch.float64 else max(1e-5, 1e-6 * ref.abs().max().item())

    with torch.no_grad():
        conv = m.get_fused_conv()
        assert type(conv) is type(m.conv)
        conv.eval()
        assert_close(m(x), SeqWrap(conv)(x), f"conv_bn{d}d vs get_fused_conv", 1e-5)
        assert_close(m.step(x[1]), conv(x[1]), "one step", 1e-5)
        assert_close(m.get_fused_weight(), conv.weight, "get_fused_weight", 1e-6)
        assert_close(m.get_fused_bias(), conv.bias, "get_fused_bias", 1e-6)

        # the seed's example (SpikingJelly ConvBatchNorm2d docs)
        k_weight, b_weight, k_bias, b_bias = 1.5, 0.4, 0.8, 0.1
        s = m.bn.running_var.add(m.bn.eps).rsqrt() * (m.bn.weight if affine else 1)
        naive = (m.conv.weight * k_weight + b_weight) * s.view(-1, *[1] * (d + 1))  # b added to the raw weight
        conv.weight.data *= k_weight
        conv.weight.data += b_weight
        conv.bias.data *= k_bias
        conv.bias.data += b_bias
        m.scale_fused_weight(k_weight, b_weight)
        m.scale_fused_bias(k_bias, b_bias)
        ref = SeqWrap(conv)(x)
        assert_close(m(x), ref, f"conv_bn{d}d after scale_fused_weight/bias", out_tol(ref))
        assert_close(m.get_fused_weight(), conv.weight, "scaled fused weight", 1e-5)
        assert_close(m.get_fused_bias(), conv.bias, "scaled fused bias", 1e-5)
        # adding b to the raw conv weight would give a fused weight off by b*(s-1)
        assert max_diff(naive, conv.weight) > 1e-2
        # k or b alone
        m.scale_fused_weight(k=0.5)
        m.scale_fused_bias(b=-0.3)
        ref = _conv(conv, x, 0.5, -0.3)
        assert_close(m(x), ref, "k only, then b only", out_tol(ref))


def _conv(conv, x, k, b):
    f = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[conv.weight.dim() - 2]
    y = f(x.flatten(0, 1), k * conv.weight, conv.bias + b, conv.stride, conv.padding, conv.dilation, conv.groups)
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])


def test_convbn_without_running_stats_refuses_to_fuse():
    m = snntrain.build("layer", "conv_bn2d", in_channels=C, out_channels=4, track_running_stats=False)
    for call in (m.get_fused_conv, m.get_fused_weight, m.get_fused_bias, lambda: m.scale_fused_weight(2.0)):
        with pytest.raises(ValueError, match="no running statistics"):
            call()


def test_convbn_bad_arguments_name_the_key():
    with pytest.raises(snntrain.ConfigError, match=r"^layer\.stride:"):
        snntrain.build("layer", "conv_bn2d", in_channels=C, out_channels=4, stride=0)
    with pytest.raises(snntrain.ConfigError, match=r"^layer\.groups:"):
        snntrain.build("layer", "conv_bn2d", in_channels=C, out_channels=4, groups=2)
    with pytest.raises(snntrain.ConfigError, match=r"^layer\.padding_mode:"):
        snntrain.build("layer", "conv_bn2d", in_channels=C, out_channels=4, padding_mode="mirror")


# ----------------------------------------------------------------- 4. fold_model


def build_vgg(norm: str, seed: int = 0, **norm_args):
    from snntrain.models import make_factories

    torch.manual_seed(seed)
    neuron, norm_f = make_factories({"name": "lif"}, {"name": "atan"}, {"name": norm, **norm_args}, T)
    return snntrain.build(
        "model", "vgg",
        context={"in_shape": (1, 8, 8), "num_classes": 10, "T": T, "neuron": neuron, "norm": norm_f},
        plan=[8, "M", 8, "M"], classifier=[16],
    )


def train_steps(model: nn.Module, steps: int = 2) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = (torch.rand(T, 8, 1, 8, 8, generator=g) < 0.5).float()
        y = torch.randint(0, 10, (8,), generator=g)
        loss = nn.functional.cross_entropy(model(x).mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def record_spikes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Readout and, per neuron layer name, its (input current, output spikes)."""
    spikes: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [
        m.register_forward_hook(lambda _m, inp, out, name=name: spikes.__setitem__(name, (inp[0], out)))
        for name, m in model.named_modules()
        if isinstance(m, SpikingNeuron)
    ]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return out, spikes


@pytest.mark.parametrize("norm", ["bn", "tdbn"])
def test_fold_model_matches_trained_vgg(norm):
    # momentum=None: running statistics are the mean over the training batches, so
    # after two steps they are far from their init and the eval-mode net spikes
    # (tdbn with alpha = 1/sqrt(2), its residual-branch value, so that it differs from bn)
    extra = {"alpha": 2**-0.5} if norm == "tdbn" else {}
    model = build_vgg(norm, momentum=None, **extra)
    train_steps(model)
    assert all(int(m.num_batches_tracked) == 2 for m in model.modules() if isinstance(m, _BatchNorm))
    n_bn = sum(isinstance(m, _BatchNorm) for m in model.modules())
    assert n_bn == 3  # two conv stages, one classifier stage
    folded = fold_model(model)
    assert not any(isinstance(m, _BatchNorm) for m in folded.modules()), "a BN survived folding"
    assert len(folded) == len(model) - n_bn and not folded.training
    assert model.training and sum(isinstance(m, _BatchNorm) for m in model.modules()) == n_bn  # original untouched

    model.eval()
    x = (torch.rand(T, 6, 1, 8, 8, generator=torch.Generator().manual_seed(9)) < 0.5).float()
    out, spikes = record_spikes(model, x)
    out_f, spikes_f = record_spikes(folded, x)
    assert spikes.keys() == spikes_f.keys() and len(spikes) == 3  # folding keeps the layer names
    for name in spikes:
        (current, s), (current_f, s_f) = spikes[name], spikes_f[name]
        assert 0 < s.mean() < 1, f"neuron {name} silent or saturated: a weak test"
        # the neuron input is the BN output before folding and the fused conv's after
        assert_close(current_f, current, f"{norm} input of neuron {name} folded vs original", 1e-5)
        assert torch.equal(s, s_f), f"spikes of {name} differ after folding"
    # the readout is an unnormalized linear layer on identical spikes
    assert_close(out_f, out, f"{norm} readout folded vs original", 1e-5)


def test_fold_model_folds_convbn_layers_and_drops_none_norms():
    torch.manual_seed(0)
    neuron = snntrain.build("neuron", "lif", context={"surrogate": snntrain.build("surrogate", "atan"), "shape": (4, 6, 6)})
    net = snntrain.models.SpikingNet(
        snntrain.build("layer", "conv_bn2d", in_channels=1, out_channels=4), neuron,
        snntrain.build("layer", "flatten"), snntrain.build("layer", "linear", in_features=144, out_features=3),
    )
    with torch.no_grad():  # running statistics away from their init
        net.train()(torch.rand(T, 8, 1, 6, 6) * 3)
    folded = fold_model(net)
    assert isinstance(folded[0], SeqWrap) and type(folded[0].module) is nn.Conv2d
    x = torch.rand(T, 4, 1, 6, 6) * 3
    with torch.no_grad():
        assert_close(folded(x), net.eval()(x), "conv_bn2d net folded", 1e-5)

    plain = build_vgg("none")
    folded = fold_model(plain)  # `none` is the identity: dropped, the synapses left as they are
    assert [type(m) for m in folded] == [type(m) for m in plain if not isinstance(m, NoNorm)]
    assert all(torch.equal(a, b) for a, b in zip(folded.state_dict().values(), plain.state_dict().values()))
    x8 = torch.rand(T, 2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(folded(x8), plain.eval()(x8))


@pytest.mark.parametrize(
    "norm,reason",
    [
        ("bntt", "bntt keeps its own running statistics"),
        ("tebn", "tebn scales step t by its own learned p_t"),
        ("layernorm", "layernorm normalizes every sample"),
        ("neunorm", "neunorm acts after the neuron"),
    ],
)
def test_fold_model_refuses_unfoldable_norms(norm, reason):
    model = build_vgg(norm)
    with pytest.raises(ValueError, match=reason) as e:
        fold_model(model)
    assert "strict=False" in str(e.value)
    # strict=False: warns, leaves those layers in place, output unchanged
    with pytest.warns(UserWarning, match=reason):
        folded = fold_model(model, strict=False)
    assert [type(m) for m in folded] == [type(m) for m in model]
    x = torch.rand(T, 2, 1, 8, 8)
    with torch.no_grad():
        assert_close(folded(x), model.eval()(x), f"{norm} unfused copy", 0.0)


def test_fold_model_reports_bn_without_a_conv_before_it():
    bn = snntrain.build("norm", "bn", context=norm_ctx((C,)))
    net = nn.Sequential(SeqWrap(nn.Flatten(1)), bn)
    with pytest.raises(ValueError, match=r"1 \(BatchNorm\): its input is the output of 0 \(SeqWrap\), not a Conv1d/2d/3d or Linear"):
        fold_model(net)
