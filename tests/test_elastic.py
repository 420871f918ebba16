"""Elastic restarts: ``torchrun --max-restarts=1`` continues its own run after a worker is SIGKILLed mid-epoch.

The restarted workers find the run directory their run id trained in, resume it from its last
checkpoint and end with weights ``torch.equal`` to the uninterrupted two-process run; they
train none of the checkpointed steps again. The survivor of the kill explains it in one paragraph.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

# 2 epochs x 4 batches, a checkpoint every step; rate coding and dropout: every RNG state must be restored
RUN = ["trainer.epochs=2", "trainer.limit_batches=4", "trainer.batch_size=32", "trainer.progress=false",
       "trainer.checkpoint_every_steps=1", "model.hidden=[16]", "T=2", "encoder=rate", "model.dropout=0.2", "seed=3",
       "trainer.log_images_every=null"]


def torchrun(run_dir: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", "--max-restarts=1",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "-m", "snntrain", *RUN,
           f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, cwd=run_dir.parent, capture_output=True, text=True, timeout=400,
                          env={**os.environ, **(env or {})})


def weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_a_killed_worker_is_restarted_and_the_run_ends_as_if_uninterrupted(tmp_path):
    full = torchrun(tmp_path / "full")
    assert full.returncode == 0, full.stderr[-3000:]
    trace = tmp_path / "trace"
    cut = torchrun(tmp_path / "cut", env={"SNNTRAIN_TEST_KILL_AT": "1:5", "SNNTRAIN_TEST_TRACE": str(trace)})
    assert cut.returncode == 0, cut.stderr[-3000:]
    assert (tmp_path / "cut" / ".test-killed-1").exists()  # rank 1 was killed after optimizer step 5 (epoch 2)
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the survivor's one paragraph: which rank, the last checkpoint, how to continue
    said = [line for line in cut.stderr.splitlines() if line.startswith("snntrain: process rank 1")]
    assert len(said) == 1 and "checkpoints/last.pt (optimizer step 4)" in said[0] and "resume=" in said[0], cut.stderr
    # the restarted workers continued from step 4's checkpoint: steps 1-4 were trained once, by each rank
    steps = [tuple(int(v) for v in line.split()) for line in trace.read_text().splitlines()]
    for rank in (0, 1):
        done = [s for r, _, _, s in steps if r == rank]
        assert [s for s in done if s <= 4] == [1, 2, 3, 4] and done[-4:] == [5, 6, 7, 8], (rank, done)
