"""snntrain-eval re-scores a run's checkpoint exactly as the run did."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from snntrain.evaluation import evaluate_checkpoint, main
from snntrain.training import train

from .conftest import compose_cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    # the rate encoder is stochastic: equality needs the deterministic evaluation
    train(compose_cfg("encoder=rate", "trainer.epochs=2", "trainer.limit_batches=5",
                      "trainer.progress=false"), d)
    return d


def test_eval_reproduces_metrics_json(run, capsys):
    saved = json.loads((run / "metrics.json").read_text())
    main([str(run), "--json"])
    got = json.loads(capsys.readouterr().out)
    assert got["test_acc"] == saved["test_acc"] and got["test_loss"] == pytest.approx(saved["test_loss"], rel=1e-6)
    assert got["firing_rates"] == pytest.approx(saved["firing_rates"], rel=1e-6)
    main([str(run)])
    out = capsys.readouterr().out
    assert f"test accuracy {saved['test_acc']:.4f}" in out and "stage1" in out


def test_best_checkpoint_scores_the_best_accuracy(run):
    saved = json.loads((run / "metrics.json").read_text())
    assert evaluate_checkpoint(str(run), checkpoint="best")["test_acc"] == saved["best_test_acc"]


def test_overrides_and_errors(run, tmp_path):
    from snntrain import ConfigError

    with pytest.raises(ConfigError, match=r"^encoder\.gain:"):  # the override reaches the rebuilt parts
        evaluate_checkpoint(str(run), ["encoder.gain=0"])
    out = subprocess.run([sys.executable, "-m", "snntrain.evaluation", str(tmp_path / "nowhere")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "checkpoint: no checkpoint at" in out.stderr and "Traceback" not in out.stderr
    bad = subprocess.run([sys.executable, "-m", "snntrain.evaluation", str(run), "nosuch.key=1"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "nosuch.key" in bad.stderr and "Traceback" not in bad.stderr
