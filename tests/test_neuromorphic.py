"""Neuromorphic datasets through the real tonic readers on fixture files in the real raw formats.

Frames are checked against an independent binning of the events the fixtures wrote
(tests/fixtures/events.py), so a wrong bin width, axis order, polarity or down-sampling fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tonic
import torch

import snntrain.data.neuromorphic as nm  # noqa: F401  (registers the datasets)
from snntrain import ConfigError, build

from .fixtures import events as fx

SENSOR = {"nmnist": 34, "dvsgesture": 128, "cifar10dvs": 128, "shd": 700, "ssc": 700}
CLASSES = {"nmnist": 10, "dvsgesture": 11, "cifar10dvs": 10, "shd": 20, "ssc": 35}


def load(name, root, T=4, **kw):
    return build("dataset", name, context={"T": T}, root=str(root), **kw)


def expected_frames(s: fx.Sample, T: int, native: int, time_window=None, size=None) -> np.ndarray:
    """Independent binning: T bins of floor(duration / T) us (or ``time_window``) from the first event;
    events at or past the end of bin T are left out; coordinates scaled by floor(c * size / native)."""
    n = size or native
    x = s.x * n // native
    t = s.t - s.t[0]
    width = time_window if time_window is not None else (s.t[-1] - s.t[0]) // T
    b = (t // width).astype(np.int64)
    keep = b < T
    if s.y is None:
        frames = np.zeros((T, n))
        np.add.at(frames, (b[keep], x[keep]), 1)
    else:
        y = s.y * n // native
        frames = np.zeros((T, 2, n, n))
        np.add.at(frames, (b[keep], s.p[keep], y[keep], x[keep]), 1)
    assert frames.sum() == keep.sum()  # every event inside the window is counted once
    return frames


def assert_split(ds, samples, T, native, **kw):
    assert len(ds) == len(samples)
    for i, s in enumerate(samples):
        x, y = ds[i]
        assert x.dtype == torch.float32 and isinstance(y, int) and y == s.label
        want = expected_frames(s, T, native, **kw)
        assert tuple(x.shape) == want.shape
        assert float(x.sum()) == want.sum() and want.sum() > 0
        np.testing.assert_array_equal(x.numpy(), want)


# ------------------------------------------------------------------ binning, shapes, labels
@pytest.mark.parametrize("name", ["nmnist", "dvsgesture", "shd", "ssc"])
@pytest.mark.parametrize("cache", [False, True])
def test_frames_are_the_binned_fixture_events(name, cache, data_root, tmp_path):
    data = load(name, data_root, T=5, cache=cache, cache_dir=str(tmp_path))
    assert data.temporal and data.num_classes == CLASSES[name]
    assert data.in_shape == ((700,) if name in ("shd", "ssc") else (2, SENSOR[name], SENSOR[name]))
    assert_split(data.train, fx.samples(name, "train"), 5, SENSOR[name])
    assert_split(data.test, fx.samples(name, "test"), 5, SENSOR[name])


def test_cifar10dvs_reads_aedat4_and_splits_stratified_and_fixed(data_root, tmp_path):
    data = load("cifar10dvs", data_root, T=3, cache_dir=str(tmp_path), test_fraction=0.25)
    everything = fx.samples("cifar10dvs", "all")
    train_idx, test_idx = data.train.indices, data.test.indices
    assert sorted(train_idx + test_idx) == list(range(len(everything))) and not set(train_idx) & set(test_idx)
    assert sorted(everything[i].label for i in test_idx) == list(range(10))  # one of each class (4 per class)
    assert_split(data.train, [everything[i] for i in train_idx], 3, 128)
    assert_split(data.test, [everything[i] for i in test_idx], 3, 128)
    again = load("cifar10dvs", data_root, T=3, cache_dir=str(tmp_path), test_fraction=0.25)
    assert again.test.indices == test_idx  # fixed by split_seed, not by the run
    other = load("cifar10dvs", data_root, T=3, cache_dir=str(tmp_path), test_fraction=0.25, split_seed=1)
    assert other.test.indices != test_idx
    default = load("cifar10dvs", data_root, T=3, cache_dir=str(tmp_path))  # 0.1 of 4 -> still one per class
    assert len(default.test) == 10


@pytest.mark.parametrize("name,size", [("nmnist", 12), ("dvsgesture", 48), ("cifar10dvs", 48), ("shd", 140)])
def test_size_downsamples_the_sensor(name, size, data_root, tmp_path):
    data = load(name, data_root, T=4, size=size, cache_dir=str(tmp_path))
    assert data.in_shape == ((size,) if name == "shd" else (2, size, size))
    if name == "cifar10dvs":
        samples = [fx.samples(name, "all")[i] for i in data.train.indices]
    else:
        samples = fx.samples(name, "train")
    assert_split(data.train, samples, 4, SENSOR[name], size=size)


def test_time_window_gives_T_fixed_windows_zero_padded(data_root, tmp_path):
    # fixture recordings span 300 ms: 8 windows of 50 ms cover them (the last event falls in window 7)
    data = load("nmnist", data_root, T=8, time_window=50_000, cache_dir=str(tmp_path))
    samples = fx.samples("nmnist", "train")
    assert_split(data.train, samples, 8, 34, time_window=50_000)
    x, _ = data.train[0]
    assert float(x.sum()) == len(samples[0].t) and float(x[7].sum()) == 0  # all events in, last window empty
    short = load("shd", data_root, T=3, time_window=200_000.0, cache=False)  # 600 ms of ~1 s recordings
    assert_split(short.test, fx.samples("shd", "test"), 3, 700, time_window=200_000.0)


def _denoise_reference(s: fx.Sample, filter_time: float) -> fx.Sample:
    """Keep an event when a 4-neighbour pixel fired less than ``filter_time`` before it (or the
    recording is younger than ``filter_time``): tonic's documented Denoise rule, written out."""
    last = {}
    keep = []
    for x, y, t in zip(s.x.tolist(), s.y.tolist(), s.t.tolist()):
        last[(x, y)] = t
        near = [last.get(q, -np.inf) for q in ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1))]
        keep.append(t < filter_time or any(t - tn < filter_time for tn in near))
    k = np.array(keep)
    return fx.Sample(s.path, s.label, s.x[k], s.y[k], s.p[k], s.t[k])


def test_denoise_drops_isolated_events(data_root, tmp_path):
    data = load("nmnist", data_root, T=4, denoise=60_000.0, cache_dir=str(tmp_path))
    plain = load("nmnist", data_root, T=4, cache_dir=str(tmp_path))
    samples = fx.samples("nmnist", "test")
    dropped = 0
    for i, s in enumerate(samples):
        d = _denoise_reference(s, 60_000.0)
        np.testing.assert_array_equal(data.test[i][0].numpy(), expected_frames(d, 4, 34))
        dropped += float(plain.test[i][0].sum() - data.test[i][0].sum())
    assert dropped > 0


# ------------------------------------------------------------------ cache
class _CountingToFrame:
    def __init__(self, monkeypatch, fail=False):
        self.calls, real = 0, tonic.transforms.ToFrame.__call__

        def call(this, events):
            self.calls += 1
            if fail:
                raise AssertionError("ToFrame called: the frames were not read from the cache")
            return real(this, events)

        monkeypatch.setattr(tonic.transforms.ToFrame, "__call__", call)


def _all(data):
    return [data.train[i] for i in range(len(data.train))] + [data.test[i] for i in range(len(data.test))]


@pytest.mark.parametrize("name", ["nmnist", "shd", "cifar10dvs"])
def test_second_pass_reads_the_cache_without_binning(name, data_root, tmp_path, monkeypatch):
    first = _CountingToFrame(monkeypatch)
    data = load(name, data_root, T=4, cache_dir=str(tmp_path))
    n = len(data.train) + len(data.test)
    before = _all(data)
    assert first.calls == n
    (key,) = (tmp_path / name).iterdir()
    cached = sorted(key.rglob("*_0.hdf5"))
    assert len(cached) == n and (key / "settings.json").is_file()
    assert json.loads((key / "settings.json").read_text())["T"] == 4
    assert not list(tmp_path.rglob("*.tmp"))
    # a later epoch of the same run, and a fresh run with the same settings: no binning at all
    _CountingToFrame(monkeypatch, fail=True)
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(before, _all(data)))
    again = load(name, data_root, T=4, cache_dir=str(tmp_path))
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(before, _all(again)))
    # other binning settings get their own cache folder, so they bin anew
    other = load(name, data_root, T=3, cache_dir=str(tmp_path))
    with pytest.raises(AssertionError, match="not read from the cache"):
        other.test[0]
    assert len(list((tmp_path / name).iterdir())) == 2


def test_default_cache_lives_under_root_and_cache_false_writes_nothing(tmp_path, monkeypatch):
    fx.write(tmp_path)
    data = load("dvsgesture", tmp_path, T=2, size=32)
    data.train[0]
    assert len(list((tmp_path / "cache" / "dvsgesture").glob("*/train/0_0.hdf5"))) == 1
    load("nmnist", tmp_path, T=2, cache=False).train[0]
    assert not (tmp_path / "cache" / "nmnist").exists()
    counter = _CountingToFrame(monkeypatch)
    nocache = load("nmnist", tmp_path, T=2, cache=False)
    nocache.train[0], nocache.train[0]
    assert counter.calls == 2  # without the cache every read bins again


# ------------------------------------------------------------------ augmentation
def test_augmentation_applies_to_train_only_after_the_cache(data_root, tmp_path):
    base = load("nmnist", data_root, T=4, cache_dir=str(tmp_path))
    flipped = load("nmnist", data_root, T=4, flip=1.0, cache_dir=str(tmp_path))
    for i in range(len(base.train)):
        assert torch.equal(flipped.train[i][0], base.train[i][0].flip(-1))
    for i in range(len(base.test)):
        assert torch.equal(flipped.test[i][0], base.test[i][0])
    assert len(list((tmp_path / "nmnist").iterdir())) == 1  # one cache: augmentation is not part of it
    torch.manual_seed(0)
    shifted = load("nmnist", data_root, T=4, translate=4, cache_dir=str(tmp_path))
    moved = 0
    for i in range(len(base.train)):
        a, b = shifted.train[i][0], base.train[i][0]
        assert a.shape == b.shape and float(a.sum()) <= float(b.sum())
        moved += not torch.equal(a, b)
    assert moved > len(base.train) // 2
    assert all(torch.equal(shifted.test[i][0], base.test[i][0]) for i in range(len(base.test)))
    shd = load("shd", data_root, T=4, translate=50, cache_dir=str(tmp_path))
    plain = load("shd", data_root, T=4, cache_dir=str(tmp_path))
    assert any(not torch.equal(shd.train[i][0], plain.train[i][0]) for i in range(4))


def test_augment_shift_is_zero_filled():
    aug = nm.Augment(translate=2)
    x = torch.ones(3, 2, 5, 5)
    torch.manual_seed(3)
    shifted = [aug(x.clone()) for _ in range(20)]
    assert any(float(s.sum()) < x.sum() for s in shifted)  # wrapped-around pixels are zeroed, not rolled in
    assert all(s.shape == x.shape for s in shifted)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("name,names", [
    ("nmnist", ["NMNIST", "Train", "Test", "data.mendeley.com"]),
    ("dvsgesture", ["DVSGesture", "ibmGestureTrain", "ibmGestureTest", "figshare.com"]),
    ("cifar10dvs", ["CIFAR10DVS", "airplane", "figshare.com"]),
    ("shd", ["SHD", "shd_train.h5", "shd_test.h5", "zenkelab.org"]),
    ("ssc", ["SSC", "ssc_train.h5", "ssc_test.h5", "zenkelab.org"]),
])
def test_missing_files_name_what_tonic_expects(name, names, tmp_path):
    with pytest.raises(ConfigError) as err:
        load(name, tmp_path / "empty")
    msg = str(err.value)
    assert msg.startswith("dataset.root:")
    for word in names:
        assert word in msg


def test_empty_folders_and_bad_arguments_are_config_errors(tmp_path, data_root):
    for split in ("Train", "Test"):
        (tmp_path / "NMNIST" / split).mkdir(parents=True)
    with pytest.raises(ConfigError, match="no samples"):
        load("nmnist", tmp_path)
    for kw, key in [({"size": 200}, "dataset.size"), ({"flip": 1.5}, "dataset.flip"),
                    ({"time_window": 0}, "dataset.time_window"), ({"translate": 40}, "dataset.translate"),
                    ({"denoise": -1.0}, "dataset.denoise")]:
        with pytest.raises(ConfigError, match=key):
            load("nmnist", data_root, cache=False, **kw)
    with pytest.raises(ConfigError, match="dataset.test_fraction"):
        load("cifar10dvs", data_root, test_fraction=1.0)
    with pytest.raises(ConfigError, match="dataset.flip"):  # SHD has no flip
        load("shd", data_root, flip=0.5)


def test_fixture_files_are_small(data_root):
    folders = ["NMNIST", "DVSGesture", "CIFAR10DVS", "SHD", "SSC"]
    total = sum(f.stat().st_size for d in folders for f in (data_root / d).rglob("*") if f.is_file())
    assert 0 < total < 2_000_000


# ------------------------------------------------------------------ command line
def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snntrain", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=os.environ.copy())


@pytest.mark.slow
def test_cli_trains_one_epoch_on_every_neuromorphic_dataset(data_root, tmp_path):
    names = ["nmnist", "dvsgesture", "cifar10dvs", "shd"]
    # `++`: Hydra first composes a multirun's config with the default dataset (digits, which has no
    # root), where a plain `dataset.root=` override fails; `++` sets it there and in every job
    r = run_cli("-m", f"dataset={','.join(names)}", f"++dataset.root={data_root}", "trainer.epochs=1",
                "trainer.limit_batches=2", "trainer.batch_size=4", "trainer.progress=false",
                f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    for i, name in enumerate(names):
        run = next((tmp_path / "sweep").glob(f"{i}_dataset={name}*"))  # named by the overrides
        assert f"name: {name}" in (run / ".hydra" / "config.yaml").read_text()
        assert json.loads((run / "metrics.json").read_text())["epoch"] == 1


@pytest.mark.slow
def test_cli_missing_root_names_the_files_without_traceback(tmp_path):
    r = run_cli("dataset=nmnist", f"dataset.root={tmp_path / 'nowhere'}", "trainer.epochs=1",
                "hydra.run.dir=run", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "NMNIST" in out and "Train" in out and "Test" in out
    assert "Traceback" not in out
