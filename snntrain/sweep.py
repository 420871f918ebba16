"""Sweeps (``snntrain -m ...``): one line per job in ``<sweep dir>/jobs.jsonl``, a summary at the end.

At the end of every multirun (and with ``snntrain-summary <sweep dir>`` over any existing
one) the sweep folder gets ``summary.csv`` (one row per job: its overrides, status and
final metrics from its ``metrics.json``) and ``summary.md`` (one row per setting: the jobs
that differ only in ``seed`` grouped, each metric as mean ± sample standard deviation over
the seeds, and n). The Markdown names the overrides all jobs share once, above the table.
From the same rows come two figures (matplotlib): ``summary.png``, each metric per setting
as mean ± std over the seeds, and ``curves.png``, the test accuracy per epoch, one line per
setting (mean over seeds, the band ± std), from each run's ``metrics.json`` history.

The files are written as a temporary file in the sweep folder renamed over the old one; a
target that is a symbolic link is refused (nothing is written through a link). A line of
``jobs.jsonl`` or a ``metrics.json`` that cannot be read is skipped with a warning naming it.

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


def warn(message: str) -> None:
    print(f"snntrain-summary: warning: {message}", file=sys.stderr)


def _job_record(line: str) -> dict[str, Any] | None:
    """A ``jobs.jsonl`` line as a record with the fields the summary reads, or None if it is not one."""
    try:
        r = json.loads(line)
    except ValueError:
        return None
    if not (isinstance(r, dict) and isinstance(r.get("job"), int) and not isinstance(r["job"], bool)
            and isinstance(r.get("overrides"), list) and all(isinstance(o, str) for o in r["overrides"])
            and r.get("status") in ("ok", "failed")):
        return None
    acc = r.get("test_acc")
    r["test_acc"] = float(acc) if isinstance(acc, (int, float)) and not isinstance(acc, bool) and math.isfinite(acc) else None
    r["run_dir"] = r["run_dir"] if isinstance(r.get("run_dir"), str) else None
    r["error"] = r["error"] if isinstance(r.get("error"), str) else None
    return r


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """The job records of ``<sweep_dir>/jobs.jsonl`` by job number; malformed lines skipped with a warning."""
    path = Path(sweep_dir) / JOBS
    if not path.is_file():
        return []
    jobs = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        r = _job_record(line)
        if r is None:
            warn(f"{path} line {n} is not a job record (JSON with job, overrides, status); skipped: {line[:80]!r}")
            continue
        jobs.append(r)
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
        try:
            md = write_summary(Path(config.hydra.sweep.dir))
        except SummaryWriteError as err:
            warn(str(err))
            return
        if md:
            print(f"\n{md}\n(summary.csv, summary.md, summary.png and curves.png in {config.hydra.sweep.dir})",
                  flush=True)


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
        row["history"] = []
        path = Path(r["run_dir"]) / "metrics.json" if r.get("run_dir") else None
        saved = read_metrics(path) if path is not None and path.is_file() else None
        if saved is not None:
            row.update({m: _number(saved.get(m)) for m in METRICS})
            row["history"] = _curve(saved.get("history"))
        elif r.get("test_acc") is not None:
            row["test_acc"] = r["test_acc"]
        rows.append(row)
    return rows


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _curve(history: Any) -> list[tuple[int, float]]:
    """``(epoch, test_acc)`` of each epoch record of a metrics.json history that has both."""
    out = []
    for rec in history if isinstance(history, list) else []:
        if isinstance(rec, dict) and isinstance(rec.get("epoch"), int) and _number(rec.get("test_acc")) is not None:
            out.append((rec["epoch"], float(rec["test_acc"])))
    return out


def read_metrics(path: Path) -> dict[str, Any] | None:
    """A run's ``metrics.json``, or None (with a warning naming it) when it is not a JSON object."""
    try:
        saved = json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError) as err:
        warn(f"{path} cannot be read ({type(err).__name__}: {str(err)[:120]}); its job is shown without metrics")
        return None
    if not isinstance(saved, dict):
        warn(f"{path} holds a {type(saved).__name__}, not the run's metrics; its job is shown without metrics")
        return None
    return saved


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


class SummaryWriteError(OSError):
    """A summary file that cannot be written (a symbolic link in its place, a read-only folder); names the path."""


def _write(path: Path, data: bytes) -> None:
    """``data`` into ``path``, atomically and never through a link (:func:`~snntrain.training.checkpoint.write_atomic`)."""
    from .errors import StorageError
    from .training.checkpoint import write_atomic

    try:
        write_atomic(path, lambda f: f.write(data), "the sweep summary", of_run=False)
    except StorageError as err:
        raise SummaryWriteError(str(err)) from None


SUMMARY_FILES = ("summary.csv", "summary.md", "summary.png", "curves.png")


def write_summary(sweep_dir: Path) -> str | None:
    """Write ``summary.csv``, ``summary.md``, ``summary.png`` and ``curves.png`` into ``sweep_dir``.

    Returns the Markdown (None: no jobs). A target that is a symbolic link is a
    :class:`SummaryWriteError` before anything is written.
    """
    sweep_dir = Path(sweep_dir)
    links = [sweep_dir / f for f in SUMMARY_FILES if (sweep_dir / f).is_symlink()]
    if links:
        raise SummaryWriteError(
            f"{', '.join(map(str, links))} {'is a symbolic link' if len(links) == 1 else 'are symbolic links'}; the "
            f"summary is never written through a link (it could overwrite a file outside the sweep folder). Remove "
            f"{'it' if len(links) == 1 else 'them'} and run snntrain-summary {sweep_dir} again."
        )
    rows = collect(sweep_dir)
    if not rows:
        return None
    md = summary_markdown(rows)
    try:
        _write(sweep_dir / "summary.csv", summary_csv(rows).encode())
        _write(sweep_dir / "summary.md", md.encode())
        try:
            from .sweep_figures import curves_png, summary_png
        except ImportError as err:  # matplotlib is a dependency; a broken install still gets the tables
            warn(f"summary.png and curves.png not drawn: {err}. Install matplotlib (pip install matplotlib).")
        else:
            _write(sweep_dir / "summary.png", summary_png(groups(rows), _common(rows)))
            _write(sweep_dir / "curves.png", curves_png(rows, _setting, _common(rows)))
    except OSError as err:
        if isinstance(err, SummaryWriteError):
            raise
        raise SummaryWriteError(f"the summary cannot be written into {sweep_dir} ({err.strerror or err}); check that "
                                f"the folder exists and is writable.") from None
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
    try:
        md = write_summary(a.sweep_dir)
    except SummaryWriteError as err:
        print(f"snntrain-summary: error: {err}", file=sys.stderr)
        sys.exit(4)
    print(md or "no jobs recorded yet")
    if md:
        print("written: " + ", ".join(str(a.sweep_dir / f) for f in SUMMARY_FILES))
