"""Losses against hand-computed values (and snnTorch's where it has them); optimizer groups and schedules."""
from __future__ import annotations

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
