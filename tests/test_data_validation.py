"""Crafted data and cache files are refused with one paragraph naming the file and the fix.

Every case writes a bad file in a dataset's real format (tests/fixtures/events.py), loads it through
the real readers and expects a :class:`DataFileError` (a ``ConfigError``: exit status 2 on the command
line) whose message names the file and says how to clear it: at the start of a run (the cheap header
checks) and mid-run (a file that turned bad after the start), with and without DataLoader workers.
A few cases run the real ``python -m snntrain`` and check exit status 2 and no traceback.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from snntrain import ConfigError, build
from snntrain.data import checks
from snntrain.data.checks import DataFileError

from .fixtures import events as fx

T = 2
FRAME = (T, 2, 34, 34)  # N-MNIST frames at T=2


def load(name, root, **kw):
    return build("dataset", name, context={"T": T}, root=str(root), **kw)


@pytest.fixture
def root(tmp_path):
    """A private copy of the event fixtures (the tests spoil files in it)."""
    fx.write(tmp_path / "data")
    return tmp_path / "data"


def one_paragraph(err: BaseException, *words: str) -> str:
    msg = str(err)
    assert "\n" not in msg and "Traceback" not in msg and "Caught" not in msg
    for w in words:
        assert str(w) in msg, (w, msg)
    return msg


def cached(root: Path, tmp_path: Path):
    """An N-MNIST bundle whose frame cache is filled; returns (bundle, cache key folder)."""
    data = load("nmnist", root, cache_dir=str(tmp_path / "cache"))
    for i in range(len(data.train)):
        data.train[i]
    (key,) = (tmp_path / "cache" / "nmnist").iterdir()
    return data, key


# ------------------------------------------------------------------ the frame cache
BAD_FRAMES = {
    "string data": (dict(data=np.array([b"not frames"] * 4)), "holds text values, not frame counts"),
    "vlen strings": (dict(data=np.array(["a", "b"], dtype=h5py.string_dtype())), "holds text values, not frame counts"),
    "wrong shape": (dict(data=np.zeros((T + 1, 2, 34, 34), np.int16)), "shape [3, 2, 34, 34], not [2, 2, 34, 34]"),
    "string label": (dict(data=np.zeros(FRAME, np.int16), target=b"seven"), "holds the label as text [], not one integer"),
    "label too large": (dict(data=np.zeros(FRAME, np.int16), target=10), "holds the label 10; labels are 0-9"),
    "negative label": (dict(data=np.zeros(FRAME, np.int16), target=-1), "holds the label -1; labels are 0-9"),
    "vector label": (dict(data=np.zeros(FRAME, np.int16), target=np.array([1, 2])), "not one integer"),
    "nan frames": (dict(data=np.full(FRAME, np.nan, np.float32)), "not finite"),
    "external storage": (dict(shape=FRAME, dtype=np.uint8, external=[("/etc/passwd", 0, int(np.prod(FRAME)))]),
                         "stores 'data/0' in external files (/etc/passwd"),
    "oversize sample": (dict(shape=(200_000, 2, 128, 128), dtype=np.int16, chunks=(1, 2, 128, 128),
                             compression="lzf"), "declares a sample of 13.1 GB"),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_bad_cached_frame_is_refused_mid_run_and_at_start(case, root, tmp_path):
    data, key = cached(root, tmp_path)
    kw, expected = BAD_FRAMES[case]
    bad = key / "train" / "3_0.hdf5"
    fx.write_frame_file(bad, **kw)
    assert bad.stat().st_size < 100_000  # the oversize file declares 13 GB in a few kB
    with pytest.raises(DataFileError) as err:  # mid-run: the bundle was built before the file went bad
        data.train[3]
    one_paragraph(err.value, expected, bad, f"rm -r {key}", "dataset.cache=false")
    assert str(err.value).startswith("dataset.cache_dir: the cached frame file")
    with pytest.raises(DataFileError) as err:  # a new run: refused while building the data, before training
        load("nmnist", root, cache_dir=str(tmp_path / "cache"))
    one_paragraph(err.value, expected, bad)
    assert bad.is_file()  # refused, not overwritten


def test_oversize_sample_is_refused_from_the_header_before_reading(root, tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "MAX_SAMPLE_BYTES", 1_000_000)  # an 18.5 MB sample is over a 1 MB budget
    data, key = cached(root, tmp_path)
    fx.write_frame_file(key / "train" / "0_0.hdf5", shape=(4_000, 2, 34, 34), dtype=np.int16, chunks=True)

    def no_read(self, *args):
        raise AssertionError("a dataset was read")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", no_read)
    with pytest.raises(DataFileError, match=r"declares a sample of 18\.5 MB, more than the 1\.0 MB"):
        data.train[0]


def test_hdf5_links_out_of_the_cache_file_are_refused(root, tmp_path):
    data, key = cached(root, tmp_path)
    other = tmp_path / "elsewhere.h5"
    fx.write_frame_file(other, data=np.zeros(FRAME, np.int16), target=1)
    for link, kind in [(h5py.ExternalLink(str(other), "/data"), "ExternalLink"), (h5py.SoftLink("/target"), "SoftLink")]:
        bad = key / "train" / "1_0.hdf5"
        with h5py.File(bad, "w") as f:
            f["target/0"] = 1
            f["data"] = link
        with pytest.raises(DataFileError) as err:
            data.train[1]
        one_paragraph(err.value, bad, f"makes 'data' a {kind}", f"rm -r {key}")


def test_cache_file_linked_out_of_the_cache_is_refused(root, tmp_path):
    data, key = cached(root, tmp_path)
    outside = tmp_path / "outside_0.hdf5"
    fx.write_frame_file(outside, data=np.zeros(FRAME, np.int16), target=1)  # a valid frame file, but elsewhere
    bad = key / "train" / "2_0.hdf5"
    bad.unlink()
    bad.symlink_to(outside)
    with pytest.raises(DataFileError) as err:
        data.train[2]
    one_paragraph(err.value, bad, f"is a link to {outside}, outside {key}")
    with pytest.raises(DataFileError, match="is a link to"):
        load("nmnist", root, cache_dir=str(tmp_path / "cache"))


def test_garbage_cache_file_is_refused_not_rebinned(root, tmp_path):
    data, key = cached(root, tmp_path)
    bad = key / "test" / "0_0.hdf5"
    data.test[0]
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)  # a signature, then nothing
    with pytest.raises(DataFileError) as err:
        data.test[0]
    one_paragraph(err.value, bad, "could not be read as HDF5 (OSError", f"rm -r {key}")
    assert bad.read_bytes().endswith(b"\0" * 40)


def test_valid_cache_still_reads_and_missing_files_are_binned(root, tmp_path):
    """The checks refuse nothing the cache writes itself (a control for the cases above)."""
    data, key = cached(root, tmp_path)
    (key / "train" / "4_0.hdf5").unlink()
    again = load("nmnist", root, cache_dir=str(tmp_path / "cache"))
    plain = load("nmnist", root, cache=False)
    for i in range(len(plain.train)):
        assert torch.equal(again.train[i][0], plain.train[i][0]) and again.train[i][1] == plain.train[i][1]


# ------------------------------------------------------------------ DataLoader workers
def test_a_bad_sample_found_in_a_worker_is_the_same_paragraph(root, tmp_path):
    data, key = cached(root, tmp_path)
    bad = key / "train" / "5_0.hdf5"
    fx.write_frame_file(bad, data=np.zeros(FRAME, np.int16), target=b"five")
    with pytest.raises(DataFileError) as direct:
        data.train[5]
    loader = torch.utils.data.DataLoader(data.train, batch_size=4, num_workers=1)
    with pytest.raises(DataFileError) as err:
        list(loader)
    assert str(err.value) == str(direct.value)
    one_paragraph(err.value, bad)


def test_worker_text_is_unwrapped_only_for_the_wrapper_format():
    plain = DataFileError("dataset.root: x is bad. Delete it.")
    assert str(plain) == "dataset.root: x is bad. Delete it."
    wrapped = DataFileError("Caught DataFileError in DataLoader worker process 3.\nOriginal Traceback (most recent "
                            "call last):\n  File \"a.py\", line 1, in f\nsnntrain.data.checks.DataFileError: "
                            "dataset.root: x is bad. Delete it.\n")
    assert str(wrapped) == str(plain) and isinstance(wrapped, ConfigError) and wrapped.exit_code == 2


# ------------------------------------------------------------------ event files
def test_event_file_linked_outside_the_root_is_refused(root, tmp_path):
    data = load("nmnist", root, cache=False)
    bad = root / fx.samples("nmnist", "train")[0].path
    bad.unlink()
    bad.symlink_to("/etc/passwd")
    with pytest.raises(DataFileError) as err:  # mid-run
        data.train[0]
    one_paragraph(err.value, bad, "is a link to /etc/passwd, outside", root / "NMNIST", "link the whole folder")
    with pytest.raises(DataFileError) as err:  # at the start, before tonic lists the files
        load("nmnist", root, cache=False)
    one_paragraph(err.value, bad, "/etc/passwd")


def test_a_linked_dataset_folder_is_fine(root, tmp_path):
    """Data on another disk: the dataset folder may be a link, its files resolve inside it."""
    elsewhere = tmp_path / "disk" / "NMNIST"
    elsewhere.parent.mkdir()
    shutil.move(root / "NMNIST", elsewhere)
    (root / "NMNIST").symlink_to(elsewhere)
    data = load("nmnist", root, cache=False)
    assert data.train[0][1] == fx.samples("nmnist", "train")[0].label


@pytest.mark.parametrize("case", ["truncated", "outside the sensor", "bad polarity"])
def test_bad_nmnist_events_are_refused(case, root):
    data = load("nmnist", root, cache=False)
    bad = root / fx.samples("nmnist", "train")[1].path
    if case == "truncated":
        bad.write_bytes(bad.read_bytes()[:-2])
        expected = "not a whole number of 5-byte N-MNIST events"
    elif case == "outside the sensor":
        fx.write_nmnist_events(bad, [3, 200], [1, 2], [0, 1], [0, 100])
        expected = "holds events with x = 200, outside the sensor's 0-33"
    else:
        bad.write_bytes(b"".join(bytes([5, 5, 0, 0, i]) for i in range(4)) + bytes([40, 5, 0, 0, 9]))
        expected = "holds events with x = 40"
    with pytest.raises(DataFileError) as err:
        data.train[1]
    one_paragraph(err.value, bad, expected, "replace it with a fresh copy from https://www.garrickorchard.com")


def test_bad_gesture_npy_files_are_refused(root):
    data = load("dvsgesture", root, cache=False)
    paths = [root / s.path for s in fx.samples("dvsgesture", "train")]
    np.save(paths[0], np.array([["a", "b", "c", "d"]]))
    fx.write_npy_header(paths[1], (10**9, 4))  # declares 32 GB, holds nothing
    np.save(paths[2], np.zeros((5, 3), np.int64))
    # 10**9 events: 32 bytes each as read, 13 as tonic's (x, y, p, t) records
    for i, expected in enumerate(["holds a text array of shape [1, 4]", "declares a sample of 45.0 GB",
                                  "holds a int64 array of shape [5, 3], not the events [N, 4]"]):
        with pytest.raises(DataFileError) as err:
            data.train[i]
        one_paragraph(err.value, paths[i], expected)


def test_gesture_file_named_as_no_class_is_refused(root):
    (root / "DVSGesture/ibmGestureTrain/user01_fluorescent/11.npy").write_bytes(
        (root / "DVSGesture/ibmGestureTrain/user01_fluorescent/0.npy").read_bytes())
    with pytest.raises(DataFileError) as err:
        load("dvsgesture", root, cache=False)
    one_paragraph(err.value, "user01_fluorescent/11.npy is named as class 11; classes are 0-10")


def test_stray_folder_tonic_cannot_name_is_a_config_error(root):
    (root / "DVSGesture/ibmGestureTrain/notes").mkdir()
    with pytest.raises(ConfigError) as err:
        load("dvsgesture", root, cache=False)
    one_paragraph(err.value, "tonic could not list the dvsgesture files", "Move it out of")


# ------------------------------------------------------------------ SHD / SSC files
def _rewrite_shd(path: Path, edit) -> None:
    with h5py.File(path, "a") as f:
        edit(f)


@pytest.mark.parametrize("case", ["string labels", "label out of range", "external times", "linked keys",
                                  "fewer labels"])
def test_bad_shd_file_is_refused_at_the_start(case, root, tmp_path):
    path = root / "SHD" / "shd_train.h5"
    n = len(fx.samples("shd", "train"))

    def edit(f):
        if case == "string labels":
            del f["labels"]
            f["labels"] = np.array([b"one"] * n)
        elif case == "label out of range":
            labels = f["labels"][()]
            labels[7] = 25
            f["labels"][...] = labels
        elif case == "external times":
            del f["spikes/times"]
            f.create_dataset("spikes/times", shape=(n,), dtype=np.float32, external=[("/etc/passwd", 0, 4 * n)])
        elif case == "linked keys":
            del f["extra/keys"]
            f["extra/keys"] = h5py.ExternalLink("/etc/passwd", "/x")
        else:
            del f["labels"]
            f["labels"] = np.zeros(n - 1, np.uint8)

    _rewrite_shd(path, edit)
    expected = {"string labels": f"holds the labels as text [{n}], not one integer per sample",
                "label out of range": "holds the label 25; labels are 0-19",
                "external times": "stores 'spikes/times' in external files (/etc/passwd",
                "linked keys": "makes 'extra/keys' a ExternalLink (to /etc/passwd/x)",
                "fewer labels": f"holds {n - 1} labels for {n} / {n} spike rows"}[case]
    with pytest.raises(DataFileError) as err:
        load("shd", root, cache=False)
    one_paragraph(err.value, path, expected, "zenkelab.org")


def test_shd_spikes_outside_the_700_channels_are_refused_mid_run(root):
    data = load("shd", root, cache=False)
    path = root / "SHD" / "shd_test.h5"
    with h5py.File(path, "a") as f:
        units = f["spikes/units"][4]
        units[0] = 900
        f["spikes/units"][4] = units
    with pytest.raises(DataFileError) as err:
        data.test[4]
    one_paragraph(err.value, path, "holds events with x = 900, outside the sensor's 0-699")


# ------------------------------------------------------------------ the command line
def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SNNTRAIN_DATA"}
    return subprocess.run([sys.executable, "-m", "snntrain", "dataset=nmnist", "T=2", "trainer.epochs=1",
                           "trainer.limit_batches=2", "trainer.batch_size=4", "trainer.progress=false",
                           "hydra.run.dir=run", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def assert_refused(r: subprocess.CompletedProcess, *words) -> None:
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr + r.stdout and "Caught" not in r.stderr
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("snntrain: error:")]
    assert len(line) == 1, r.stderr[-3000:]
    for w in words:
        assert str(w) in line[0], (w, line[0])


@pytest.mark.slow
def test_cli_refuses_a_string_frame_in_the_cache_at_the_start(root, tmp_path):
    _, key = cached(root, tmp_path)
    bad = key / "train" / "0_0.hdf5"
    fx.write_frame_file(bad, data=np.array([b"x"] * 3))
    r = run_cli(f"dataset.root={root}", f"dataset.cache_dir={tmp_path / 'cache'}", cwd=tmp_path)
    assert_refused(r, bad, f"rm -r {key}")


@pytest.mark.slow
def test_cli_refuses_bad_events_found_by_a_loader_worker_mid_run(root, tmp_path):
    for s in fx.samples("nmnist", "train"):  # every train sample: the first batch meets one
        fx.write_nmnist_events(root / s.path, [1, 250], [1, 1], [0, 0], [0, 10])
    r = run_cli(f"dataset.root={root}", "dataset.cache=false", "trainer.num_workers=1", cwd=tmp_path)
    assert_refused(r, "holds events with x = 250, outside the sensor's 0-33", root / "NMNIST" / "Train")


@pytest.mark.slow
def test_cli_refuses_an_event_file_linked_to_etc_passwd(root, tmp_path):
    bad = root / fx.samples("nmnist", "test")[0].path
    bad.unlink()
    bad.symlink_to("/etc/passwd")
    r = run_cli(f"dataset.root={root}", "dataset.cache=false", cwd=tmp_path)
    assert_refused(r, bad, "is a link to /etc/passwd")


# ------------------------------------------------------------------ what the cache writes
def test_cache_writes_never_follow_a_planted_link(root, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    data = load("nmnist", root, cache_dir=str(tmp_path / "cache"))
    (key,) = (tmp_path / "cache" / "nmnist").iterdir()
    (key / "settings.json").unlink()
    (key / "settings.json").symlink_to(victim)  # an existing link is left alone
    load("nmnist", root, cache_dir=str(tmp_path / "cache"))
    tmp = key / "train" / f".0_0.hdf5.{os.getpid()}.tmp"
    tmp.symlink_to(victim)  # after the start's check: a link where the sample's temporary file goes
    x, y = data.train[0]
    assert victim.read_text() == "keep me"
    assert (key / "train" / "0_0.hdf5").is_file() and not (key / "train" / "0_0.hdf5").is_symlink()
    assert not tmp.exists() and y == fx.samples("nmnist", "train")[0].label


def test_a_pipe_in_the_dataset_folder_is_refused_not_waited_on(root):
    fifo = root / "NMNIST" / "Train" / "3" / "00999.bin"
    os.mkfifo(fifo)
    with pytest.raises(DataFileError) as err:
        load("nmnist", root, cache=False)
    one_paragraph(err.value, fifo, "is neither a file nor a folder")


def test_virtual_dataset_in_a_cache_file_is_refused(root, tmp_path):
    data, key = cached(root, tmp_path)
    other = tmp_path / "other.h5"
    fx.write_frame_file(other, data=np.zeros(FRAME, np.int16), target=1)
    layout = h5py.VirtualLayout(shape=FRAME, dtype=np.int16)
    layout[...] = h5py.VirtualSource(str(other), "data/0", shape=FRAME)
    bad = key / "train" / "6_0.hdf5"
    with h5py.File(bad, "w") as f:
        f.create_virtual_dataset("data/0", layout)
        f["target/0"] = 1
    with pytest.raises(DataFileError) as err:
        data.train[6]
    one_paragraph(err.value, bad, "makes 'data/0' a virtual dataset")
