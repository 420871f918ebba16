"""The first minutes, timed as whole processes: help, config errors, and the default run's overhead.

Each round runs, in turn: ``python -c "import torch"`` (the yardstick), ``snntrain --help``,
``snntrain model=nosuch`` (a Hydra-level config error), and the default ``snntrain`` in a
fresh folder. The default run's *overhead* is its wall time minus the ``train_time_s`` its
own ``metrics.json`` reports (the epochs, after every set-up step); its ratio to the
``import torch`` of the same round is the figure of issue #12 (target: at most 1.8).

    python benchmarks/fast_start.py --rounds 7        # writes results/fast_start.json

Run it on a quiet machine: the processes use every core.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(cmd: list[str], cwd: str) -> tuple[float, int]:
    t = time.perf_counter()
    code = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - t, code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fast_start.json"))
    args = ap.parse_args()
    snntrain = str(BIN / "snntrain")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([snntrain, "trainer.epochs=1"], cwd=tmp, capture_output=True)  # warm-up: caches, kernel
        for r in range(args.rounds):
            work = Path(tmp) / f"round{r}"
            work.mkdir()
            torch_s, _ = timed([sys.executable, "-c", "import torch"], tmp)
            help_s, help_code = timed([snntrain, "--help"], tmp)
            error_s, error_code = timed([snntrain, "model=nosuch"], tmp)
            run_s, run_code = timed([snntrain], str(work))
            metrics = json.loads(next(work.glob("outputs/*/*/metrics.json")).read_text())
            overhead = run_s - metrics["train_time_s"]
            rows.append({"import_torch_s": torch_s, "help_s": help_s, "help_exit": help_code, "config_error_s": error_s,
                         "config_error_exit": error_code, "run_wall_s": run_s, "train_time_s": metrics["train_time_s"],
                         "overhead_s": overhead, "overhead_over_import_torch": overhead / torch_s,
                         "test_acc": metrics["test_acc"]})
            print(f"round {r}: import torch {torch_s:.2f} s, --help {help_s:.2f} s, config error {error_s:.2f} s, "
                  f"default run {run_s:.2f} s of which training {metrics['train_time_s']:.2f} s -> overhead "
                  f"{overhead:.2f} s = {overhead / torch_s:.2f}x import torch", flush=True)
            shutil.rmtree(work)
    keys = [k for k in rows[0] if not k.endswith("_exit")]
    summary = {k: {"min": min(r[k] for r in rows), "median": statistics.median(r[k] for r in rows),
                   "max": max(r[k] for r in rows)} for k in keys}
    print("\nmedian over rounds: " + ", ".join(f"{k} {v['median']:.3f}" for k, v in summary.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg()},
        "rounds": rows, "summary": summary}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
