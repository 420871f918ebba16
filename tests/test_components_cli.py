"""The new models and norms through the command line: one run, and a sweep over the batch-norm variants."""
from __future__ import annotations

import json

import pytest

from .test_cli import assert_run_outputs, run_cli

TINY = ["trainer.epochs=1", "trainer.limit_batches=4", "trainer.batch_size=16", "trainer.progress=false",
        "trainer.log_images_every=null"]
SMALL_SF = ["model.dim=32", "model.heads=2", "model.depth=1"]


@pytest.mark.slow
def test_spikformer_with_tebn_trains_through_the_cli(tmp_path):
    r = run_cli("model=spikformer", "norm=tebn", *SMALL_SF, *TINY, "hydra.run.dir=run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = assert_run_outputs(tmp_path / "run")
    assert "name: spikformer" in (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert metrics["status"] == "finished" and len(metrics["firing_rates"]) > 5


@pytest.mark.slow
def test_sweep_over_batch_norm_variants_on_a_transformer(tmp_path):
    norms = ["bn", "tdbn", "tebn", "mpbn", "tab"]
    r = run_cli("-m", "model=spike_driven_transformer", "model.dim=32", "model.heads=2", "model.depth=1",
                f"norm={','.join(norms)}", *TINY, "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = sorted((p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name[0].isdigit()),
                  key=lambda p: int(p.name.split("_")[0]))
    assert len(runs) == len(norms)
    for run, norm in zip(runs, norms):
        metrics = assert_run_outputs(run)
        assert f"name: {norm}" in (run / ".hydra" / "config.yaml").read_text()
        assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
        assert 0.0 <= metrics["test_acc"] <= 1.0


@pytest.mark.slow
def test_sltt_on_vgg_with_tdbn_at_T16_trains_through_the_cli(tmp_path):
    r = run_cli("trainer=sltt", "model=vgg", "norm=tdbn", "T=16", *TINY, "hydra.run.dir=run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = assert_run_outputs(tmp_path / "run")
    assert metrics["status"] == "finished"
    assert "name: sltt" in (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
