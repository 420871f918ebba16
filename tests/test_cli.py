"""The command line as a user runs it: subprocesses, sweeps, errors, a non-editable install."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NORMS = ["none", "bn", "bntt", "tdbn", "tebn", "neunorm"]
pytestmark = pytest.mark.slow


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snntrain", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {})},
    )


def assert_run_outputs(run: Path) -> dict:
    for rel in (".hydra/config.yaml", "checkpoints/last.pt", "checkpoints/best.pt", "metrics.json"):
        assert (run / rel).is_file(), f"{run} lacks {rel}"
    assert any((run / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test_acc", "best_test_acc", "epoch", "train_time_s"} <= set(metrics)
    return metrics


def test_vgg_sweep_over_every_norm_gives_one_run_dir_each(tmp_path):
    r = run_cli("-m", "model=vgg", f"norm={','.join(NORMS)}", "trainer.epochs=1", "trainer.progress=false",
                "trainer.log_images_every=null", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name.split("_")[0].isdigit()]
    runs.sort(key=lambda p: int(p.name.split("_")[0]))
    assert len(runs) == len(NORMS)
    assert [p.name for p in runs] == [f"{i}_model=vgg,norm={n},trainer.epochs=1,trainer.log_images_every=null" for i, n in enumerate(NORMS)]  # by overrides
    for run, norm in zip(runs, NORMS):
        metrics = assert_run_outputs(run)
        assert f"name: {norm}" in (run / ".hydra" / "config.yaml").read_text()
        assert metrics["epoch"] == 1 and metrics["test_acc"] > 0.1  # better than chance after one epoch


def test_plain_snntrain_reaches_97_percent_in_outputs_date_time(tmp_path):
    r = run_cli(cwd=tmp_path)  # exactly what a new user types
    assert r.returncode == 0, r.stderr[-3000:]
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1 and runs[0].parent.name.count("-") == 2
    metrics = assert_run_outputs(runs[0])
    assert metrics["test_acc"] >= 0.97
    assert f"test accuracy {metrics['test_acc']:.4f}" in r.stdout  # the number printed is the one measured


@pytest.mark.parametrize(
    "override,expected",
    [
        ("norm=nope", "norm: no norm named 'nope'. Did you mean norm=none? Valid choices: bn, bntt, layernorm"),
        ("foo=1", "foo: not a key of the snntrain config. Valid keys: model, neuron"),
        ("T=0", "T: expected an integer >= 1"),
        ("neuron.decay=1.5", "neuron.decay: must be in (0, 1]"),
        ("optimizer.lr=-0.01", "optimizer.lr: must be > 0"),
        ("+neuron.bogus=1", "neuron.bogus: neuron 'lif' has no argument 'bogus'. Valid arguments: decay"),
        ("resume=missing_dir", "resume: no checkpoint at"),
    ],
)
def test_bad_input_exits_nonzero_with_a_message_and_no_checkpoint(tmp_path, override, expected):
    r = run_cli(override, "trainer.epochs=1", "hydra.run.dir=run", cwd=tmp_path)
    assert r.returncode == 2
    assert expected in r.stderr + r.stdout
    assert r.stderr.startswith(f"snntrain: error: {override.lstrip('+').split('=')[0]}:")
    assert "Traceback" not in r.stderr + r.stdout
    assert not list(tmp_path.rglob("*.pt"))


def test_non_editable_install_runs_from_elsewhere_with_user_config_dir(tmp_path):
    site = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet", "--target", str(site), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert (site / "snntrain" / "configs" / "norm" / "tebn.yaml").is_file()
    env = {"PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import snntrain; print(snntrain.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env={**os.environ, **env})
    assert where.stdout.strip().startswith(str(site))
    # a config group option of the user's own, found through --config-dir
    mine = tmp_path / "myconf" / "model"
    mine.mkdir(parents=True)
    (mine / "tiny.yaml").write_text("name: mlp\nhidden: [17]\n")
    r = run_cli("--config-dir", str(tmp_path / "myconf"), "model=tiny", "norm=tebn", "trainer.epochs=1",
                 "trainer.limit_batches=2", "hydra.run.dir=run", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_run_outputs(tmp_path / "run")
    assert "hidden:\n  - 17" in (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    # the same through hydra.searchpath
    r = run_cli(f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "model=tiny", "trainer.epochs=1",
                 "trainer.limit_batches=1", "hydra.run.dir=run2", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "hidden:\n  - 17" in (tmp_path / "run2" / ".hydra" / "config.yaml").read_text()


def test_snntrain_list_names_every_component():
    import snntrain

    r = subprocess.run([sys.executable, "-c", "from snntrain.cli import list_main; list_main()"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for row in snntrain.describe():
        assert f"  {row['name']}" in r.stdout
    assert "threshold=1.0" in r.stdout


def test_every_neuron_trains_through_the_cli(tmp_path):
    from snntrain import available

    neurons = available("neuron")
    r = run_cli("-m", f"neuron={','.join(neurons)}", "trainer.epochs=1", "trainer.limit_batches=8",
                "trainer.log_images_every=null", "trainer.progress=false", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    for i, name in enumerate(neurons):
        run = tmp_path / "sweep" / f"{i}_neuron={name},trainer.epochs=1,trainer.limit_batches=8,trainer.log_images_every=null"
        assert f"name: {name}" in (run / ".hydra" / "config.yaml").read_text()
        assert assert_run_outputs(run)["epoch"] == 1


@pytest.mark.parametrize("rst, plain", [
    (r":math:`y = \gamma_c (x - \mu_c) / \sqrt{\sigma_c^2 + \epsilon} + \beta_c`", "y = γ_c (x - μ_c) / √(σ_c^2 + ε) + β_c"),
    (r":math:`\mathrm{CE}(\frac1T\sum_t o_t, y)`", "CE((1/T)Σ_t o_t, y)"),
    (r":math:`g'(x) = \frac{\alpha/2}{1 + (\frac{\pi}{2}\alpha x)^2}`", "g'(x) = (α/2)/(1 + ((π/2)α x)^2)"),
    (r"``reset`` :math:`\mu_{t,b}`", "reset μ_t,b"),
])
def test_snntrain_list_renders_math_as_plain_text(rst, plain):
    from snntrain.cli import plain_math

    assert plain_math(rst) == plain
