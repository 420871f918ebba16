"""Losses against hand-computed values (and snnTorch's where it has them); optimizer groups and schedules."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from snntrain import ConfigError, build
from snntrain.models import make_factories
from snntrain.training.optim import no_decay_names

# T=2, B=1, K=2: step 0 scores [2, 0], step 1 [0, 0]
OUT = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])
Y0, Y1 = torch.tensor([0]), torch.tensor([1])
L1 = math.log(1 + math.exp(-1))  # CE of logits [1, 0], label 0
L2 = math.log(1 + math.exp(-2))  # CE of logits [2, 0], label 0


@pytest.mark.parametrize(
    "name, args, y, expected",
    [
        ("ce", {}, Y0, L1),  # mean [1, 0]
        ("ce", {"label_smoothing": 0.2}, Y0, 0.9 * L1 + 0.1 * (1 + L1)),  # -(0.9 log p0 + 0.1 log p1)
        ("tet", {"lamb": 0.0}, Y0, (L2 + math.log(2)) / 2),
        ("tet", {"lamb": 0.5, "phi": 1.0}, Y0, 0.5 * (L2 + math.log(2)) / 2 + 0.5 * 1.0),  # (o - 1)^2 = 1 everywhere
        ("mse", {}, Y1, 1.0),  # mean [1, 0] vs [0, 1]
        ("mse", {"label_smoothing": 0.5}, Y1, 0.75**2),  # target [0.25, 0.75]
        ("ce_count", {}, Y0, L2),  # counts [2, 0]
        ("mse_count", {"correct_rate": 0.5, "incorrect_rate": 0.25}, Y0, (1.0**2 + 0.5**2) / 2 / 2),  # target [1, 0.5], / T
        ("ce_membrane", {"decay": 0.5}, Y0, L2),  # m = [2, 0], [1, 0]: max [2, 0]
        ("ce_membrane", {"decay": 0.5, "reduce": "last"}, Y0, L1),
    ],
)
def test_loss_equals_the_hand_computed_value(name, args, y, expected):
    assert float(build("loss", name, **args)(OUT, y)) == pytest.approx(expected, rel=1e-6)


def test_count_and_membrane_losses_equal_snntorchs():
    import snntorch.functional as SF

    torch.manual_seed(0)
    spikes = (torch.rand(6, 5, 4) < 0.4).float()
    y = torch.randint(0, 4, (5,))
    torch.testing.assert_close(build("loss", "ce_count")(spikes, y), SF.ce_count_loss()(spikes, y))
    # targets T*rate whole (snnTorch rounds them down)
    torch.testing.assert_close(build("loss", "mse_count", correct_rate=0.5, incorrect_rate=1 / 6)(spikes, y),
                               SF.mse_count_loss(correct_rate=0.5, incorrect_rate=1 / 6)(spikes, y))
    mem = torch.randn(6, 5, 4)
    torch.testing.assert_close(build("loss", "ce_membrane", decay=0.0)(mem, y), SF.ce_max_membrane_loss()(mem, y))


def test_tet_lamb_out_of_range_names_the_key():
    with pytest.raises(ConfigError, match=r"^loss.lamb:"):
        build("loss", "tet", lamb=1.5)


def _bn_mlp():
    nf, mf = make_factories({"name": "lif"}, {"name": "atan"}, {"name": "bn"}, 2)
    return build("model", "mlp", context={"in_shape": (6,), "num_classes": 3, "T": 2, "neuron": nf, "norm": mf},
                 hidden=[5])


def test_norm_parameters_and_biases_get_no_weight_decay():
    model = _bn_mlp()
    exempt = set(no_decay_names(model))
    assert exempt == {"1.module.bias", "2.weight", "2.bias", "4.module.bias"}
    opt = build("optimizer", "adamw", context={"model": model}, lr=0.1, weight_decay=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradients: only the decoupled decay moves a weight, by lr * wd
    for n, p in model.named_parameters():
        want = before[n] if n in exempt else before[n] * (1 - 0.1 * 0.5)
        torch.testing.assert_close(p.detach(), want, msg=n)
    everything = build("optimizer", "adamw", context={"model": model}, decay_norm_and_bias=True)
    assert len(everything.param_groups) == 1 and everything.param_groups[0]["weight_decay"] == 1e-2


def _lrs(name, epochs=4, **args):
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)
    sched = build("scheduler", name, context={"optimizer": opt, "epochs": epochs}, **args)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_then_cosine():
    # warmup 1 epoch at 1/2, then cosine over the 3 epochs left: 1, (1 + cos(pi/3))/2, (1 + cos(2pi/3))/2
    assert _lrs("cosine", warmup_epochs=1) == pytest.approx([0.5, 1.0, 0.75, 0.25])
    assert _lrs("none", warmup_epochs=3) == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_multistep_milestones():
    assert _lrs("multistep", milestones=[2, 3]) == pytest.approx([1.0, 1.0, 0.1, 0.01])
    assert _lrs("multistep", milestones=[2, 3], warmup_epochs=1) == pytest.approx([0.5, 1.0, 0.1, 0.01])
    with pytest.raises(ConfigError, match=r"^scheduler.milestones:"):
        _lrs("multistep", milestones=[3, 2])
    with pytest.raises(ConfigError, match=r"^scheduler.warmup_epochs:"):
        _lrs("cosine", warmup_epochs=4)


@pytest.mark.parametrize("name, args, torch_cls", [
    ("adam", {"lr": 0.01, "weight_decay": 0.1}, torch.optim.Adam),
    ("adamw", {"lr": 0.01, "weight_decay": 0.1}, torch.optim.AdamW),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, torch.optim.SGD),
])
def test_optimizers_step_bitwise_like_torchs_own_classes(name, args, torch_cls):
    """snntrain's optimizers skip torch.optim's eager torch._dynamo import; the updates and state are torch's."""
    torch.manual_seed(0)
    ours_model, ref_model = _bn_mlp(), _bn_mlp()
    ref_model.load_state_dict(ours_model.state_dict())
    ours = build("optimizer", name, context={"model": ours_model}, **args)
    groups = [{**g, "params": [dict(ref_model.named_parameters())[n] for n, p in ours_model.named_parameters()
                                 if any(p is q for q in g["params"])]} for g in ours.param_groups]
    ref = torch_cls(groups)
    assert isinstance(ours, torch_cls) and type(ours) is not torch_cls
    for step in range(6):
        grads = [torch.randn_like(p) for p in ours_model.parameters()]
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            opt.zero_grad()
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
            opt.step()
        if step == 2:  # a checkpoint round trip in both directions keeps the runs together
            ours_state, ref_state = copy.deepcopy(ours.state_dict()), copy.deepcopy(ref.state_dict())
            ours.load_state_dict(ref_state)  # (copies: a loaded state dict shares its tensors)
            ref.load_state_dict(ours_state)
    for (n, a), b in zip(ours_model.named_parameters(), ref_model.parameters()):
        assert torch.equal(a, b), n
    sa, sb = ours.state_dict(), ref.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for k in sb["state"]:
        for field, value in sb["state"][k].items():
            assert torch.equal(torch.as_tensor(sa["state"][k][field]), torch.as_tensor(value)), (k, field)


def test_a_run_never_imports_torch_dynamo_but_compiling_code_gets_torchs_wrappers():
    import subprocess
    import sys

    code = """
import sys, torch
from snntrain import build
from snntrain.models import make_factories
model = torch.nn.Linear(3, 2)
opt = build("optimizer", "adam", context={"model": model})
sched = build("scheduler", "cosine", context={"optimizer": opt, "epochs": 3})
model(torch.ones(1, 3)).sum().backward(); opt.step(); sched.step(); opt.zero_grad()
opt.load_state_dict(opt.state_dict())
print("before", "torch._dynamo" in sys.modules)
import torch._dynamo
calls = []
real = torch._dynamo.disable
torch._dynamo.disable = lambda *a, **k: calls.append(1) or real(*a, **k)
torch.optim.Adam([torch.nn.Parameter(torch.ones(1))])  # a plain instance hooks torch's own Adam.step too
posts = []
opt.register_step_post_hook(lambda *a: posts.append(1))
model(torch.ones(1, 3)).sum().backward(); opt.step(); opt.zero_grad()
print("after", len(calls) > 0, "hooks", len(posts))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["before", "False", "after", "True", "hooks", "1"], out.stderr
