"""Every experiment (a paper's recipe) composes, states its paper and number, and trains two steps on fixture data."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from snntrain.training import train

from .conftest import compose_cfg

EXPERIMENTS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs" / "experiment").glob("*.yaml"))


def test_there_are_recipes():
    assert {"plif_cnn_mnist", "bntt_vgg9_cifar10"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_header_names_the_paper_and_its_accuracy(name):
    text = (Path(__file__).resolve().parents[1] / "configs" / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    header = " ".join(line[1:].strip() for line in text.splitlines() if line.startswith("#"))
    assert re.search(r"Paper: .+?, [^.]*(19|20)\d\d", header), "the header names the paper and its year"
    assert re.search(r"^# Reported test accuracy: \d+(\.\d+)? %", text, re.M)
    paper, model, *dataset = name.split("_")
    cfg = compose_cfg(f"experiment={name}")
    assert "_".join(dataset) == cfg.dataset.name  # <paper>_<model>_<dataset>


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_trains_two_steps(name, data_root, tmp_path):
    overrides = [f"experiment={name}", f"dataset.root={data_root}", "trainer.limit_batches=2", "trainer.epochs=1",
                 "trainer.batch_size=4", "trainer.eval_batch_size=8", "trainer.progress=false",
                 "trainer.log_images_every=null"]
    if "width" in compose_cfg(*overrides).model:  # the paper's layout at a quarter of the channels: the same code
        overrides.append("model.width=0.25")      # paths at 1/16 of the work (full widths: test_models' counts)
    cfg = compose_cfg(*overrides)
    metrics = train(cfg, tmp_path)
    assert metrics["status"] == "finished"
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["position"]["step"] == 2
    assert 0.0 <= metrics["test_acc"] <= 1.0
    assert set(metrics["firing_rates"]) == {f"stage{i}" for i in range(1, len(metrics["firing_rates"]) + 1)}
