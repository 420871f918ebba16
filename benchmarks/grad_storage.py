"""Accuracy under compact gradient storage: ``neuron.grad_storage=exact|bf16|int8`` through the command line.

Two workloads, each storage from a fresh ``snntrain`` process with the same seed:

* ``digits``: the default run (the embedded digits, MLP, 30 epochs) at seeds 0, 1 and 2;
* ``mnist`` (where a path to real MNIST is given): ``dataset=mnist``, the same MLP 784-256-10, T=4,
  one epoch.

Reported: each run's test accuracy and training samples per second (the run's own
``metrics.json``). The bytes saved for backward are measured by ``benchmarks/train_step.py``
(the ``snntrain-fused-bf16`` / ``-int8`` cases); the docs' table sets both side by side.

    python benchmarks/grad_storage.py [/path/to/mnist] [--seeds 0,1,2]

Results go to ``benchmarks/results/grad_storage.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from end_to_end import find, prepare
from machine import describe

HERE = Path(__file__).resolve().parent
STORAGES = ("exact", "bf16", "int8")


def run(args: list[str], out: Path, threads: int) -> dict:
    """One ``snntrain`` run; its test accuracy and training speed."""
    cmd = [sys.executable, "-m", "snntrain", *args, "device=cpu", "trainer.progress=false",
           "trainer.log_images_every=null", f"hydra.run.dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if r.returncode != 0:
        raise SystemExit(f"grad_storage: {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {"test_acc": m["test_acc"], "samples_per_s": round(m["samples_per_s"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mnist", nargs="?", type=Path, help="folder with the four official MNIST files")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    seeds = [int(s) for s in a.seeds.split(",")]
    result: dict = {"machine": {**describe(), "device": "cpu", "threads": a.threads, "torch": torch.__version__},
                    "digits": {"seeds": seeds, "runs": {}}, "mnist": None}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:  # storages interleaved within each seed
            for st in STORAGES:
                r = run([f"neuron.grad_storage={st}", f"seed={seed}"], Path(tmp) / f"d{st}{seed}", a.threads)
                result["digits"]["runs"].setdefault(st, []).append(r)
                print(f"digits seed {seed} {st}: {r}")
        src = find(a.mnist) if a.mnist else None
        if src is not None:
            root = prepare(src, Path(tmp) / "mnist")
            args = ["dataset=mnist", f"dataset.root={root}", "model.hidden=[256]", "T=4", "trainer.epochs=1"]
            result["mnist"] = {"args": args[:1] + args[2:], "runs": {}}
            for st in STORAGES:
                r = run([*args, f"neuron.grad_storage={st}"], Path(tmp) / f"m{st}", a.threads)
                result["mnist"]["runs"][st] = r
                print(f"mnist {st}: {r}")
        elif a.mnist:
            print(f"grad_storage: no MNIST files under {a.mnist}; the real-MNIST column is left out")
    out = HERE / "results" / "grad_storage.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
