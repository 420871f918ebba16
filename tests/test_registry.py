"""Registry behaviour, and forward/backward/NaN checks generated for every registered component."""
from __future__ import annotations

import pytest
import torch

import snntrain
from snntrain import ConfigError, available, build
from snntrain.registry import KINDS

from .examples import layer_examples

T, B = 4, 3


# ---------------------------------------------------------------- registry errors
def test_available_lists_every_kind():
    assert set(KINDS) >= {"neuron", "surrogate", "norm", "layer", "model", "dataset", "encoder", "loss", "optimizer", "scheduler"}
    assert available("norm") == ["bn", "bntt", "layernorm", "mpbn", "neunorm", "none", "tab", "tdbn", "tebn"]
    assert {"lif", "if"} <= set(available("neuron"))


def test_unknown_name_names_kind_and_choices():
    with pytest.raises(ConfigError) as e:
        build("norm", "nope")
    msg = str(e.value)
    assert "norm" in msg and "'nope'" in msg and "bntt, layernorm, mpbn, neunorm" in msg


def test_unknown_argument_names_key_and_valid_arguments():
    with pytest.raises(ConfigError) as e:
        build("neuron", "lif", decya=0.5)
    assert str(e.value).startswith("neuron.decya:") and "decay" in str(e.value)


@pytest.mark.parametrize(
    "kind,name,kwargs,key,fragment",
    [
        ("neuron", "lif", {"decay": 1.5}, "neuron.decay", "(0, 1]"),
        ("neuron", "lif", {"decay": 0.0}, "neuron.decay", "(0, 1]"),
        ("neuron", "lif", {"reset": "soft"}, "neuron.reset", "'subtract', 'zero', 'none'"),
        ("neuron", "if", {"threshold": "high"}, "neuron.threshold", "a finite number"),
        ("neuron", "if", {"threshold": float("inf")}, "neuron.threshold", "a finite number"),
        ("neuron", "lif", {"v_reset": float("nan")}, "neuron.v_reset", "a finite number"),
        ("neuron", "lif", {"graded_spikes_factor": -1.0}, "neuron.graded_spikes_factor", "> 0"),
        ("surrogate", "atan", {"alpha": float("inf")}, "surrogate.alpha", "a finite number"),
        ("optimizer", "sgd", {"lr": float("inf")}, "optimizer.lr", "a finite number"),
        ("encoder", "rate", {"gain": float("inf")}, "encoder.gain", "a finite number"),
        ("surrogate", "atan", {"alpha": -1.0}, "surrogate.alpha", "> 0"),
        ("optimizer", "adam", {"lr": -0.1}, "optimizer.lr", "> 0"),
        ("encoder", "rate", {"gain": 0.0}, "encoder.gain", "> 0"),
    ],
)
def test_bad_values_name_the_key(kind, name, kwargs, key, fragment):
    ctx = {"model": torch.nn.Linear(1, 1), "T": T}
    with pytest.raises(ConfigError) as e:
        build(kind, name, context=ctx, **kwargs)
    assert str(e.value).startswith(key + ":") and fragment in str(e.value)


def test_describe_lists_user_arguments_only():
    rows = {(r["kind"], r["name"]): r for r in snntrain.describe()}
    assert rows[("neuron", "lif")]["args"]["threshold"] == 1.0
    assert "surrogate" not in rows[("neuron", "lif")]["args"]  # context, not a user argument
    assert "shape" not in rows[("neuron", "lif")]["args"]
    assert set(rows[("norm", "tebn")]["args"]) == {"eps", "momentum", "affine", "track_running_stats"}


# ---------------------------------------------------------------- generated component tests
def _finite_grads(module, *inputs):
    for p in module.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), "parameter without finite gradient"
    for x in inputs:
        assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", available("neuron"))
@pytest.mark.parametrize("surrogate", available("surrogate"))
@pytest.mark.parametrize("shape", [(5,), (2, 4, 4)], ids=["dense", "conv"])
def test_neuron_forward_backward_nan_and_streaming(name, surrogate, shape):
    torch.manual_seed(0)
    sg = build("surrogate", surrogate)
    neuron = build("neuron", name, context={"surrogate": sg, "shape": shape, "T": T})
    x = (torch.randn(T, B, *shape) * 2 + 0.5).requires_grad_()
    s = neuron(x)
    assert s.shape == x.shape and set(s.unique().tolist()) <= {0.0, 1.0}
    assert 0 < s.mean() < 1  # the input is strong enough to make some, not all, fire
    (s * torch.randn_like(s)).sum().backward()
    assert torch.isfinite(x.grad).all()
    if surrogate != "heaviside":  # the one surrogate without a gradient
        assert x.grad.abs().sum() > 0
    # single-step API over the same sequence == multi-step call (a neuron that sees later steps has none)
    state, steps = None, []
    if not getattr(neuron, "causal", True):
        return
    with torch.no_grad():
        for xt in x:
            st, state = neuron.step(xt, state)
            steps.append(st)
        assert torch.equal(torch.stack(steps), neuron(x))
        assert torch.equal(neuron(x), neuron(x))  # fresh state per call: no reset needed


@pytest.mark.parametrize("name", available("surrogate"))
def test_surrogate_forward_is_heaviside_backward_is_grad(name):
    sg = build("surrogate", name)
    x = torch.linspace(-3, 3, 101, requires_grad=True)
    y = sg(x)
    assert torch.equal(y, (x >= 0).float())
    y.sum().backward()
    assert torch.allclose(x.grad, sg.grad(x.detach())) and torch.isfinite(x.grad).all()


NORM_SHAPES = [(6,), (3, 5, 5), (2, 3, 4, 4)]  # 1d, 2d, 3d per-step shapes


@pytest.mark.parametrize("name", available("norm"))
@pytest.mark.parametrize("shape", NORM_SHAPES, ids=["1d", "2d", "3d"])
def test_norm_forward_backward_nan(name, shape):
    torch.manual_seed(0)
    norm = build("norm", name, context={"num_features": shape[0], "T": T, "v_th": 1.0, "shape": shape})
    x = torch.rand(T, B, *shape).requires_grad_()
    for mode in ("train", "eval"):
        getattr(norm, mode)()
        y = norm(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
    norm.train()
    (norm(x) * torch.randn_like(x)).sum().backward()
    _finite_grads(norm, x)


LAYER_EXAMPLES = layer_examples()


@pytest.mark.parametrize("name", available("layer"))
def test_layer_runs_whole_sequence_as_per_step_calls(name):
    """Every layer: [T, B, ...] in and out, finite gradients, and step-by-step == whole sequence.

    Example flags (optional 4th element): ``stateful`` -- ``step(x, state)`` returns
    ``(y, state)`` like a neuron; ``random`` -- compare steps in eval mode only.
    """
    assert name in LAYER_EXAMPLES, f"add an example for layer {name!r} to a tests/examples/*.py LAYER_EXAMPLES"
    kwargs, in_shape, out_shape, *rest = LAYER_EXAMPLES[name]
    flags = rest[0] if rest else {}
    torch.manual_seed(0)
    layer = build("layer", name, **kwargs)
    x = torch.randn(T, B, *in_shape, requires_grad=True)
    y = layer(x)
    assert y.shape == (T, B, *out_shape) and torch.isfinite(y).all()
    y.pow(2).sum().backward()
    _finite_grads(layer, x)
    if flags.get("random"):
        layer.eval()
    with torch.no_grad():
        if flags.get("stateful"):
            state, steps = None, []
            for xt in x:
                yt, state = layer.step(xt, state)
                steps.append(yt)
        else:
            steps = [layer.step(xt) for xt in x]
        assert torch.allclose(torch.stack(steps), layer(x), atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "vgg"])  # the papers' networks: tests/test_models.py (at reduced width)
@pytest.mark.parametrize("norm", available("norm"))
def test_model_forward_backward_nan(name, norm):
    from snntrain.models import make_factories

    torch.manual_seed(0)
    neuron, norm_f = make_factories({"name": "lif"}, {"name": "atan"}, {"name": norm}, T)
    model = build("model", name, context={"in_shape": (1, 8, 8), "num_classes": 10, "T": T, "neuron": neuron, "norm": norm_f})
    out = model(torch.rand(T, B, 1, 8, 8))
    assert out.shape == (T, B, 10) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", available("encoder"))
def test_encoder_shapes_and_range(name):
    x = torch.rand(B, 1, 8, 8)
    s = build("encoder", name, context={"T": T})(x)
    assert s.shape == (T, B, 1, 8, 8)
    assert s.min() >= 0 and s.max() <= 1


@pytest.mark.parametrize("name", available("loss"))
def test_loss_is_minimised_by_the_right_class(name):
    loss = build("loss", name)
    y = torch.tensor([0, 2])
    right = torch.zeros(T, 2, 3)
    right[:, 0, 0] = right[:, 1, 2] = 1.0
    wrong = torch.roll(right, 1, dims=2)
    assert loss(right * 5 if name not in ("mse", "mse_count") else right, y) < loss(wrong, y)  # mse*: target 1


@pytest.mark.parametrize("name", available("optimizer"))
def test_optimizer_reduces_a_quadratic(name):
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(3.0)
    w = model.weight
    opt = build("optimizer", name, context={"model": model}, lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert abs(float(w.detach())) < 3.0


@pytest.mark.parametrize("name", available("scheduler"))
def test_scheduler_lr_trajectory(name):
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)
    sched = build("scheduler", name, context={"optimizer": opt, "epochs": 4})
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = {
        "cosine": [1.0, 0.5 + 0.5 * torch.cos(torch.tensor(torch.pi / 4)).item(), 0.5, 0.5 - 0.5 * torch.cos(torch.tensor(torch.pi / 4)).item()],
        "none": [1.0] * 4,
        "step": [1.0] * 4,  # default step_size=30
        "multistep": [1.0] * 4,  # default milestones 30, 60, 90
    }[name]
    assert lrs == pytest.approx(expected)
