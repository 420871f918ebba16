"""The real MNIST files (../shared/data/mnist, gzipped as the official download): loading and the PLIF recipe.

Skipped where ../shared is absent (a user's clone).
"""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from .conftest import compose_cfg

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
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
