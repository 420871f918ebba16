"""Stop signals and faults through real ``snntrain`` processes, and fp16 overflow in-process.

SIGHUP is handled like SIGTERM; a second SIGTERM waits for the save; a second Ctrl-C stops at
once keeping the last checkpoint; a signal in the last evaluation lets the run finish; a
SIGKILL inside a checkpoint write leaves the previous checkpoint whole (the fault hooks of
:mod:`snntrain.training.faults` place the faults exactly).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .test_engine import assert_same_state, strict_json

pytestmark = pytest.mark.slow

RUN = ["trainer.epochs=2", "trainer.limit_batches=40", "trainer.batch_size=16", "trainer.progress=false",
       "trainer.checkpoint_every_steps=1", "trainer.keep_checkpoints=100", "model.hidden=[16]", "T=2",
       "encoder=rate", "seed=3"]


def start(cwd: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "snntrain", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def wait_for_step(proc: subprocess.Popen, run_dir: Path, step: int) -> None:
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if (run_dir / "checkpoints" / f"step-{step:09d}.pt").exists():
            return
        time.sleep(0.002)
    raise AssertionError(f"the run ended (or hung) before step {step}: {proc.communicate()[1][-2000:]}")


def last(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


@pytest.mark.parametrize("signum, code", [(signal.SIGHUP, 129), (signal.SIGTERM, 143)])
def test_sighup_and_a_double_sigterm_save_and_say_how_to_continue(tmp_path, signum, code):
    run = tmp_path / "run"
    proc = start(tmp_path, *RUN, f"hydra.run.dir={run}")
    wait_for_step(proc, run, 3)
    proc.send_signal(signum)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # a second stop signal while the first one's save is under way
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    name = signal.Signals(signum).name
    assert f"stopped by {name}" in err and f"resume={run}" in err and "Continue with: snntrain" in err, err[-3000:]
    assert "Traceback" not in err
    saved = last(run)
    assert saved["position"]["step"] >= 3 and checkpoint_ok(saved)
    assert strict_json(run / "metrics.json")["status"] == "interrupted"


def checkpoint_ok(c: dict) -> bool:
    from snntrain.training import checkpoint

    return checkpoint.all_finite(c["model"]) and c["position"]["epoch"] <= 1


def test_ctrl_c_saves_and_a_second_ctrl_c_stops_at_once(tmp_path):
    run = tmp_path / "run"
    proc = start(tmp_path, *RUN, f"hydra.run.dir={run}")
    wait_for_step(proc, run, 3)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)  # at once: stop now, whatever was being written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and ("stopped at once" in err or "stopped by SIGINT" in err)
    assert last(run)["position"]["step"] >= 3  # the last complete checkpoint loads


def test_a_signal_in_the_final_evaluation_lets_the_run_finish(tmp_path):
    run = tmp_path / "run"
    proc = start(tmp_path, *RUN, "trainer.limit_batches=3", f"hydra.run.dir={run}",
                 env={"SNNTRAIN_TEST_SIGNAL_IN_EVAL": "SIGTERM"})
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    metrics = strict_json(run / "metrics.json")
    assert metrics["status"] == "finished" and metrics["epoch"] == 2 and "stopped" not in metrics
    assert "interrupted" not in err and "epoch 3" not in err
    assert last(run)["position"] == {"epoch": 2, "batch": 0, "step": 6}


def test_sigkill_inside_a_checkpoint_write_keeps_the_previous_one_and_resumes_bitwise(tmp_path):
    args = [*RUN, "trainer.limit_batches=4"]
    full = subprocess.run([sys.executable, "-m", "snntrain", *args, "hydra.run.dir=full"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert full.returncode == 0, full.stderr[-3000:]
    run = tmp_path / "cut"
    proc = start(tmp_path, *args, f"hydra.run.dir={run}", env={"SNNTRAIN_TEST_KILL_IN_WRITE": "3"})
    proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL
    left = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert any(n.endswith(".tmp") for n in left), left  # killed with the third checkpoint's data written
    assert last(run)["position"]["step"] == 2  # the previous checkpoint, whole
    resumed = subprocess.run([sys.executable, "-m", "snntrain", *args, f"resume={run}", "hydra.run.dir=resumed"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_state(last(tmp_path / "full"), last(tmp_path / "resumed"))


def test_fp16_overflow_skips_the_step_and_lowers_the_scale(tmp_path):
    """GradScaler's skip path on CPU: a scale that overflows the gradients applies nothing and halves."""
    from snntrain.training import build_trainer

    from .conftest import compose_cfg

    trainer = build_trainer(compose_cfg("trainer.precision=16-mixed", "model.hidden=[16]", "T=2"))
    x, y = next(iter(torch.utils.data.DataLoader(trainer.data.train, batch_size=8)))
    assert trainer.scaler.is_enabled()
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1e38)  # scaled gradients overflow float32
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train_step(x, y)
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())  # nothing applied
    assert trainer.scaler.get_scale() == pytest.approx(0.5e38)  # backoff factor 0.5
    assert not trainer.optimizer.state  # the optimizer never stepped
    trainer.scaler.update(new_scale=2.0 ** 8)
    trainer.train_step(x, y)
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())  # a normal step applies
