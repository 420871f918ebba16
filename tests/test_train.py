"""The training loop in-process: outputs, TensorBoard scalars, resume, guards."""
from __future__ import annotations

import json

import pytest
import torch

from snntrain import ConfigError
from snntrain.training import bptt, train

from .conftest import compose_cfg

FAST = ["trainer.epochs=1", "trainer.limit_batches=3", "trainer.progress=false", "trainer.log_images_every=null"]


def test_one_epoch_writes_every_output(tmp_path):
    metrics = train(compose_cfg("model=vgg", "norm=tebn", *FAST), tmp_path)
    assert (tmp_path / "checkpoints" / "last.pt").is_file() and (tmp_path / "checkpoints" / "best.pt").is_file()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert {"test_acc", "best_test_acc", "epoch", "train_time_s"} <= set(saved)
    assert saved["epoch"] == 1 and saved["test_acc"] == metrics["test_acc"]
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["config"]["norm"]["name"] == "tebn" and ckpt["epoch"] == 1
    assert set(saved["firing_rates"]) == {"stage1", "stage2"}  # vgg: two spiking conv stages
    assert all(0 <= r <= 1 for r in saved["firing_rates"].values())


def test_test_accuracy_is_what_the_checkpoint_scores(tmp_path):
    metrics = train(compose_cfg(*FAST), tmp_path)
    parts = bptt.setup(compose_cfg(*FAST))
    parts["model"].load_state_dict(torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["model"])
    x = torch.stack([s[0] for s in parts["data"].test])
    y = torch.stack([s[1] for s in parts["data"].test])
    parts["model"].eval()
    with torch.no_grad():
        acc = (parts["model"](parts["encoder"](x)).mean(0).argmax(1) == y).float().mean()
    assert float(acc) == pytest.approx(metrics["test_acc"])


def test_tensorboard_scalars_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(compose_cfg("trainer.epochs=2", "trainer.limit_batches=2", "trainer.progress=false"), tmp_path)
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/acc", "test/loss", "test/acc", "lr", "firing_rate/stage1"} <= tags
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    events = acc.Scalars("test/acc")
    assert [e.step for e in events] == [1, 2]
    assert events[-1].value == pytest.approx(metrics["test_acc"])
    assert acc.Scalars("lr")[0].value == pytest.approx(1e-3)


def _weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, monkeypatch):
    # rate coding draws random numbers every step, so the RNG state must survive the resume
    args = ["trainer.epochs=4", "trainer.limit_batches=4", "trainer.progress=false", "encoder=rate", "norm=bntt", "seed=3"]
    full = train(compose_cfg(*args), tmp_path / "full")

    real_evaluate, calls = bptt.evaluate, []

    def interrupted_evaluate(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C during epoch 3's evaluation: last.pt holds epoch 2
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)

    monkeypatch.setattr(bptt, "evaluate", interrupted_evaluate)
    with pytest.raises(KeyboardInterrupt):
        train(compose_cfg(*args), tmp_path / "cut")
    monkeypatch.setattr(bptt, "evaluate", real_evaluate)
    assert torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2

    from .test_engine import count_steps

    with count_steps(monkeypatch) as calls:
        resumed = train(compose_cfg(*args, f"resume={tmp_path / 'cut'}"), tmp_path / "resumed")
    assert calls == [(e, b) for e in (2, 3) for b in range(4)]  # epochs 3 and 4 only
    for key in ("test_acc", "test_loss", "train_loss", "best_test_acc", "epoch"):
        assert resumed[key] == full[key], key
    assert [h["test_loss"] for h in resumed["history"]] == [h["test_loss"] for h in full["history"]]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the interrupted run's files are untouched by the resumed one
    assert torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2


def test_resume_with_other_config_is_refused(tmp_path):
    train(compose_cfg(*FAST), tmp_path / "a")
    with pytest.raises(ConfigError, match=r"resume: .*norm.name: checkpoint 'none', now 'bn'"):
        train(compose_cfg(*FAST, "norm=bn", f"resume={tmp_path / 'a'}"), tmp_path / "b")
    assert not (tmp_path / "b" / "checkpoints").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_resume_from_bad_checkpoint_is_a_clear_error(tmp_path, content):
    target = tmp_path / "ckpt.pt"
    if content is not None:
        target.write_bytes(content)
    with pytest.raises(ConfigError, match="resume: "):
        train(compose_cfg(*FAST, f"resume={target}"), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_existing_checkpoints_are_never_overwritten(tmp_path):
    train(compose_cfg(*FAST), tmp_path)
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(compose_cfg(*FAST, "seed=1"), tmp_path)
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before


def test_same_seed_same_result_different_seed_different_weights(tmp_path):
    a = train(compose_cfg(*FAST), tmp_path / "a")
    b = train(compose_cfg(*FAST), tmp_path / "b")
    c = train(compose_cfg(*FAST, "seed=1"), tmp_path / "c")
    assert a["test_loss"] == b["test_loss"] and a["test_loss"] != c["test_loss"]
    wa, wb, wc = (_weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and not all(torch.equal(wa[k], wc[k]) for k in wa)


@pytest.mark.parametrize(
    "override,key",
    [("T=0", "T:"), ("trainer.epochs=0", "trainer.epochs:"), ("trainer.batch_size=-4", "trainer.batch_size:"),
     ("device=tpu", "device:"), ("neuron.decay=1.5", "neuron.decay:"), ("optimizer.lr=-1", "optimizer.lr:")],
)
def test_invalid_values_fail_before_training(tmp_path, override, key):
    with pytest.raises(ConfigError) as e:
        train(compose_cfg(*FAST, override), tmp_path)
    assert str(e.value).startswith(key)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "tensorboard").exists()


def test_model_layers_chosen_by_name_from_config(tmp_path):
    cfg = compose_cfg(*FAST, "model=vgg", "model.classifier=[32]", "model.synapse=dropconnect_linear",
                      "model.dropout=0.3", "model.conv_dropout=0.1")
    parts = bptt.setup(cfg)
    kinds = [type(getattr(m, "module", m)).__name__ for m in parts["model"]]
    assert kinds.count("Dropout2d") == 2 and kinds.count("Dropout") == 1 and "DropConnectLinear" in kinds
    metrics = train(cfg, tmp_path)
    assert metrics["epoch"] == 1 and 0 <= metrics["test_acc"] <= 1


def test_unknown_synapse_name_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="model.synapse: unknown layer 'dense'"):
        train(compose_cfg(*FAST, "model.synapse=dense"), tmp_path)


def test_silent_layers_are_reported(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="snntrain"):
        metrics = train(compose_cfg(*FAST, "neuron.threshold=1000"), tmp_path)
    assert metrics["silent_layers"] == ["stage1"]
    assert "stage1 fired no spike on the test set" in caplog.text
    with caplog.at_level(logging.WARNING, logger="snntrain"):
        caplog.clear()
        assert train(compose_cfg(*FAST), tmp_path / "ok")["silent_layers"] == []
    assert "fired no spike" not in caplog.text
