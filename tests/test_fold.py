"""``fold_model`` over a torch.fx trace: residual networks, the declarations, the fallback.

1. The fold maths by hand on a 1-channel conv (bn and tdbn, with and without a bias).
2. A small trained residual spiking network (stem conv -> norm -> lif, a basic block with a
   conv + norm shortcut, one with an identity shortcut, a SEW block adding spikes, pooling,
   flatten, linear -> norm -> lif, linear readout): with ``bn`` and ``tdbn`` the folded copy
   gives the same neuron inputs and readout (<= 1e-5) and the same spikes in eval mode, no
   norm is left, and the input model is unchanged.
3. The registry's ``resnet19`` and ``sew_resnet18`` (skipped while not registered): trained
   a few SGD steps, folded, same outputs (<= 1e-5) and no foldable norm left.
4. Norms that cannot fold (bntt, tebn, layernorm, neunorm) are named with their reason;
   a conv whose output also feeds something else is not folded; a model fx cannot trace
   falls back to the nn.Sequential rule with a warning.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import snntrain
from snntrain.layers import SeqWrap, avgpool2d, conv2d, flatten, linear
from snntrain.layers.containers import SeqToANN
from snntrain.models import SpikingNet, make_factories
from .test_fold_layernorm import record_spikes
from snntrain.norm.fold import fold_declaration, fold_model, fuse_conv_bn, is_norm

T = 2
SQRT_HALF = 2**-0.5


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
    return (a.double() - b.double()).abs().max().item()


def foldable_left(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if is_norm(m) and fold_declaration(m)[0] is None]


# ----------------------------------------------------------------- 1. by hand


@pytest.mark.parametrize("norm", ["bn", "tdbn"])
@pytest.mark.parametrize("bias", [True, False])
def test_fold_maths_by_hand_on_one_channel(norm, bias):
    conv = nn.Conv2d(1, 1, 2, bias=bias)
    n = snntrain.build("norm", norm, context={"num_features": 1, "T": T, "v_th": 2.0, "shape": (1,)}, eps=0.25)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
        if bias:
            conv.bias.fill_(1.0)
        n.running_mean.fill_(3.0)
        n.running_var.fill_(3.75)  # + eps = 4: s = gamma / 2
        if norm == "bn":
            n.weight.fill_(0.5)
        n.bias.fill_(-1.0)
    # bn: gamma = 0.5, s = 0.25; tdbn: gamma = alpha * v_th = 2 (its init), s = 1
    s = 0.25 if norm == "bn" else 1.0
    b = 1.0 if bias else 0.0
    fused = fuse_conv_bn(SeqWrap(conv), n)
    assert type(fused) is nn.Conv2d and fused.bias is not None
    assert torch.equal(fused.weight, s * torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    assert fused.bias.item() == s * (b - 3.0) - 1.0  # bn: 0.25 * (1 - 3) - 1 = -1.5
    # the same through fold_model on a Sequential, and on an input
    folded = fold_model(nn.Sequential(SeqWrap(conv), n))
    assert len(folded) == 1 and torch.equal(folded[0].module.weight, fused.weight)
    x = torch.rand(T, 3, 1, 4, 4)
    with torch.no_grad():
        assert max_diff(folded(x), n.eval()(SeqWrap(conv)(x))) <= 1e-6


def test_norms_declare_their_case():
    ctx = {"num_features": 4, "T": T, "v_th": 1.0, "shape": (4, 3, 3)}
    for name in ("bn", "tdbn"):
        why, affine = fold_declaration(snntrain.build("norm", name, context=ctx))
        assert why is None and [v.shape for v in affine()] == [(4,), (4,)]
    assert fold_declaration(snntrain.build("norm", "none", context=ctx)) [1]() is None  # identity: dropped
    assert fold_declaration(snntrain.build("norm", "bn", context=ctx, track_running_stats=False))[0]
    for name in ("bntt", "tebn", "layernorm", "neunorm"):
        why, affine = fold_declaration(snntrain.build("norm", name, context=ctx))
        assert name in why and affine is None
    # every registered norm declares one or the other
    for name in snntrain.registry.available("norm"):
        n = snntrain.build("norm", name, context=ctx)
        assert hasattr(n, "fold_affine") or hasattr(n, "cannot_fold"), name


# ----------------------------------------------------------------- 2. a small residual network


def lif(shape):
    return snntrain.build("neuron", "lif", context={"surrogate": snntrain.build("surrogate", "atan"), "shape": shape})


def make_norm(name: str, shape, alpha: float = 1.0, **kw):
    extra = {"alpha": alpha} if name == "tdbn" else {}
    ctx = {"num_features": shape[0], "T": T, "v_th": 1.0, "shape": tuple(shape)}
    return snntrain.build("norm", name, context=ctx, **extra, **kw)


class BasicBlock(nn.Module):
    """Spiking ResNet block: sn2(bn2(conv2(sn1(bn1(conv1(x))))) + shortcut(x)); tdBN's alpha = 1/sqrt(2) on summed branches."""

    def __init__(self, norm: str, cin: int, cout: int, stride: int, hw: int, **kw):
        super().__init__()
        h = hw // stride
        self.conv1 = conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = make_norm(norm, (cout, h, h), **kw)
        self.sn1 = lif((cout, h, h))
        self.conv2 = conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = make_norm(norm, (cout, h, h), SQRT_HALF, **kw)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv2d(cin, cout, 1, stride, 0, bias=False), make_norm(norm, (cout, h, h), SQRT_HALF, **kw))
        else:
            self.shortcut = nn.Identity()
        self.sn2 = lif((cout, h, h))

    def forward(self, x):
        out = self.sn1(self.bn1(self.conv1(x)))
        return self.sn2(self.bn2(self.conv2(out)) + self.shortcut(x))


class SEWBlock(nn.Module):
    """SEW ResNet block, connect function ADD: sn2(bn2(conv2(sn1(bn1(conv1(s)))))) + s, spikes added."""

    def __init__(self, norm: str, c: int, hw: int, **kw):
        super().__init__()
        self.conv1, self.bn1, self.sn1 = conv2d(c, c, 3, 1, 1, bias=False), make_norm(norm, (c, hw, hw), **kw), lif((c, hw, hw))
        self.conv2, self.bn2, self.sn2 = conv2d(c, c, 3, 1, 1, bias=False), make_norm(norm, (c, hw, hw), **kw), lif((c, hw, hw))

    def forward(self, s):
        return self.sn2(self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(s)))))) + s


def small_resnet(norm: str, seed: int = 0, **kw) -> SpikingNet:
    torch.manual_seed(seed)
    return SpikingNet(
        conv2d(3, 8, 3, 1, 1, bias=False), make_norm(norm, (8, 8, 8), **kw), lif((8, 8, 8)),
        BasicBlock(norm, 8, 16, 2, 8, **kw),  # conv + norm shortcut
        BasicBlock(norm, 16, 16, 1, 4, **kw),  # identity shortcut
        SEWBlock(norm, 16, 4, **kw),
        avgpool2d(2), flatten(),
        linear(64, 32), make_norm(norm, (32,), **kw), lif((32,)),
        linear(32, 10),
    )


def train_steps(model: nn.Module, in_shape, batch: int = 8, steps: int = 3, seed: int = 1) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = (torch.rand(T, batch, *in_shape, generator=g) < 0.5).float()
        y = torch.randint(0, 10, (batch,), generator=g)
        loss = nn.functional.cross_entropy(model(x).mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


record = record_spikes  # readout and, per neuron, its (input current, spikes)


@pytest.mark.parametrize("norm", ["bn", "tdbn"])
def test_fold_small_trained_resnet(norm):
    # momentum=None: the running statistics are the mean over the training batches
    model = small_resnet(norm, momentum=None)
    train_steps(model, (3, 8, 8))
    n_norms = sum(isinstance(m, _BatchNorm) for m in model.modules())
    assert n_norms == 9 and all(int(m.num_batches_tracked) == 3 for m in model.modules() if isinstance(m, _BatchNorm))
    before = {k: v.clone() for k, v in model.state_dict().items()}

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # traced, no fallback
        folded = fold_model(model)

    # the input model is unchanged (parameters, statistics, modules, mode)
    assert model.training and sum(isinstance(m, _BatchNorm) for m in model.modules()) == n_norms
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)

    # a normal module of the same classes, no norm left, every synapse before a norm now has a bias
    assert type(folded) is SpikingNet and not folded.training
    assert not any(is_norm(m) for m in folded.modules()), "a norm survived folding"
    block = folded.get_submodule("3")  # by name: the layers kept keep their names
    assert isinstance(block.bn1, nn.Identity) and isinstance(folded.get_submodule("4.shortcut"), nn.Identity)
    assert len(block.shortcut) == 1 and block.shortcut[0].module.bias is not None
    assert len(folded) == len(model) - 2  # the two norms directly in the SpikingNet are deleted
    assert all(m.module.bias is not None for m in folded.modules() if isinstance(m, SeqWrap) and isinstance(m.module, nn.Conv2d))

    model.eval()
    x = (torch.rand(T, 6, 3, 8, 8, generator=torch.Generator().manual_seed(9)) < 0.5).float()
    out, seen = record(model, x)
    out_f, seen_f = record(folded, x)
    assert seen.keys() == seen_f.keys() and len(seen) == 8  # neurons keep their names
    for name in seen:
        (current, s), (current_f, s_f) = seen[name], seen_f[name]
        assert 0 < s.mean() < 1, f"neuron {name} silent or saturated: a weak test"
        assert max_diff(current_f, current) <= 1e-5, f"{norm}: input of {name}"
        assert torch.equal(s, s_f), f"{norm}: spikes of {name} differ after folding"
    assert max_diff(out_f, out) <= 1e-5


def test_fold_sees_into_seq_to_ann_with_torch_batchnorm():
    torch.manual_seed(0)
    net = SpikingNet(SeqToANN(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)), lif((4, 5, 5)))
    with torch.no_grad():
        net.train()(torch.rand(T, 8, 2, 5, 5) * 2)
    folded = fold_model(net)
    assert len(folded[0]) == 1 and type(folded[0][0]) is nn.Conv2d
    x = torch.rand(T, 3, 2, 5, 5)
    with torch.no_grad():
        assert torch.equal(folded(x), net.eval()(x))


class Outer(nn.Module):
    """A residual wrapper around a SpikingNet, whose own forward (it checks x.dim()) fx cannot trace."""

    def __init__(self):
        super().__init__()
        self.body = SpikingNet(conv2d(2, 2, 3, 1, 1, bias=False), make_norm("bn", (2,)), lif((2, 5, 5)))

    def forward(self, x):
        return self.body(x) + x


def test_nested_sequential_with_untraceable_forward_is_read_as_its_chain():
    torch.manual_seed(0)
    model = Outer()
    with torch.no_grad():
        model.train()(torch.rand(T, 8, 2, 5, 5) * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # traced, no fallback
        folded = fold_model(model)
    assert type(folded.body) is SpikingNet and len(folded.body) == 2
    x = torch.rand(T, 3, 2, 5, 5) * 2
    with torch.no_grad():
        _, seen = record(model.eval(), x)
        _, seen_f = record(folded, x)
    assert max_diff(seen_f["body.2"][0], seen["body.2"][0]) <= 1e-5


# ----------------------------------------------------------------- 3. the registry's residual networks

REGISTRY_MODELS = ["resnet19", "sew_resnet18"]


@pytest.mark.slow  # ~20 s each on 2 CPU cores
@pytest.mark.parametrize("norm", ["bn", "tdbn"])
@pytest.mark.parametrize("name", REGISTRY_MODELS)
def test_fold_registry_resnet(name, norm):
    if name not in snntrain.registry.available("model"):
        pytest.skip(f"model {name!r} is not registered yet")
    torch.manual_seed(0)
    neuron, norm_f = make_factories({"name": "lif"}, {"name": "atan"}, {"name": norm}, T)
    model = snntrain.build(
        "model", name, context={"in_shape": (3, 32, 32), "num_classes": 10, "T": T, "neuron": neuron, "norm": norm_f}
    )
    train_steps(model, (3, 32, 32), batch=2, steps=2)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and all(int(m.num_batches_tracked) == 2 for m in norms)
    # float64: a 1e-7 float32 rounding difference at a threshold would flip a spike in a net this size;
    # the fold itself is checked, not the rounding of float32
    model.double().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # traced, no fallback
        folded = fold_model(model)
    assert foldable_left(folded) == [], "a foldable norm survived"
    x = (torch.rand(T, 2, 3, 32, 32, generator=torch.Generator().manual_seed(9)) < 0.5).double()
    with torch.no_grad():
        out, out_f = model(x), folded(x)
    assert max_diff(out_f, out) <= 1e-5


# ----------------------------------------------------------------- 4. refusals and the fallback


@pytest.mark.parametrize(
    "norm,reason",
    [
        ("bntt", "bntt keeps its own running statistics and scale for every time step"),
        ("tebn", r"tebn scales step t by its own learned p_t \(in eval mode it is BN, then p_t\)"),
        ("layernorm", "layernorm normalizes every sample at every step by that sample's own mean"),
        ("neunorm", "neunorm acts after the neuron and subtracts a recurrent state"),
    ],
)
def test_strict_refusal_names_each_norm(norm, reason):
    model = small_resnet(norm)
    names = [n for n, m in model.named_modules() if is_norm(m)]
    with pytest.raises(ValueError, match=reason) as e:
        fold_model(model)
    msg = str(e.value)
    for n in names:
        assert f"\n  {n} ({type(model.get_submodule(n)).__name__}): " in msg, n
    assert msg.count(reason.split(" ")[0] + " ") >= len(names) and "strict=False" in msg
    with pytest.warns(UserWarning, match=reason):
        folded = fold_model(model, strict=False)
    assert [n for n, m in folded.named_modules() if is_norm(m)] == names
    x = (torch.rand(T, 2, 3, 8, 8) < 0.5).float()
    with torch.no_grad():
        assert torch.equal(folded(x), model.eval()(x))


class Tap(nn.Module):
    """conv output used twice: through the norm and directly, so the norm must stay."""

    def __init__(self):
        super().__init__()
        self.conv = conv2d(2, 4, 3, 1, 1)
        self.bn = make_norm("bn", (4,))
        self.sn = lif((4, 5, 5))

    def forward(self, x):
        y = self.conv(x)
        return self.sn(self.bn(y)) + y


def test_a_conv_output_used_elsewhere_is_not_folded():
    model = Tap()
    with pytest.raises(ValueError, match=r"bn \(BatchNorm\): the output of conv also feeds add"):
        fold_model(model)
    with pytest.warns(UserWarning):
        folded = fold_model(model, strict=False)
    assert isinstance(folded.bn, _BatchNorm) and folded.conv.module.weight.equal(model.conv.module.weight)


class Untraceable(nn.Module):
    """Control flow on a tensor value: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(conv2d(2, 4, 3, 1, 1, bias=False), make_norm("bn", (4,)), lif((4, 5, 5)))

    def forward(self, x):
        if x.sum() < 0:
            x = -x
        return self.body(x)


def test_untraceable_model_falls_back_with_a_warning():
    torch.manual_seed(0)
    model = Untraceable()
    with torch.no_grad():
        model.train()(torch.rand(T, 8, 2, 5, 5) * 2)
    with pytest.warns(UserWarning, match=r"torch\.fx cannot trace Untraceable \(TraceError: .*nn\.Sequential"):
        folded = fold_model(model)
    assert len(folded.body) == 2 and folded.body[0].module.bias is not None
    x = torch.rand(T, 3, 2, 5, 5) * 2
    with torch.no_grad():
        _, seen = record(model.eval(), x)
        _, seen_f = record(folded, x)
    assert max_diff(seen_f["body.2"][0], seen["body.2"][0]) <= 1e-5


def test_public_names():
    import snntrain.norm.fold as fold

    for name in fold.__all__:
        assert getattr(fold, name) is not None, name
    assert isinstance(fold.conv_bn2d(in_channels=3, out_channels=4), fold.ConvBatchNorm)
