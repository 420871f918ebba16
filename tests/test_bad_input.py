"""Bad input of every kind ends in one paragraph naming what is wrong: no traceback, nothing left on disk.

Runs the command line's own code path in-process (``cli.execute`` on the config Hydra
composes from the overrides), so 70 bad configs take seconds; tests/test_run_cli.py
runs a sample of them through real ``snntrain`` processes.
"""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from snntrain import cli

from .conftest import compose_cfg

# (overrides, the key the message must start with)
BAD = [
    # the list
    (["+foo=1"], "foo"), (["+trainer.epoch=3"], "trainer.epoch"), (["trainer.progress=maybe"], "trainer.progress"),
    (["model.hidden=[]"], "model"), (["neuron.graded_spikes_factor=-1"], "neuron.graded_spikes_factor"),
    (["optimizer.lr=inf"], "optimizer.lr"), (["neuron.v_reset=nan"], "neuron.v_reset"),
    (["neuron.threshold=inf"], "neuron.threshold"), (["surrogate.alpha=inf"], "surrogate.alpha"),
    (["encoder=rate", "encoder.gain=inf"], "encoder.gain"),
    # top level
    (["T=0"], "T"), (["T=-3"], "T"), (["T=2.5"], "T"), (["T=abc"], "T"), (["T=inf"], "T"), (["T=true"], "T"),
    (["seed=-1"], "seed"), (["seed=x"], "seed"), (["device=tpu"], "device"), (["device=cuda:0"], "device"),
    (["resume=12"], "resume"), (["resume=/no/such/run"], "resume"), (["+bogus.key=1"], "bogus"),
    # the run loop
    (["trainer.epochs=0"], "trainer.epochs"), (["trainer.epochs=-2"], "trainer.epochs"),
    (["trainer.epochs=nan"], "trainer.epochs"), (["trainer.epochs=2.5"], "trainer.epochs"),
    (["trainer.batch_size=0"], "trainer.batch_size"), (["trainer.eval_batch_size=0"], "trainer.eval_batch_size"),
    (["trainer.limit_batches=0"], "trainer.limit_batches"), (["trainer.num_workers=-1"], "trainer.num_workers"),
    (["trainer.pin_memory=maybe"], "trainer.pin_memory"), (["trainer.persistent_workers=true"], "trainer.persistent_workers"),
    (["trainer.prefetch_factor=2"], "trainer.prefetch_factor"),
    (["trainer.checkpoint_every_steps=0"], "trainer.checkpoint_every_steps"),
    (["trainer.keep_checkpoints=0"], "trainer.keep_checkpoints"), (["trainer.on_nonfinite=ignore"], "trainer.on_nonfinite"),
    (["trainer.name=sgd"], "trainer"), (["+trainer.lr=0.1"], "trainer.lr"), (["trainer.progress=1"], "trainer.progress"),
    # components
    (["optimizer.lr=-1"], "optimizer.lr"), (["optimizer.lr=nan"], "optimizer.lr"), (["optimizer.lr=0"], "optimizer.lr"),
    (["optimizer.betas=[0.9]"], "optimizer.betas"), (["optimizer.weight_decay=-1"], "optimizer.weight_decay"),
    (["optimizer=sgd", "optimizer.momentum=1.5"], "optimizer.momentum"), (["+optimizer.nesterov=true"], "optimizer.nesterov"),
    (["neuron.decay=1.5"], "neuron.decay"), (["neuron.decay=0"], "neuron.decay"), (["neuron.threshold=0"], "neuron.threshold"),
    (["neuron.threshold=-1"], "neuron.threshold"), (["neuron.reset=soft"], "neuron.reset"),
    (["neuron.graded_spikes_factor=0"], "neuron.graded_spikes_factor"), (["+neuron.foo=1"], "neuron.foo"),
    (["neuron=plif", "neuron.init_tau=nan"], "neuron.init_tau"), (["surrogate.alpha=0"], "surrogate.alpha"),
    (["surrogate.alpha=-2"], "surrogate.alpha"), (["+surrogate.beta=1"], "surrogate.beta"),
    (["norm=bn", "norm.eps=-1"], "norm.eps"), (["norm=bn", "norm.momentum=nan"], "norm.momentum"),
    (["norm=tdbn", "norm.alpha=inf"], "norm.alpha"), (["model.hidden=[0]"], "model.hidden"),
    (["model.dropout=1.0"], "model.dropout"), (["model.dropout=-0.1"], "model.dropout"),
    (["model.synapse=dense"], "model.synapse"), (["+model.depth=3"], "model.depth"),
    (["encoder=rate", "encoder.gain=0"], "encoder.gain"), (["+encoder.foo=1"], "encoder.foo"),
    (["loss.label_smoothing=1.5"], "loss.label_smoothing"), (["loss.label_smoothing=nan"], "loss.label_smoothing"),
    (["scheduler.eta_min=-1"], "scheduler.eta_min"), (["scheduler=step", "scheduler.step_size=0"], "scheduler.step_size"),
    (["scheduler=step", "scheduler.gamma=2"], "scheduler.gamma"), (["dataset.test_fraction=1.5"], "dataset.test_fraction"),
    # the stdp trainer's own arguments
    (["trainer=stdp", "trainer.units=0"], "trainer.units"), (["trainer=stdp", "trainer.lr=nan"], "trainer.lr"),
    (["trainer=stdp", "trainer.tau_pre=0.5"], "trainer.tau_pre"), (["trainer=stdp", "trainer.f_pre=bogus"], "trainer.f_pre"),
    (["trainer=stdp", "trainer.w_max=-1"], "trainer.w_max"), (["trainer=stdp", "+trainer.tau_plus=3"], "trainer.tau_plus"),
]


def _execute(tmp_path: Path, *overrides: str, capsys) -> tuple[int, str, Path]:
    run = tmp_path / "outputs" / "day" / "time"
    run.mkdir(parents=True)  # Hydra creates the run directory before the task starts
    fast = ["trainer.epochs=1", "trainer.limit_batches=1", "trainer.progress=false"]
    code, _, _ = cli.execute(compose_cfg(*fast, *overrides), run)
    out = capsys.readouterr()
    return code, out.err + out.out, run


def test_the_fuzz_list_is_long_enough():
    assert len(BAD) >= 60 and len({tuple(o) for o, _ in BAD}) == len(BAD)


@pytest.mark.parametrize("overrides,key", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_override_is_one_paragraph_naming_the_key(tmp_path, monkeypatch, capsys, overrides, key):
    monkeypatch.chdir(tmp_path)
    code, text, run = _execute(tmp_path, *overrides, capsys=capsys)
    assert code == 2
    assert "Traceback" not in text
    message = text.strip()
    assert message.startswith(f"snntrain: error: {key}:"), message
    assert "\n" not in message  # one paragraph
    assert not list(tmp_path.rglob("*.pt"))
    assert not (tmp_path / "outputs").exists()  # no run directory (nor its empty parents) left behind


# ---- data folders ----------------------------------------------------------------------
def _mnist_copy(data_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(data_root / "MNIST", root / "MNIST")
    return root


def _data_error(tmp_path, capsys, root: Path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    code, text, _ = _execute(tmp_path, "dataset=mnist", f"dataset.root={root}", capsys=capsys)
    assert code == 2 and "Traceback" not in text and "\n" not in text.strip()
    assert text.startswith("snntrain: error: dataset.root:")
    assert not (tmp_path / "outputs").exists()
    return text


def test_more_images_than_labels(data_root, tmp_path, capsys, monkeypatch):
    root = _mnist_copy(data_root, tmp_path)
    labels = root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    raw = labels.read_bytes()
    n = struct.unpack(">I", raw[4:8])[0]
    labels.write_bytes(raw[:4] + struct.pack(">I", n - 5) + raw[8:-5])
    text = _data_error(tmp_path, capsys, root, monkeypatch)
    assert f"holds {n} images but train-labels-idx1-ubyte holds {n - 5} labels" in text


def test_garbage_idx_file(data_root, tmp_path, capsys, monkeypatch):
    root = _mnist_copy(data_root, tmp_path)
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"<html>not found</html>" * 50)
    text = _data_error(tmp_path, capsys, root, monkeypatch)
    assert "t10k-images-idx3-ubyte is not an idx file" in text and "magic number" in text


def test_truncated_idx_file(data_root, tmp_path, capsys, monkeypatch):
    root = _mnist_copy(data_root, tmp_path)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    assert "truncated" in _data_error(tmp_path, capsys, root, monkeypatch)


def test_unreadable_data_folder(data_root, tmp_path, capsys, monkeypatch):
    """A folder this user may not read (simulated: the tests may run as root, who reads everything)."""
    import builtins

    root = _mnist_copy(data_root, tmp_path)
    raw = str(root / "MNIST" / "raw")
    real_open = builtins.open

    def guarded_open(file, *a, **k):
        if str(file).startswith(raw):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", guarded_open)
    text = _data_error(tmp_path, capsys, root, monkeypatch)
    assert "Permission denied" in text and "readable" in text


def test_a_crafted_cifar_folder_runs_no_code(data_root, tmp_path, capsys, monkeypatch):
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    root = tmp_path / "data"
    shutil.copytree(data_root / "cifar-10-batches-py", root / "cifar-10-batches-py")
    with open(root / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({"data": Evil(), "labels": [0]}, f, protocol=2)
    monkeypatch.chdir(tmp_path)
    code, text, _ = _execute(tmp_path, "dataset=cifar10", f"dataset.root={root}", capsys=capsys)
    assert not marker.exists()  # the pickle's code did not run
    assert code == 2 and "Traceback" not in text
    assert "the Python object posix.system" in text or "the Python object os.system" in text
