"""Sweeps (``snntrain -m ...``): one line per job in ``<sweep dir>/jobs.jsonl``, a summary at the end.

At the end of every multirun (and with ``snntrain-summary <sweep dir>`` over any existing
one) the sweep folder gets ``summary.csv`` (one row per job: its overrides, status and
final metrics from its ``metrics.json``) and ``summary.md`` (one row per setting: the jobs
that differ only in ``seed`` grouped, each metric as mean ± sample standard deviation over
the seeds, and n). The Markdown names the overrides all jobs share once, above the table.

Each job appends its record (job number, overrides, status, exit code, test accuracy,
run directory, error) with one ``write`` to an ``O_APPEND`` file, which works for jobs
run by any Hydra launcher (in-process, joblib, Slurm through submitit) on one file
system. :class:`SweepSummary` (a Hydra callback, enabled in ``train.yaml``) prints the
table once the sweep ends and keeps the failed jobs in :data:`FAILED_JOBS`, so the
``snntrain`` command exits 1 when any job failed. A failed job never stops the others.
"""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
import sys
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
    from .training.checkpoint import append_line

    append_line(sweep_dir / JOBS, json.dumps(rec) + "\n", "sweep record")  # never through a symbolic link


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


def check_direction(config: Any) -> None:
    """Refuse a sweeper that would optimise ``optimized_metric`` the wrong way (Optuna minimises by default)."""
    direction = config.hydra.sweeper.get("direction") if "sweeper" in config.hydra else None
    if not isinstance(direction, str):
        return
    metric = str(config.get("optimized_metric", "test_acc"))
    better = {"test_acc": "max", "best_test_acc": "max", "train_acc": "max", "readout_train_acc": "max",
              "test_loss": "min", "train_loss": "min"}.get(metric)
    want = {"max": "maximize", "min": "minimize"}.get(better or "")
    if want and direction != want:
        print(f"snntrain: error: hydra.sweeper.direction: {direction} would optimise optimized_metric={metric} the "
              f"wrong way (a higher {metric} is {'better' if better == 'max' else 'worse'}); set "
              f"hydra.sweeper.direction={want}.", file=sys.stderr)
        sys.exit(2)


class SweepSummary(Callback):
    """Hydra callback: print the jobs table when a sweep ends; remember the failed jobs."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        FAILED_JOBS.clear()
        check_direction(config)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        jobs = read_jobs(Path(config.hydra.sweep.dir))
        if not jobs:
            return
        FAILED_JOBS[:] = [r for r in jobs if r["status"] != "ok"]
        ok = len(jobs) - len(FAILED_JOBS)
        print(f"\nsweep finished: {ok} of {len(jobs)} jobs ok, {len(FAILED_JOBS)} failed "
              f"({Path(config.hydra.sweep.dir) / JOBS})\n{summary_table(jobs)}", flush=True)
        md = write_summary(Path(config.hydra.sweep.dir))
        if md:
            print(f"\n{md}\n(summary.csv and summary.md in {config.hydra.sweep.dir})", flush=True)


# ---------------------------------------------------------------- summary files
#: final metrics in the summary (from each run's metrics.json), with the direction that is better
METRICS = {"test_acc": "max", "best_test_acc": "max", "test_loss": "min", "train_acc": "max", "train_time_s": "min"}
#: overrides that do not define a setting (grouped over, or only how a job is shown)
_GROUPED = ("seed",)
_IGNORED = ("trainer.progress", "hparams_search", "hydra/sweeper", "hydra/launcher")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job: ``job``, ``overrides``, ``status``, ``seed``, ``run_dir`` and the :data:`METRICS`."""
    rows = []
    for r in read_jobs(sweep_dir):
        row = {"job": r["job"], "overrides": [o for o in r["overrides"] if _key(o) not in _IGNORED],
               "status": r["status"], "run_dir": r.get("run_dir"), **{m: None for m in METRICS}}
        row["seed"] = next((o.split("=", 1)[1] for o in r["overrides"] if _key(o) == "seed"), None)
        path = Path(r["run_dir"]) / "metrics.json" if r.get("run_dir") else None
        if path is not None and path.is_file():
            saved = json.loads(path.read_text())
            row.update({m: saved.get(m) for m in METRICS})
        elif r.get("test_acc") is not None:
            row["test_acc"] = r["test_acc"]
        rows.append(row)
    return rows


def _setting(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(o for o in row["overrides"] if _key(o) not in _GROUPED)


def groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs that differ only in ``seed`` grouped: per metric ``(mean, std, n)`` over the ok jobs (std: n-1; 0 if n=1)."""
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        g = out.setdefault(_setting(row), {"setting": _setting(row), "jobs": [], "failed": 0})
        g["jobs"].append(row["job"])
        g["failed"] += row["status"] != "ok"
        for m in METRICS:
            if row["status"] == "ok" and isinstance(row[m], (int, float)):
                g.setdefault(m + "_values", []).append(float(row[m]))
    for g in out.values():
        for m in METRICS:
            vals = g.pop(m + "_values", [])
            g[m] = (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals)) if vals else None
    return list(out.values())


def _common(rows: list[dict[str, Any]]) -> list[str]:
    sets = [set(_setting(r)) for r in rows]
    return sorted(set.intersection(*sets)) if sets else []


def summary_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["job", "overrides", "seed", "status", *METRICS, "run_dir"])
    for r in rows:
        w.writerow([r["job"], " ".join(r["overrides"]), r["seed"] or "", r["status"],
                    *("" if r[m] is None else r[m] for m in METRICS), r["run_dir"] or ""])
    return buf.getvalue()


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    """The grouped table: one row per setting, mean ± std over seeds, the best setting's test_acc in bold."""
    common = _common(rows)
    gs = groups(rows)
    shown = [m for m in METRICS if any(g[m] for g in gs)]
    best = max((g["test_acc"][0] for g in gs if g["test_acc"]), default=None)
    lines = []
    if common:
        lines.append("All jobs: `" + " ".join(common) + "`\n")
    lines.append("| setting | n | " + " | ".join(shown) + " | failed |")
    lines.append("|---|---|" + "---|" * len(shown) + "---|")
    for g in gs:
        name = " ".join(o for o in g["setting"] if o not in common) or "(as above)"
        cells = []
        for m in shown:
            v = g[m]
            if v is None:
                cells.append("-")
                continue
            fmt = ".1f" if m == "train_time_s" else ".4f"
            text = f"{v[0]:{fmt}} ± {v[1]:{fmt}}" if v[2] > 1 else f"{v[0]:{fmt}}"
            cells.append(f"**{text}**" if m == "test_acc" and v[0] == best else text)
        n = g["test_acc"][2] if g["test_acc"] else 0
        lines.append(f"| `{name}` | {n} | " + " | ".join(cells) + f" | {g['failed']} |")
    return "\n".join(lines) + "\n"


def write_summary(sweep_dir: Path) -> str | None:
    """Write ``summary.csv`` and ``summary.md`` into ``sweep_dir``; return the Markdown (None: no jobs)."""
    rows = collect(Path(sweep_dir))
    if not rows:
        return None
    md = summary_markdown(rows)
    (Path(sweep_dir) / "summary.csv").write_text(summary_csv(rows))
    (Path(sweep_dir) / "summary.md").write_text(md)
    return md


def summary_main(argv: list[str] | None = None) -> None:
    """``snntrain-summary <sweep dir>``: the summary of an existing multirun folder (written there too)."""
    import argparse

    ap = argparse.ArgumentParser(prog="snntrain-summary", description=summary_main.__doc__)
    ap.add_argument("sweep_dir", type=Path, help="a multirun folder (holds jobs.jsonl)")
    a = ap.parse_args(argv)
    if not (a.sweep_dir / JOBS).is_file():
        print(f"snntrain-summary: error: {a.sweep_dir} has no {JOBS}, so it is not a snntrain sweep folder "
              f"(sweeps are under outputs/multirun/<date>/<time>/). Give the folder that holds {JOBS}.", file=sys.stderr)
        sys.exit(2)
    md = write_summary(a.sweep_dir)
    print(md or "no jobs recorded yet")
    print(f"written: {a.sweep_dir / 'summary.csv'}, {a.sweep_dir / 'summary.md'}")
