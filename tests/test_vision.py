"""MNIST, Fashion-MNIST, CIFAR-10/100 read through the real code from files in their official formats.

The files come from tests/fixtures/vision.py (the ``data_root`` fixture); every value a
loader returns is compared with the bytes that were written.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision

from snntrain import ConfigError, build
from snntrain.data import vision

from .conftest import compose_cfg
from .fixtures import vision as fx

DATASETS = ["mnist", "fashion_mnist", "cifar10", "cifar100"]
SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32)}
CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}
STATS = {
    "mnist": (vision.MNIST_MEAN, vision.MNIST_STD),
    "fashion_mnist": (vision.FASHION_MNIST_MEAN, vision.FASHION_MNIST_STD),
    "cifar10": (vision.CIFAR10_MEAN, vision.CIFAR10_STD),
    "cifar100": (vision.CIFAR100_MEAN, vision.CIFAR100_STD),
}
TV_CLASS = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST,
            "cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}
#: every file torchvision reads, relative to root
FILES = {
    "mnist": [f"MNIST/raw/{f}" for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")],
    "cifar10": [f"cifar-10-batches-py/{f}" for f in
                ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta")],
    "cifar100": [f"cifar-100-python/{f}" for f in ("train", "test", "meta")],
}
FILES["fashion_mnist"] = [f.replace("MNIST/", "FashionMNIST/") for f in FILES["mnist"]]


def load(name, root, **kw):
    return build("dataset", name, context={"T": 4}, root=str(root), **kw)


def raw_image(name: str, split: str, i: int) -> torch.Tensor:
    """Sample ``i`` as written, uint8 ``[C, H, W]``."""
    pixels = fx.EXPECTED[name][split][0][i]
    return torch.from_numpy(pixels.reshape(SHAPES[name]).copy())


def as_bytes(x: torch.Tensor) -> torch.Tensor:
    """A [0, 1] sample back to the uint8 values it came from."""
    return (x * 255).round().to(torch.uint8)


# ------------------------------------------------------------------ contents
@pytest.mark.parametrize("name", DATASETS)
def test_samples_and_labels_are_the_bytes_written(name, data_root):
    data = load(name, data_root, normalize=False, augment=False)
    assert data.in_shape == SHAPES[name] and data.num_classes == CLASSES[name] and not data.temporal
    assert issubclass(data.train.reader, TV_CLASS[name]) and issubclass(data.test.reader, TV_CLASS[name])  # torchvision's reader
    for split, ds in (("train", data.train), ("test", data.test)):
        images, labels = fx.EXPECTED[name][split]
        assert len(ds) == len(labels)
        got = [ds[i] for i in range(len(ds))]
        for i, (x, y) in enumerate(got):
            assert x.shape == SHAPES[name] and x.dtype == torch.float32
            assert torch.equal(as_bytes(x), raw_image(name, split, i)), f"{split}[{i}] pixels differ"
        assert [y for _, y in got] == labels.tolist()
    assert set(fx.EXPECTED[name]["train"][1].tolist()) == set(range(CLASSES[name]))  # fixture covers every class


@pytest.mark.parametrize("name", DATASETS)
def test_normalization_uses_the_dataset_mean_and_std(name, data_root):
    data = load(name, data_root, augment=False)  # normalize defaults to true
    mean, std = STATS[name]
    x, _ = data.test[3]
    raw = raw_image(name, "test", 3).double() / 255
    expected = (raw - torch.tensor(mean, dtype=torch.float64)[:, None, None]) / torch.tensor(std, dtype=torch.float64)[:, None, None]
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.double(), expected, rtol=0, atol=1e-5)
    # a few pixels by hand, straight from the file's bytes
    pixels = fx.EXPECTED[name]["test"][0][3].reshape(SHAPES[name])
    for c, h, w in [(0, 0, 0), (0, 27, 27), (len(mean) - 1, 5, 17)]:
        assert float(x[c, h, w]) == pytest.approx((pixels[c, h, w] / 255 - mean[c]) / std[c], abs=1e-5)


def test_channel_stats_are_the_published_values():
    assert vision.MNIST_MEAN == (0.1307,) and vision.MNIST_STD == (0.3081,)
    assert vision.CIFAR10_MEAN == (0.4914, 0.4822, 0.4465)
    assert vision.CIFAR100_MEAN == (0.5071, 0.4865, 0.4409)
    for mean, std in STATS.values():
        assert len(mean) == len(std) and all(0 < m < 1 for m in mean) and all(0 < s < 0.5 for s in std)


def test_cifar_class_names_come_from_the_meta_files(data_root):
    assert load("cifar10", data_root).train.classes == fx.CIFAR10_LABELS
    assert load("cifar100", data_root).test.classes == fx.CIFAR100_FINE


# ------------------------------------------------------------------ augmentation
def _crops(raw: torch.Tensor, pad: int, flips: bool) -> list[torch.Tensor]:
    """Every image RandomCrop(padding=pad) (+ horizontal flip) can make from ``raw``."""
    c, h, w = raw.shape
    padded = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=raw.dtype)
    padded[:, pad:pad + h, pad:pad + w] = raw
    out = [padded[:, i:i + h, j:j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]
    return out + [o.flip(-1) for o in out] if flips else out


@pytest.mark.parametrize("name", DATASETS)
def test_augmentation_changes_train_samples_only(name, data_root):
    torch.manual_seed(0)
    data = load(name, data_root, normalize=False, augment=True, crop_padding=2)
    raw_train, raw_test = raw_image(name, "train", 0), raw_image(name, "test", 0)
    allowed = _crops(raw_train, 2, flips=name != "mnist")
    draws = [as_bytes(data.train[0][0]) for _ in range(12)]
    assert any(not torch.equal(d, raw_train) for d in draws), "augment=true left every train draw unchanged"
    assert len({d.numpy().tobytes() for d in draws}) > 1, "the augmentation is not random"
    for d in draws:  # each draw is a padded crop (and maybe a mirror image) of the written sample
        assert any(torch.equal(d, a) for a in allowed)
    for _ in range(5):
        assert torch.equal(as_bytes(data.test[0][0]), raw_test), "the test split must not be augmented"
    assert data.train[0][1] == int(fx.EXPECTED[name]["train"][1][0])


def test_mnist_augmentation_never_mirrors(data_root):
    torch.manual_seed(1)
    data = load("mnist", data_root, normalize=False, augment=True, crop_padding=0)  # no crop: only a flip could change it
    raw = raw_image("mnist", "train", 5)
    assert all(torch.equal(as_bytes(data.train[5][0]), raw) for _ in range(10))


@pytest.mark.parametrize("name,augmented", [("mnist", False), ("fashion_mnist", False), ("cifar10", True), ("cifar100", True)])
def test_augmentation_defaults(name, augmented, data_root):
    torch.manual_seed(0)
    data = load(name, data_root, normalize=False)
    raw = raw_image(name, "train", 1)
    unchanged = all(torch.equal(as_bytes(data.train[1][0]), raw) for _ in range(12))
    assert unchanged != augmented
    cfg = compose_cfg(f"dataset={name}")
    assert cfg.dataset.augment is augmented and cfg.dataset.normalize is True and cfg.dataset.download is False


def test_crop_padding_must_not_be_negative(data_root):
    with pytest.raises(ConfigError, match=r"dataset\.crop_padding: must be >= 0"):
        load("cifar10", data_root, crop_padding=-1)


def test_cifar_dataset_pickles_for_spawned_workers(data_root):
    train = load("cifar10", data_root, augment=False).train
    again = pickle.loads(pickle.dumps(train))
    assert type(again) is type(train) and torch.equal(again[7][0], train[7][0])


# ------------------------------------------------------------------ missing files
@pytest.mark.parametrize("name", DATASETS)
def test_missing_files_are_named_and_nothing_is_created(name, tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as err:
        load(name, root)
    msg = str(err.value)
    assert msg.startswith("dataset.root:")
    for rel in FILES[name][:6]:  # require_files lists up to six names
        assert rel.rsplit("/", 1)[1] in msg
    assert str(root / FILES[name][0].rsplit("/", 1)[0]) in msg
    assert "https://" in msg and "Traceback" not in msg
    assert not root.exists(), "a failed load must not create folders"


def test_only_the_missing_cifar_files_are_named(data_root, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for f in (data_root / "cifar-10-batches-py").iterdir():
        if f.name not in ("data_batch_3", "batches.meta"):
            (folder / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ConfigError, match=r"missing: data_batch_3, batches\.meta\)") as err:
        load("cifar10", tmp_path)
    assert "cifar-10-python.tar.gz" in str(err.value)


def test_corrupt_file_is_a_config_error(data_root, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_root / "MNIST" / "raw").iterdir():
        (raw / f.name).write_bytes(f.read_bytes())
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03 not an idx file")
    with pytest.raises(ConfigError, match="could not be read"):
        load("mnist", tmp_path)


def test_legacy_processed_mnist_cache_is_enough(tmp_path):
    # torchvision < 0.9 converted the raw files to processed/{training,test}.pt; torchvision still reads those
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir(parents=True)
    for split, file in (("train", "training.pt"), ("test", "test.pt")):
        images, labels = fx.EXPECTED["mnist"][split]
        torch.save((torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))), processed / file)
    data = load("mnist", tmp_path, normalize=False)
    assert len(data.train) == fx.MNIST_TRAIN and len(data.test) == fx.MNIST_TEST
    assert torch.equal(as_bytes(data.test[2][0]), raw_image("mnist", "test", 2))


def test_download_failure_is_a_config_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(ConfigError, match=r"dataset\.download: fetching mnist .* failed.*ossci-datasets"):
        load("mnist", tmp_path, download=True)
    with pytest.raises(ConfigError, match=r"dataset\.download: fetching cifar100 .* failed.*cifar-100-python\.tar\.gz"):
        load("cifar100", tmp_path, download=True)


def test_download_skips_files_already_there(data_root, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download attempted although the files are present")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", no_network)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", no_network)
    for name in DATASETS:
        assert len(load(name, data_root, download=True).test) == len(fx.EXPECTED[name]["test"][1])


# ------------------------------------------------------------------ configs and the command line
def test_root_defaults_to_the_snntrain_data_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("SNNTRAIN_DATA", raising=False)
    assert compose_cfg("dataset=cifar10").dataset.root == "data"
    monkeypatch.setenv("SNNTRAIN_DATA", str(tmp_path))
    assert compose_cfg("dataset=mnist").dataset.root == str(tmp_path)


def run_cli(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "SNNTRAIN_DATA"}
    return subprocess.run([sys.executable, "-m", "snntrain", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env=env)


@pytest.mark.slow
def test_cli_sweep_trains_on_every_vision_dataset(data_root, tmp_path):
    # `++`: Hydra first composes a multirun with the primary config's dataset (digits, which has no
    # `root`), so a plain `dataset.root=` is rejected there; `++` sets it whether or not it exists
    r = run_cli("-m", f"dataset={','.join(DATASETS)}", f"++dataset.root={data_root}", "trainer.epochs=1",
                "trainer.limit_batches=2", "trainer.progress=false", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    for i, name in enumerate(DATASETS):
        run = next((tmp_path / "sweep").glob(f"{i}_dataset={name}*"))  # named by the overrides
        assert f"name: {name}" in (run / ".hydra" / "config.yaml").read_text()
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["epoch"] == 1 and 0 <= metrics["test_acc"] <= 1


def test_cli_missing_root_names_the_files(tmp_path):
    missing = tmp_path / "no_data_here"
    r = run_cli("dataset=cifar10", f"dataset.root={missing}", "trainer.epochs=1", "hydra.run.dir=run", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    for f in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        assert f in out
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in out
    assert "Traceback" not in out
    assert not missing.exists() and not list(tmp_path.rglob("*.pt"))


# ------------------------------------------------------------------ files that are not what they claim
def _copy(data_root, tmp_path, folder: str):
    shutil.copytree(data_root / folder, tmp_path / folder)
    return tmp_path / folder


def test_file_linked_outside_the_dataset_folder_is_refused(data_root, tmp_path):
    raw = _copy(data_root, tmp_path, "MNIST") / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte").symlink_to("/etc/passwd")
    with pytest.raises(ConfigError) as err:
        load("mnist", tmp_path)
    msg = str(err.value)
    assert f"{raw / 't10k-labels-idx1-ubyte'} is a link to /etc/passwd, outside {tmp_path / 'MNIST'}" in msg
    assert "\n" not in msg and "ossci-datasets" in msg


def test_a_linked_dataset_folder_is_fine(data_root, tmp_path):
    (tmp_path / "MNIST").symlink_to(data_root / "MNIST")
    assert len(load("mnist", tmp_path).test) == fx.MNIST_TEST


@pytest.mark.parametrize("spoil,expected", [
    (lambda x, y: (x, y.index_fill(0, torch.tensor([3]), 12)), "holds the label 12; labels are 0-9"),
    (lambda x, y: (x.float(), y), "holds float32 images of shape [28, 28], not uint8 [28, 28]"),
    (lambda x, y: (x[:, :14], y), "holds uint8 images of shape [14, 28], not uint8 [28, 28]"),
    (lambda x, y: (x, y[:-1]), "has [59] int64 labels for 60 images"),
    (lambda x, y: (x, y.float()), "has [60] float32 labels"),
])
def test_legacy_processed_mnist_files_are_checked(tmp_path, spoil, expected):
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir(parents=True)
    for split, file in (("train", "training.pt"), ("test", "test.pt")):
        images, labels = fx.EXPECTED["mnist"][split]
        x, y = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
        torch.save(spoil(x, y) if split == "train" else (x, y), processed / file)
    with pytest.raises(ConfigError) as err:
        load("mnist", tmp_path)
    msg = str(err.value)
    assert f"the mnist train split in {tmp_path / 'MNIST'} " in msg and expected in msg, msg
    assert "\n" not in msg


def test_cifar_label_outside_the_classes_is_refused(data_root, tmp_path):
    folder = _copy(data_root, tmp_path, "cifar-10-batches-py")
    batch = vision.load_pickle(folder / "data_batch_2")
    batch["labels"][0] = 10
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(ConfigError, match=r"could not be read \(ValueError: labels \[10\] are outside the 10 classes"):
        load("cifar10", tmp_path)


def test_files_larger_than_the_memory_they_may_take_are_refused(data_root, tmp_path, monkeypatch):
    _copy(data_root, tmp_path, "MNIST")
    monkeypatch.setattr(vision, "available_memory", lambda: 100_000)  # the fixture files hold 62.8 KB
    with pytest.raises(ConfigError, match=r"hold 62\.8 KB; they are read into memory whole, and only 50\.0 KB"):
        load("mnist", tmp_path)


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("normalize", [False, True])
def test_batches_read_at_once_equal_torchvisions_per_image_pipeline(name, normalize, data_root):
    """A split without augmentation is one uint8 tensor read a batch at a time; every value equals what
    torchvision's per-image ToTensor (and Normalize) gives, bit for bit."""
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    from snntrain.data.images import InMemoryImages

    data = load(name, data_root, normalize=normalize, augment=False)
    for ds in (data.train, data.test):
        assert isinstance(ds, InMemoryImages)
        tv = ds.reader(str(data_root), train=ds is data.train, transform=T.Compose(
            [T.ToTensor()] + ([T.Normalize(*STATS[name])] if normalize else [])))
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).tolist()
        for (x, y), (x_ref, y_ref) in zip(DataLoader(ds, batch_size=5, sampler=order),
                                          DataLoader(tv, batch_size=5, sampler=order)):
            assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
        assert torch.equal(ds[3][0], tv[3][0]) and ds[3][1] == tv[3][1]
