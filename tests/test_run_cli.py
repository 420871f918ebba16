"""The run engine through real ``snntrain`` processes: kills, signals, concurrent runs, sweeps, divergence."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .test_engine import assert_same_state, strict_json

pytestmark = pytest.mark.slow

# 3 epochs x 12 batches of the default MLP with a checkpoint every 2 steps; rate coding and
# dropout draw random numbers every step, so exactness needs every RNG state restored
RUN = ["trainer.epochs=3", "trainer.limit_batches=12", "trainer.batch_size=32", "trainer.progress=false",
       "trainer.checkpoint_every_steps=2", "encoder=rate", "model.dropout=0.2", "T=8", "seed=5",
       "trainer.log_images_every=null"]
STEPS = 36


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "snntrain", *args]


def run(*args: str, cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def traced(trace: Path) -> list[tuple[int, int, int]]:
    """``(epoch index, batches done, optimizer step)`` of every batch a run trained (SNNTRAIN_TEST_TRACE).

    No file: the run trained no batch (it resumed from the end of training)."""
    if not trace.exists():
        return []
    return [tuple(int(v) for v in line.split()[1:]) for line in trace.read_text().splitlines()]


def assert_only_the_rest(trace: Path, position: dict) -> None:
    """The resumed run trained exactly the batches after ``position`` (a checkpoint's), none before."""
    rows = traced(trace)
    assert [r[2] for r in rows] == list(range(position["step"] + 1, STEPS + 1))
    if not rows:  # killed after the last step (in the final evaluation): nothing left to train
        return
    first = (position["epoch"], position["batch"] + 1) if position["batch"] < 12 else (position["epoch"] + 1, 1)
    assert rows[0][:2] == first


def _steps_done(run_dir: Path) -> int:
    steps = [int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*.pt")] if run_dir.exists() else []
    return max(steps, default=0)


def _start_and_wait(args: list[str], cwd: Path, run_dir: Path, step: int) -> subprocess.Popen:
    """Start a run and return once it has checkpointed optimizer step ``step`` (or finished)."""
    proc = subprocess.Popen(cli(*args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while _steps_done(run_dir) < step and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    return proc


def _final(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


def assert_same_engine(a: dict, b: dict) -> None:
    """Both runs' fused neurons ran on the same CPU engine (compiled or eager), or no bitwise comparison holds."""
    assert a["cpu_neurons"] == b["cpu_neurons"], f"engines {a['cpu_neurons']} and {b['cpu_neurons']}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("full")
    r = run(*RUN, "hydra.run.dir=full", cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    return _final(cwd / "full")


def test_sigkill_at_random_moments_then_resume_is_bitwise_equal(uninterrupted, tmp_path):
    rng = random.Random(20261123)
    # 2 checkpoints early in an epoch: a fast machine trains a few steps between the checkpoint appearing and
    # the kill, and one close to an epoch's end would often be killed in the (long) epoch-end evaluation
    targets = sorted(rng.sample([s for s in range(2, STEPS - 2, 2) if s % 12 in (2, 4, 6)], 2))
    mid_epoch = 0
    for i, target in enumerate(targets):
        cut, resumed = tmp_path / f"cut{i}", tmp_path / f"resumed{i}"
        proc = _start_and_wait([*RUN, f"hydra.run.dir={cut}"], tmp_path, cut, target)
        time.sleep(rng.uniform(0, 0.01))  # somewhere between two checkpoints, maybe inside a write
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed; lower the targets"
        position = _final(cut)["position"]
        mid_epoch += position["batch"] not in (0, 12)
        trace = tmp_path / f"trace{i}"
        r = run(*RUN, f"resume={cut}", f"hydra.run.dir={resumed}", cwd=tmp_path, env={"SNNTRAIN_TEST_TRACE": str(trace)})
        assert r.returncode == 0, r.stderr[-3000:]
        assert_only_the_rest(trace, position)
        assert_same_state(uninterrupted, _final(resumed))
        assert (resumed / "checkpoints" / "best.pt").is_file()
    assert mid_epoch >= 1


def test_sigterm_saves_the_exact_step_exits_143_and_resumes_bitwise(uninterrupted, tmp_path):
    cut = tmp_path / "cut"
    proc = _start_and_wait([*RUN, f"hydra.run.dir={cut}"], tmp_path, cut, 14)
    time.sleep(random.Random(7).uniform(0, 0.02))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM" in err and f"resume={cut}" in err and "Traceback" not in err
    position = _final(cut)["position"]
    assert position["step"] >= 14  # saved at the step the signal arrived in, not at an older checkpoint
    assert strict_json(cut / "metrics.json")["status"] == "interrupted"
    resume_cmd = err[err.index("Continue with: ") + len("Continue with: "):].split()[1:]
    trace = tmp_path / "trace"
    r = run(*resume_cmd, f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path,  # the printed command, as given
            env={"SNNTRAIN_TEST_TRACE": str(trace)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert_only_the_rest(trace, position)
    assert_same_state(uninterrupted, _final(tmp_path / "resumed"))


def _files(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_two_runs_into_one_directory(tmp_path):
    long = [*RUN, "trainer.epochs=40"]  # still training while the second process starts (~5 s of imports)
    first = subprocess.Popen(cli(*long, "hydra.run.dir=shared"), cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    while _steps_done(tmp_path / "shared") < 2 and first.poll() is None:
        time.sleep(0.01)
    t0 = time.monotonic()
    second = run(*long, "seed=6", "hydra.run.dir=shared", cwd=tmp_path)
    assert second.returncode == 2 and "is in use by another snntrain run" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.poll() is None, "the first run should still be training when the second is refused"
    first.send_signal(signal.SIGTERM)  # the first run saves where it is and stops (no need to train 40 epochs)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 143, err[-3000:]
    config = (tmp_path / "shared" / ".hydra" / "config.yaml").read_text()
    assert "seed: 5" in config and "seed: 6" not in config
    assert _final(tmp_path / "shared")["config"]["seed"] == 5
    # a run refused after the first finished changes no byte in the directory
    before = _files(tmp_path / "shared")
    third = run(*long, "seed=6", "hydra.run.dir=shared", cwd=tmp_path)
    assert third.returncode == 2 and "already holds checkpoints" in third.stderr
    assert _files(tmp_path / "shared") == before
    assert time.monotonic() - t0 < 600


def test_sweep_records_a_failing_job_and_goes_on(tmp_path):
    r = run("-m", "neuron.decay=0.5,1.5,0.9", "trainer.epochs=1", "trainer.progress=false", "hydra.sweep.dir=sweep",
            cwd=tmp_path)
    assert r.returncode == 1
    jobs = [json.loads(line) for line in (tmp_path / "sweep" / "jobs.jsonl").read_text().splitlines()]
    status = {j["job"]: j["status"] for j in jobs}
    assert status == {0: "ok", 1: "failed", 2: "ok"}
    assert "neuron.decay" in next(j["error"] for j in jobs if j["job"] == 1)
    for job, decay in ((0, "0.5"), (2, "0.9")):
        run_dir = tmp_path / "sweep" / f"{job}_neuron.decay={decay},trainer.epochs=1"
        assert strict_json(run_dir / "metrics.json")["status"] == "finished"
    assert not (tmp_path / "sweep" / "1_neuron.decay=1.5,trainer.epochs=1").exists()
    assert "2 of 3 jobs ok, 1 failed" in r.stdout and "Traceback" not in r.stderr + r.stdout


def test_divergence_through_the_command_line(tmp_path):
    r = run("optimizer=sgd", "optimizer.lr=1e30", "trainer.epochs=4", "trainer.progress=false", "hydra.run.dir=run",
            cwd=tmp_path)
    assert r.returncode == 3
    assert "was not finite at epoch 1, step" in r.stderr and "Traceback" not in r.stderr
    assert strict_json(tmp_path / "run" / "metrics.json")["status"] == "diverged"
    for path in (tmp_path / "run").rglob("*.pt"):
        ckpt = torch.load(path, weights_only=True)
        assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("override,key", [
    ("+foo=1", "foo"), ("trainer.progress=maybe", "trainer.progress"), ("model.hidden=[]", "model"),
    ("neuron.v_reset=nan", "neuron.v_reset"), ("+trainer.epoch=3", "trainer.epoch"),
])
def test_config_errors_leave_no_run_directory(tmp_path, override, key):
    r = run(override, cwd=tmp_path)  # Hydra's default outputs/<date>/<time>
    assert r.returncode == 2 and r.stderr.startswith(f"snntrain: error: {key}:")
    assert "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "outputs").exists()


def test_extend_a_finished_run_with_more_epochs(tmp_path):
    base = ["trainer.limit_batches=4", "trainer.progress=false", "trainer.log_images_every=null"]
    assert run(*base, "trainer.epochs=3", "hydra.run.dir=short", cwd=tmp_path).returncode == 0
    r = run(*base, "trainer.epochs=5", "resume=short", "hydra.run.dir=long", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "epoch 4/5" in r.stdout and "epoch 5/5" in r.stdout and "epoch 3/5" not in r.stdout
    assert {p.name for p in (tmp_path / "long" / "checkpoints").iterdir()} >= {"last.pt", "best.pt"}
    assert [h["epoch"] for h in strict_json(tmp_path / "long" / "metrics.json")["history"]] == [1, 2, 3, 4, 5]
    again = run(*base, "trainer.epochs=5", "resume=long", "hydra.run.dir=again", cwd=tmp_path)
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr
    assert not (tmp_path / "again").exists()
