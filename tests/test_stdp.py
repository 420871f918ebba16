"""STDP: the trace equations by hand, parity with SpikingJelly's STDPLearner, the stdp trainer."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import snntrain

from snntrain import ConfigError
from snntrain.learning import STDPLearner, weight_function
from snntrain.training import train

from .conftest import compose_cfg


def _pair_learner(w: float, **kw) -> STDPLearner:
    fc = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        fc.weight.fill_(w)
    return STDPLearner(fc, **kw)


def _train(T: int, times: list[int]) -> torch.Tensor:
    """Spike train [T, B=1, 1] with spikes at ``times``."""
    s = torch.zeros(T, 1, 1)
    s[times, 0, 0] = 1.0
    return s


# ---- (1) the equations by hand --------------------------------------------------------
def test_pre_before_post_potentiates_by_the_decayed_pre_trace():
    # pre at t=0, post at t=2, tau_pre=2: tr_pre = 1, 1 - 1/2 = 0.5, 0.5 - 0.25 = 0.25 at t=2.
    # The pre spike at t=0 sees tr_post = 0 (no post spike yet): no depression.
    learner = _pair_learner(0.4, tau_pre=2.0, tau_post=2.0, f_pre="constant", f_post="constant")
    dw = learner.delta(_train(3, [0]), _train(3, [2]))
    assert float(dw) == pytest.approx(0.25, abs=1e-7)
    # multiplicative soft bound: f_post(w) = w_max - w = 0.6 -> +0.15
    learner = _pair_learner(0.4, tau_pre=2.0, tau_post=2.0, f_pre="multiplicative", f_post="multiplicative")
    assert float(learner.delta(_train(3, [0]), _train(3, [2]))) == pytest.approx(0.6 * 0.25, abs=1e-7)


def test_post_before_pre_depresses_by_the_decayed_post_trace():
    # post at t=0, pre at t=3, tau_post=4: tr_post(3) = (1 - 1/4)^3 = 0.421875;
    # f_pre(w) = w - w_min = 0.4 (multiplicative) -> dW = -0.4 * 0.421875. The post spike
    # at t=0 sees tr_pre = 0: no potentiation.
    learner = _pair_learner(0.4, tau_pre=2.0, tau_post=4.0, f_pre="multiplicative", f_post="multiplicative")
    dw = learner.delta(_train(4, [3]), _train(4, [0]))
    assert float(dw) == pytest.approx(-0.4 * 0.75**3, abs=1e-7)


def test_simultaneous_spikes_give_both_terms_and_amplitudes_scale_them():
    # same step: both traces already hold the current spike -> a_post f_post(w) - a_pre f_pre(w)
    learner = _pair_learner(0.4, tau_pre=2.0, tau_post=2.0, f_pre="multiplicative", f_post="multiplicative",
                            a_pre=0.5, a_post=2.0)
    assert float(learner.delta(_train(2, [1]), _train(2, [1]))) == pytest.approx(2.0 * 0.6 - 0.5 * 0.4, abs=1e-7)


def test_batch_sum_or_mean_step_api_and_apply():
    pre = torch.cat([_train(3, [0]), _train(3, [0])], 1)   # two identical samples
    post = torch.cat([_train(3, [2]), _train(3, [2])], 1)
    total = _pair_learner(0.4, tau_pre=2.0, tau_post=2.0, f_pre="constant", f_post="constant")
    mean = _pair_learner(0.4, tau_pre=2.0, tau_post=2.0, f_pre="constant", f_post="constant", reduction="mean")
    assert float(total.delta(pre, post)) == pytest.approx(0.5) and float(mean.delta(pre, post)) == pytest.approx(0.25)
    # streaming: traces in and out, no state in the learner
    dw, traces = torch.zeros(1, 1), None
    for t in range(3):
        d, traces = total.step(pre[t], post[t], traces)
        dw += d
    assert float(dw) == pytest.approx(0.5)
    assert float(total.delta(pre, post)) == pytest.approx(0.5)  # a second sequence starts from fresh traces
    total.apply(torch.full((1, 1), 10.0), lr=0.1, clamp=True)  # 0.4 + 1.0 -> clamped to w_max = 1
    assert float(total.weight.detach()) == 1.0


def test_weight_functions_by_name():
    w = torch.tensor([0.25])
    assert float(weight_function("identity", "pre")(w)) == 0.25
    assert float(weight_function("constant", "post")(w)) == 1.0
    assert float(weight_function("multiplicative", "post", 0.0, 2.0)(w)) == 1.75
    assert float(weight_function("multiplicative", "pre", -1.0, 2.0)(w)) == 1.25
    with pytest.raises(ValueError, match="f_pre"):
        weight_function("cubic", "pre")
    with pytest.raises(ValueError, match="tau_pre"):
        _pair_learner(0.1, tau_pre=0.5, tau_post=2.0)


# ---- (2) parity with SpikingJelly -------------------------------------------------------
def _spikingjelly_delta(synapse, pre, post, tau_pre, tau_post, f_pre, f_post):
    from spikingjelly.activation_based.learning import STDPLearner as SJLearner

    sn = nn.Identity()
    sj = SJLearner("s", synapse, sn, tau_pre, tau_post, f_pre, f_post)
    for t in range(pre.shape[0]):  # its monitors record each step's synapse input and neuron output
        synapse(pre[t])
        sn(post[t])
    return sj.step(on_grad=False)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["linear", "conv2d", "conv1d"])
def test_matches_spikingjelly(kind, dtype):
    pytest.importorskip("spikingjelly")
    g = torch.Generator().manual_seed(0)
    synapse, pre_shape = {
        "linear": (nn.Linear(20, 7, bias=False), (8, 5, 20)),
        "conv2d": (nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), (6, 2, 3, 9, 9)),
        "conv1d": (nn.Conv1d(3, 4, 3, padding=2, padding_mode="reflect", bias=False), (6, 2, 3, 11)),
    }[kind]
    synapse = synapse.to(dtype)
    with torch.no_grad():
        synapse.weight.uniform_(-0.5, 1.0, generator=g)
        out_shape = synapse(torch.zeros(pre_shape[1:], dtype=dtype)).shape
    pre = (torch.rand(pre_shape, generator=g) < 0.3).to(dtype)
    post = (torch.rand(pre_shape[:1] + out_shape, generator=g) < 0.4).to(dtype)
    f_pre, f_post = (lambda w: w.abs() + 0.1), (lambda w: 0.8 - w)
    ref = _spikingjelly_delta(synapse, pre, post, 3.0, 5.0, f_pre, f_post)
    ours = STDPLearner(synapse, 3.0, 5.0, f_pre, f_post).delta(pre, post)
    scale = max(1.0, float(ref.abs().max()))  # float32: summation order differs, relative 1e-6
    assert ref.shape == ours.shape and float((ours - ref).abs().max()) <= 1e-6 * (1 if dtype == torch.float64 else scale)
    if kind == "linear":  # SpikingJelly's defaults (identity f) and a named rule
        ref = _spikingjelly_delta(synapse, pre, post, 2.0, 2.0, lambda w: w, lambda w: w)
        assert float((STDPLearner(synapse, 2.0, 2.0).delta(pre, post) - ref).abs().max()) <= 1e-6 * scale
        ref = _spikingjelly_delta(synapse, pre, post, 2.0, 4.0, lambda w: w - 0.0, lambda w: 1.0 - w)
        ours = STDPLearner(synapse, 2.0, 4.0, "multiplicative", "multiplicative").delta(pre, post)
        assert float((ours - ref).abs().max()) <= 1e-6 * scale


# ---- (3) the trainer ---------------------------------------------------------------
FAST = ["trainer=stdp", "trainer.epochs=1", "trainer.limit_batches=3", "trainer.progress=false", "trainer.units=20"]


def test_stdp_trainer_end_to_end(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert snntrain.registry.entry("trainer", "stdp").obj.__name__ == "STDP"
    cfg = compose_cfg(*FAST)
    assert cfg.encoder.name == "rate" and cfg.trainer.name == "stdp"  # trainer/stdp.yaml picks rate coding
    metrics = train(cfg, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert {"test_acc", "readout_acc_initial", "best_test_acc", "epoch", "train_time_s", "firing_rate"} <= set(saved)
    assert saved["epoch"] == 1 and saved["test_acc"] == metrics["test_acc"]
    assert 0.1 < saved["readout_acc_initial"] <= 1 and 0 <= saved["test_acc"] <= 1 and 0 < saved["firing_rate"] <= 1
    assert saved["best_test_acc"] >= saved["test_acc"]
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert ckpt["epoch"] == 1 and ckpt["config"]["trainer"]["name"] == "stdp"
    w, w0 = ckpt["model"]["fc.weight"], ckpt["initial_model"]["fc.weight"]
    assert w.shape == (20, 64) and (w - w0).abs().max() > 1e-4  # STDP changed the weights
    assert w.min() >= 0 and w.max() <= 1  # clamped to [w_min, w_max]
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert {"stdp/weight_change", "stdp/firing_rate", "readout/test_acc"} <= set(acc.Tags()["scalars"])
    assert acc.Scalars("readout/test_acc")[-1].value == pytest.approx(saved["test_acc"])


def test_stdp_trainer_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    from snntrain.training import stdp as stdp_trainer

    args = [*FAST, "trainer.epochs=2", "trainer.limit_batches=2"]
    full = train(compose_cfg(*args), tmp_path / "full")
    real_readout, calls = stdp_trainer.readout, []

    def interrupted_readout(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # initial, epoch 1, then Ctrl-C in epoch 2's readout: last.pt holds epoch 1
            raise KeyboardInterrupt
        return real_readout(*a, **k)

    monkeypatch.setattr(stdp_trainer, "readout", interrupted_readout)
    with pytest.raises(KeyboardInterrupt):
        train(compose_cfg(*args), tmp_path / "cut")
    monkeypatch.setattr(stdp_trainer, "readout", real_readout)
    resumed = train(compose_cfg(*args, f"resume={tmp_path / 'cut'}"), tmp_path / "resumed")
    for key in ("epoch", "test_acc", "readout_acc_initial", "best_test_acc"):
        assert resumed[key] == full[key], key
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_run_directory_is_refused(tmp_path):
    train(compose_cfg(*FAST, "trainer.limit_batches=1"), tmp_path)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(compose_cfg(*FAST, "trainer.limit_batches=1"), tmp_path)


def test_command_line_encoder_wins_over_the_trainer_default():
    assert compose_cfg("trainer=stdp", "encoder=direct").encoder.name == "direct"
    assert compose_cfg().encoder.name == "direct" and compose_cfg().trainer.name == "bptt"


@pytest.mark.parametrize("override,key", [
    ("trainer.tau_pre=0.5", "trainer.tau_pre"), ("trainer.f_post=cubic", "trainer.f_post"),
    ("trainer.units=0", "trainer.units"), ("trainer.w_max=-1", "trainer.w_max"),
    ("trainer.lr=-0.1", "trainer.lr"), ("+trainer.tau_plus=3", "trainer.tau_plus"),
    ("trainer.epochs=0", "trainer.epochs"), ("trainer.reduction=max", "trainer.reduction"),
])
def test_bad_values_name_the_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        train(compose_cfg(*FAST, override), tmp_path)
    assert not (tmp_path / "checkpoints").exists()
