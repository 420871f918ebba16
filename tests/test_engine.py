"""The run engine in-process: exact resume from any step, signals, divergence, extension, faults.

The same properties are checked through real processes (SIGKILL, SIGTERM, two runs at
once, sweeps) in tests/test_run_cli.py.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from snntrain import ConfigError
from snntrain.errors import Diverged, Interrupted, StorageError
from snntrain.training import bptt, checkpoint, train
from snntrain.training.engine import NonFinite

from .conftest import compose_cfg

# rate coding and dropout draw random numbers every step: the RNG state must survive every resume
BASE = ["trainer.epochs=3", "trainer.limit_batches=5", "trainer.progress=false", "encoder=rate", "norm=bntt",
        "model.dropout=0.2", "seed=7"]


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_same_state(a: dict, b: dict) -> None:
    """Model and optimizer state bitwise equal (torch.equal on every tensor)."""
    for key in ("model", "optimizer", "scheduler"):
        flat_a, flat_b = _flat(a[key]), _flat(b[key])
        assert flat_a.keys() == flat_b.keys(), key
        for k in flat_a:
            va, vb = flat_a[k], flat_b[k]
            if isinstance(va, torch.Tensor):
                assert torch.equal(va, vb), f"{key}.{k}"
            else:
                assert va == vb, f"{key}.{k}"


def _flat(d, prefix=""):
    out = {}
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, (list, tuple)) else None
    if items is None:
        return {prefix: d}
    for k, v in items:
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def strict_json(path: Path) -> dict:
    def refuse(name):
        raise ValueError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@contextlib.contextmanager
def count_steps(monkeypatch):
    """Record ``(epoch index, batch index)`` of every ``train_step`` call the engine makes."""
    from snntrain.training.engine import Run

    real_epoch, real_step, calls, where = Run.train_epoch, bptt.BPTT.train_step, [], {}

    def train_epoch(self, epoch, order, loader):
        where["run"] = self
        return real_epoch(self, epoch, order, loader)

    def train_step(self, x, y, **kw):
        s = where["run"].state
        calls.append((s.epoch, s.batch))
        return real_step(self, x, y, **kw)

    monkeypatch.setattr(Run, "train_epoch", train_epoch)
    monkeypatch.setattr(bptt.BPTT, "train_step", train_step)
    yield calls
    monkeypatch.setattr(Run, "train_epoch", real_epoch)
    monkeypatch.setattr(bptt.BPTT, "train_step", real_step)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted run with a checkpoint after every optimizer step, all of them kept."""
    d = tmp_path_factory.mktemp("full")
    metrics = train(compose_cfg(*BASE, "trainer.checkpoint_every_steps=1", "trainer.keep_checkpoints=100"), d)
    return d, metrics


def test_step_checkpoints_are_kept_and_last_is_the_newest(full_run):
    d, metrics = full_run
    steps = sorted((d / "checkpoints").glob("step-*.pt"))
    assert [int(p.stem.split("-")[1]) for p in steps] == list(range(1, 16))  # 3 epochs x 5 batches
    last = _load(d / "checkpoints" / "last.pt")
    assert last["position"] == {"epoch": 3, "batch": 0, "step": 15} and last["epoch"] == 3
    mid = _load(steps[6])  # after step 7: epoch 2 (index 1), 2 batches done
    assert mid["position"] == {"epoch": 1, "batch": 2, "step": 7} and mid["epoch"] == 1
    assert metrics["status"] == "finished" and strict_json(d / "metrics.json")["epoch"] == 3


@pytest.mark.parametrize("step", [1, 4, 5, 7, 13])  # mid-epoch and at an epoch's last batch (before evaluation)
def test_resume_from_any_step_is_bitwise_equal_to_the_uninterrupted_run(full_run, tmp_path, step, monkeypatch):
    d, full = full_run
    source = checkpoint.step_path(d / "checkpoints", step)
    with count_steps(monkeypatch) as calls:
        resumed = train(compose_cfg(*BASE, f"resume={source}"), tmp_path)
    # the resumed run trained only the remaining steps, from the batch after the checkpoint's
    assert calls == [(i // 5, i % 5) for i in range(step, 15)]
    assert_same_state(_load(d / "checkpoints" / "last.pt"), _load(tmp_path / "checkpoints" / "last.pt"))
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "best_test_acc"):
        assert resumed[key] == full[key], key  # the epoch's running sums were restored too
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    assert (tmp_path / "checkpoints" / "best.pt").is_file()  # best.pt exists in the resumed run's directory


def test_keep_checkpoints_keeps_the_newest(tmp_path):
    train(compose_cfg(*BASE, "trainer.epochs=1", "trainer.checkpoint_every_steps=2", "trainer.keep_checkpoints=2"),
          tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*.pt")) == ["step-000000002.pt",
                                                                                    "step-000000004.pt"]


def test_signal_saves_the_exact_step_and_resume_matches(full_run, tmp_path, monkeypatch):
    d, _ = full_run
    real_step, calls = bptt.BPTT.train_step, []

    def step_then_signal(self, x, y, **kw):
        out = real_step(self, x, y, **kw)
        calls.append(1)
        if len(calls) == 8:  # SIGTERM arrives during optimizer step 8 (epoch 2, batch 3)
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(bptt.BPTT, "train_step", step_then_signal)
    with pytest.raises(Interrupted) as e:
        train(compose_cfg(*BASE), tmp_path / "cut", command=["seed=7"])
    monkeypatch.setattr(bptt.BPTT, "train_step", real_step)
    assert e.value.exit_code == 143
    assert f"resume={tmp_path / 'cut'}" in str(e.value) and "epoch 2, batch 3" in str(e.value)
    cut = _load(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert cut["position"] == {"epoch": 1, "batch": 3, "step": 8}
    assert strict_json(tmp_path / "cut" / "metrics.json")["status"] == "interrupted"
    # with a command (the command line, which exits next) further SIGTERMs are ignored until the exit
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN and signal.getsignal(signal.SIGINT) == signal.default_int_handler
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with count_steps(monkeypatch) as calls:
        train(compose_cfg(*BASE, f"resume={tmp_path / 'cut'}"), tmp_path / "resumed")
    assert calls == [(1, 3), (1, 4), *[(2, b) for b in range(5)]]  # only the 7 steps after step 8
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # no command: the handlers are restored
    assert_same_state(_load(d / "checkpoints" / "last.pt"), _load(tmp_path / "resumed" / "checkpoints" / "last.pt"))


def _nan_loss_at(monkeypatch, at_call: int):
    real_step, calls = bptt.BPTT.train_step, []

    def step(self, x, y, **kw):
        calls.append(1)
        if len(calls) == at_call:
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFinite("loss")
        return real_step(self, x, y, **kw)

    monkeypatch.setattr(bptt.BPTT, "train_step", step)


def test_nonfinite_loss_stops_naming_epoch_and_step_and_keeps_finite_checkpoints(tmp_path, monkeypatch):
    _nan_loss_at(monkeypatch, 8)  # epoch 2, batch 3
    with pytest.raises(Diverged) as e:
        train(compose_cfg(*BASE), tmp_path)
    assert e.value.exit_code == 3
    assert "epoch 2, step 3 of the epoch" in str(e.value) and "optimizer.lr" in str(e.value)
    for name in ("last.pt", "best.pt"):
        ckpt = _load(tmp_path / "checkpoints" / name)
        assert ckpt["epoch"] == 1 and checkpoint.all_finite(ckpt["model"])
    saved = strict_json(tmp_path / "metrics.json")
    assert saved["status"] == "diverged" and "epoch 2, step 3" in saved["stopped"]


def test_nonfinite_skip_counts_the_batch_and_goes_on(tmp_path, monkeypatch):
    _nan_loss_at(monkeypatch, 3)
    metrics = train(compose_cfg(*BASE, "trainer.on_nonfinite=skip"), tmp_path)
    assert metrics["skipped_batches"] == 1 and metrics["epoch"] == 3
    assert _load(tmp_path / "checkpoints" / "last.pt")["position"]["step"] == 14  # 15 batches, one skipped


def test_real_divergence_with_a_huge_learning_rate(tmp_path):
    with pytest.raises(Diverged, match=r"epoch 1, step \d+ of the epoch"):
        train(compose_cfg("optimizer=sgd", "optimizer.lr=1e30", "trainer.epochs=4", "trainer.progress=false"), tmp_path)
    saved = strict_json(tmp_path / "metrics.json")
    assert saved["status"] == "diverged"
    for name in ("last.pt", "best.pt"):  # written only while finite (here: none were due yet)
        if (tmp_path / "checkpoints" / name).exists():
            assert checkpoint.all_finite(_load(tmp_path / "checkpoints" / name)["model"])


def test_extending_a_finished_run_trains_the_new_epochs_on_the_new_schedule(tmp_path):
    fast = ["trainer.limit_batches=3", "trainer.progress=false"]
    train(compose_cfg(*fast, "trainer.epochs=3"), tmp_path / "short")
    metrics = train(compose_cfg(*fast, "trainer.epochs=5", f"resume={tmp_path / 'short'}"), tmp_path / "long")
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4, 5]
    assert (tmp_path / "long" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "long" / "checkpoints" / "best.pt").is_file()
    planned = train(compose_cfg(*fast, "trainer.epochs=5"), tmp_path / "planned")
    # the lr of epochs 4 and 5 is the 5-epoch cosine schedule's (not the 3-epoch one's, which had reached 0)
    assert [h["lr"] for h in metrics["history"][3:]] == pytest.approx([h["lr"] for h in planned["history"][3:]])
    assert [h["lr"] for h in metrics["history"][:3]] != pytest.approx([h["lr"] for h in planned["history"][:3]])


def test_resuming_a_finished_run_writes_nothing(tmp_path):
    fast = ["trainer.epochs=2", "trainer.limit_batches=2", "trainer.progress=false"]
    train(compose_cfg(*fast), tmp_path / "done")
    metrics = train(compose_cfg(*fast, f"resume={tmp_path / 'done'}"), tmp_path / "again")
    assert metrics["status"] == "already finished" and metrics["epoch"] == 2
    assert not (tmp_path / "again").exists()
    with pytest.raises(ConfigError, match="trainer.epochs: .*can only grow"):
        train(compose_cfg("trainer.epochs=1", "trainer.limit_batches=2", f"resume={tmp_path / 'done'}"),
              tmp_path / "shorter")


def test_disk_full_names_the_path_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    fast = ["trainer.epochs=3", "trainer.limit_batches=2", "trainer.progress=false"]
    real_save, calls = torch.save, []

    def save_until_full(obj, f, *a, **k):
        calls.append(1)
        if len(calls) == 2:  # the second epoch's checkpoint
            f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save_until_full)
    with pytest.raises(StorageError) as e:
        train(compose_cfg(*fast), tmp_path)
    assert e.value.exit_code == 4
    assert str(tmp_path / "checkpoints" / "last.pt") in str(e.value) and "no space left on device (ENOSPC)" in str(e.value)
    assert f"resume={tmp_path}" in str(e.value)  # a checkpoint exists: the run can continue
    assert _load(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1  # the previous checkpoint, intact
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))  # the partial file was removed
    assert strict_json(tmp_path / "metrics.json")["status"] != "running"


def test_disk_full_before_any_checkpoint_offers_no_resume(tmp_path, monkeypatch):
    """torch.save reports a failed write as a C++ error; the message names the errno the file write raised."""
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(checkpoint.os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))
    with pytest.raises(StorageError) as e:
        train(compose_cfg("trainer.epochs=1", "trainer.limit_batches=2", "trainer.progress=false"), tmp_path)
    text = str(e.value)
    assert "no space left on device (ENOSPC)" in text and "inline_container" not in text, text
    assert "resume=" not in text and "no checkpoint of this run had been written" in text
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_stale_temporary_files_are_removed_when_a_run_is_accepted(tmp_path):
    fast = ["trainer.epochs=2", "trainer.limit_batches=2", "trainer.progress=false"]
    train(compose_cfg(*fast, "trainer.epochs=1"), tmp_path)
    stale = tmp_path / "checkpoints" / "last.pt.tmp"
    stale.write_bytes(b"half a checkpoint from a killed run")
    train(compose_cfg(*fast, f"resume={tmp_path}", "trainer.epochs=2"), tmp_path)  # continues in the same folder
    assert not stale.exists() and _load(tmp_path / "checkpoints" / "last.pt")["epoch"] == 2


def test_a_crafted_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, bad)
    with pytest.raises(ConfigError) as e:
        train(compose_cfg("trainer.epochs=1", f"resume={bad}"), tmp_path / "run")
    assert not marker.exists()
    text = str(e.value)
    assert "posix.system" in text or "os.system" in text
    assert "\x1b[" not in text and "\n" not in text  # plain text, one paragraph
    assert not (tmp_path / "run").exists()


def test_a_refused_run_leaves_the_directory_as_it_was(tmp_path):
    fast = ["trainer.epochs=1", "trainer.limit_batches=2", "trainer.progress=false"]
    train(compose_cfg(*fast), tmp_path, run_files={".hydra/config.yaml": "first\n"})
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(compose_cfg(*fast, "seed=1"), tmp_path, run_files={".hydra/config.yaml": "second\n"})
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_config_error_leaves_no_directory(tmp_path):
    with pytest.raises(ConfigError):
        train(compose_cfg("model.hidden=[]", "trainer.epochs=1"), tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()


def test_trainers_share_the_engine():
    """bptt and stdp hold no orchestration of their own: no checkpoints, writers, run folders or signals."""
    import inspect

    from snntrain.training import stdp

    for module in (bptt, stdp):
        source = inspect.getsource(module)
        for word in ("checkpoint.", "SummaryWriter", "RunDir", "signal", "json.dump", "manual_seed(cfg", "DataLoader(self.data.train"):
            assert word not in source, (module.__name__, word)


def test_a_run_resumes_on_the_cpu_neuron_engine_it_was_written_with(tmp_path, monkeypatch):
    """A run trained eagerly (the C++ kernel not built yet) and resumed once the kernel is built continues
    eagerly: the two engines' surrogate gradients differ in the last bit, the resumed run must not."""
    from snntrain.kernels import cpu

    module = cpu.kernel(wait=True)
    if module is None:
        pytest.skip("the C++ CPU kernel cannot be built here")
    args = [*BASE, "trainer.epochs=2", "trainer.checkpoint_every_steps=3"]
    train(compose_cfg(*args), tmp_path / "compiled")
    monkeypatch.setattr(cpu, "_KERNEL", None)  # not built yet: runs go eager
    monkeypatch.setattr(cpu, "_TRIED", True)
    train(compose_cfg(*args), tmp_path / "eager")
    train(compose_cfg(*args), tmp_path / "cut")
    source = checkpoint.step_path(tmp_path / "cut" / "checkpoints", 3)
    monkeypatch.setattr(cpu, "_KERNEL", module)  # built since
    train(compose_cfg(*args, f"resume={source}"), tmp_path / "resumed")
    eager = _load(tmp_path / "eager" / "checkpoints" / "last.pt")
    assert eager["cpu_neurons"] == "eager" and _load(source)["cpu_neurons"] == "eager"
    assert _load(tmp_path / "compiled" / "checkpoints" / "last.pt")["cpu_neurons"] == "compiled"
    with pytest.raises(AssertionError):  # the engines do differ in the last bit: this test can fail
        assert_same_state(eager, _load(tmp_path / "compiled" / "checkpoints" / "last.pt"))
    assert_same_state(eager, _load(tmp_path / "resumed" / "checkpoints" / "last.pt"))
    assert _load(tmp_path / "resumed" / "checkpoints" / "last.pt")["cpu_neurons"] == "eager"
    assert cpu.kernel() is module  # the pin ends with the run


def test_a_damaged_engine_entry_is_refused_by_name(tmp_path):
    train(compose_cfg(*BASE, "trainer.epochs=1"), tmp_path / "run")
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt = _load(last)
    ckpt["cpu_neurons"] = "cuda"
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match=r"cpu_neurons is 'cuda', expected one of compiled, eager or null"):
        train(compose_cfg(*BASE, "trainer.epochs=2", f"resume={tmp_path / 'bad.pt'}"), tmp_path / "again")
