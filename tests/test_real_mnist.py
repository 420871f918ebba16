"""The real MNIST files (../shared/data/mnist, gzipped as the official download): loading and the PLIF recipe.

Skipped where ../shared is absent (a user's clone); ``SNNTRAIN_MNIST_DIR`` names another folder of the four .gz files.
"""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from .conftest import compose_cfg

SHARED = Path(os.environ.get("SNNTRAIN_MNIST_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
pytestmark = pytest.mark.skipif(not (SHARED / "train-images-idx3-ubyte.gz").is_file(), reason="../shared/data/mnist absent")

#: class counts of the training labels, from ../shared/data/mnist/README.md
COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    raw = tmp_path_factory.mktemp("mnist") / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in SHARED.glob("*.gz"):  # torchvision reads the uncompressed files
        with gzip.open(gz) as src, open(raw / gz.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return raw.parents[1]


def test_real_mnist_loads_with_the_documented_counts(root):
    from snntrain import build

    data = build("dataset", "mnist", root=str(root), normalize=False)
    assert (len(data.train), len(data.test), data.in_shape, data.num_classes) == (60000, 10000, (1, 28, 28), 10)
    labels = torch.as_tensor(data.train.targets) if hasattr(data.train, "targets") else torch.tensor(
        [data.train[i][1] for i in range(len(data.train))])
    assert torch.bincount(labels, minlength=10).tolist() == COUNTS
    x, _ = data.test[0]
    assert x.shape == (1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1


def test_plif_recipe_trains_on_real_mnist(root):
    from snntrain.training import build_trainer

    trainer = build_trainer(compose_cfg("experiment=plif_cnn_mnist", f"dataset.root={root}", "trainer.batch_size=8"))
    trainer.train_mode()
    x, y = next(iter(torch.utils.data.DataLoader(trainer.data.train, batch_size=8)))
    before = trainer.model[0].module.weight.detach().clone()
    stats = [trainer.train_step(x, y) for _ in range(2)]
    assert all(torch.isfinite(s["loss"]) for s in stats)
    assert not torch.equal(before, trainer.model[0].module.weight)  # the optimizer stepped


def _spoiled(root: Path, tmp_path: Path, name: str, edit) -> Path:
    """A copy of the real files in which ``name`` is replaced by ``edit(its bytes)``."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (root / "MNIST" / "raw").iterdir():
        shutil.copyfile(f, raw / f.name)
    (raw / name).write_bytes(edit((raw / name).read_bytes()))
    return tmp_path


def _label_12(b: bytes) -> bytes:
    return b[:8 + 5] + bytes([12]) + b[8 + 6:]  # sample 5's label becomes 12


@pytest.mark.parametrize("name,edit,expected", [
    ("train-images-idx3-ubyte", lambda b: b"\x00\x00\x08\x02" + b[4:],
     "train-images-idx3-ubyte is not an idx file of this kind (magic number 0x00000802, expected 0x00000803)"),
    ("t10k-images-idx3-ubyte", lambda b: b[: len(b) // 2],
     "t10k-images-idx3-ubyte holds 3920008 bytes but its header [10000, 28, 28] needs 7840016"),
    ("train-labels-idx1-ubyte", lambda b: b[:-1],
     "train-labels-idx1-ubyte holds 60007 bytes but its header [60000] needs 60008"),
    ("train-labels-idx1-ubyte", _label_12, "train-labels-idx1-ubyte holds the label 12; labels are 0-9"),
    ("t10k-labels-idx1-ubyte", lambda b: b[:4] + (9999).to_bytes(4, "big") + b[8:-1],
     "t10k-images-idx3-ubyte holds 10000 images but t10k-labels-idx1-ubyte holds 9999 labels"),
])
def test_spoiled_real_mnist_files_are_one_paragraph(root, tmp_path, name, edit, expected):
    from snntrain import ConfigError, build

    spoiled = _spoiled(root, tmp_path, name, edit)
    with pytest.raises(ConfigError) as err:
        build("dataset", "mnist", root=str(spoiled))
    msg = str(err.value)
    assert expected in msg and str(spoiled / "MNIST" / "raw") in msg, msg
    assert "\n" not in msg and msg.startswith("dataset.root:") and "ossci-datasets" in msg
