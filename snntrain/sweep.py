"""Sweeps (``snntrain -m ...``): one line per job in ``<sweep dir>/jobs.jsonl``, a summary at the end.

Each job appends its record (job number, overrides, status, exit code, test accuracy,
run directory, error) with one ``write`` to an ``O_APPEND`` file, which works for jobs
run by any Hydra launcher (in-process, joblib, Slurm through submitit) on one file
system. :class:`SweepSummary` (a Hydra callback, enabled in ``train.yaml``) prints the
table once the sweep ends and keeps the failed jobs in :data:`FAILED_JOBS`, so the
``snntrain`` command exits 1 when any job failed. A failed job never stops the others.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

JOBS = "jobs.jsonl"
#: failed job records of the sweep that just ended in this process
FAILED_JOBS: list[dict[str, Any]] = []


def record_job(sweep_dir: Path, num: int, overrides: list[str], run_dir: Path, code: int,
               metrics: dict[str, Any] | None, error: str | None) -> None:
    acc = (metrics or {}).get("test_acc")
    rec = {"job": num, "overrides": overrides, "status": "ok" if code == 0 else "failed", "exit_code": code,
           "test_acc": acc if isinstance(acc, float) and math.isfinite(acc) else None,
           "run_dir": str(run_dir) if code == 0 else None, "error": error}
    sweep_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(sweep_dir / JOBS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(rec) + "\n").encode())
    finally:
        os.close(fd)


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    path = Path(sweep_dir) / JOBS
    if not path.is_file():
        return []
    jobs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(jobs, key=lambda r: r["job"])


def summary_table(jobs: list[dict[str, Any]]) -> str:
    lines = [f"{'job':>4}  {'status':<7} {'test_acc':>8}  overrides"]
    for r in jobs:
        acc = f"{r['test_acc']:.4f}" if r["test_acc"] is not None else "-"
        lines.append(f"{r['job']:>4}  {r['status']:<7} {acc:>8}  {' '.join(r['overrides'])}")
        if r["status"] != "ok" and r.get("error"):
            lines.append(f"{'':>4}  {r['error'][:300]}")
    return "\n".join(lines)


class SweepSummary(Callback):
    """Hydra callback: print the jobs table when a sweep ends; remember the failed jobs."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        FAILED_JOBS.clear()

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        jobs = read_jobs(Path(config.hydra.sweep.dir))
        if not jobs:
            return
        FAILED_JOBS[:] = [r for r in jobs if r["status"] != "ok"]
        ok = len(jobs) - len(FAILED_JOBS)
        print(f"\nsweep finished: {ok} of {len(jobs)} jobs ok, {len(FAILED_JOBS)} failed "
              f"({Path(config.hydra.sweep.dir) / JOBS})\n{summary_table(jobs)}", flush=True)
