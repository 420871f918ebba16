"""``snntrain resume=<dir>`` alone continues the run with its own overrides, says which, and logs where it resumed."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from snntrain.resume_args import with_run_overrides


def test_only_a_bare_resume_is_expanded(tmp_path, capsys):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["norm=tebn", "model=vgg", "resume=/old"]))
    assert with_run_overrides([f"resume={run}"]) == ["norm=tebn", "model=vgg", f"resume={run}"]
    assert "norm=tebn model=vgg" in capsys.readouterr().err
    assert with_run_overrides([f"resume={run}", "model=mlp"]) == [f"resume={run}", "model=mlp"]  # a config change
    assert with_run_overrides([f"resume={run}", "trainer.epochs=9", "hydra.run.dir=x"]) == [
        "norm=tebn", "model=vgg", f"resume={run}", "trainer.epochs=9", "hydra.run.dir=x"]
    for argv in ([f"resume={run}", "seed=1"], ["seed=1"], ["resume="], [f"resume={tmp_path / 'none'}"],
                 ["-m", f"resume={run}"], ["resume=" + "a" * 300]):
        assert with_run_overrides(argv) == argv
    (run / ".hydra" / "overrides.yaml").write_text("{not: a list}")
    assert with_run_overrides([f"resume={run}"]) == [f"resume={run}"]


@pytest.mark.slow
def test_resume_alone_continues_the_run(tmp_path):
    def snntrain(*args):
        return subprocess.run([sys.executable, "-m", "snntrain", *args, "trainer.progress=false"], capture_output=True,
                              text=True, cwd=tmp_path)

    first = tmp_path / "first"
    done = snntrain("norm=bn", "model.hidden=[16]", "trainer.limit_batches=4", "trainer.epochs=1",
                    f"hydra.run.dir={first}")
    assert done.returncode == 0, done.stderr[-2000:]
    # the run was meant to last two epochs: its record says so (as a run stopped after epoch 1 would)
    (first / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["norm=bn", "model.hidden=[16]",
                                                                     "trainer.limit_batches=4", "trainer.epochs=2"]))
    again = snntrain(f"resume={first}", f"hydra.run.dir={tmp_path / 'second'}")
    text = again.stdout + again.stderr
    assert again.returncode == 0, text[-2000:]
    assert "resuming with the run's own overrides" in text and "norm=bn 'model.hidden=[16]' trainer.limit_batches=4 trainer.epochs=2" in text
    assert f"resumed from {first / 'checkpoints' / 'last.pt'}: continuing at epoch 2, batch 1" in text
    metrics = json.loads((tmp_path / "second" / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and metrics["resumed_from"]
    assert "epoch 1/2" not in text  # only the remaining epoch was trained
