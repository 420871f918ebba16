"""The CPU tables of ``docs/guide/benchmarks.md``, rendered from ``benchmarks/results/*.json``.

The page holds each table between ``<!-- table:NAME -->`` and ``<!-- /table -->``; this script
writes them there (``--write``) or prints them. ``tests/test_benchmark_tables.py`` checks that the
page shows what the result files hold, so no number on it is typed in by hand.

    python benchmarks/tables.py            # print
    python benchmarks/tables.py --write    # rewrite the page's tables after a new measurement
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "docs" / "guide" / "benchmarks.md"
NAMES = {
    "snntrain-fused": "snntrain `fused`", "snntrain-torch": "snntrain `torch`",
    "snntrain-fused-nopack": "snntrain `fused`, no bit packing",
    "snntrain-fused-bf16": "snntrain `fused`, `grad_storage=bf16`",
    "snntrain-fused-int8": "snntrain `fused`, `grad_storage=int8`",
    "snntorch": "snnTorch 1.0", "spikingjelly": "SpikingJelly 2.0", "ann": "ANN limit (ReLU on `T*B`)",
    "ann@bf16": "ANN limit under bf16 autocast", "snntrain-fused@bf16": "snntrain `fused` under bf16 autocast",
    "snntrain": "snntrain", "norse": "norse",
}


def _load(name: str) -> dict:
    return json.loads((HERE / "results" / name).read_text())


def _machine(m: dict) -> str:
    cpu = f"{m['cpu']} ({', '.join(m['isa']) or 'no AVX2'}), " if "cpu" in m else ""
    return f"{cpu}{m['device']}, {m['threads']} threads, torch {m['torch']}"


def train_step_cpu(name: str = "train_step_cpu.json") -> str:
    r = _load(name)
    res = {w["workload"]: w for w in r["results"]}
    order = list(res["A"]["cases"])
    rounds = res["A"]["rounds"]
    lines = [f"`python benchmarks/train_step.py --rounds {rounds}` ({_machine(r['machine'])}; median of {rounds} "
             "interleaved rounds). Milliseconds per step, and in brackets the multiple of the ANN limit; "
             "saved for backward as a multiple of the limit:", "",
             "| case | A ms | A saved | B ms | B saved | C ms | C saved |", "|---|---|---|---|---|---|---|"]
    for case in order:
        cells = []
        for w in "ABC":
            c = res[w]["cases"].get(case)
            cells += ["-", "-"] if c is None else [f"{c['ms']:.1f} ({c['x_limit']:.2f}x)", f"{c['saved_x_limit']:.2f}"]
        lines.append(f"| {NAMES.get(case, case)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def end_to_end() -> str:
    r = _load("end_to_end.json")
    lines = [f"`python benchmarks/end_to_end.py <mnist root> --rounds {r['rounds']}` ({_machine(r['machine'])}; "
             f"{r['batches']} batches of {r['batch_size']}, T={r['T']}, real MNIST; medians over rounds):", "",
             "| case | training samples/s | x SpikingJelly | test accuracy | wall s |", "|---|---|---|---|---|"]
    for name, c in r["cases"].items():
        lines.append(f"| {NAMES.get(name, name)} | {c['samples_per_s']:.0f} | {c['x_spikingjelly']:.2f} | "
                     f"{c['test_acc']:.4f} | {c['wall_s']:.1f} |")
    return "\n".join(lines)


def open_neuromorphic_cpu_small() -> str:
    r = _load("open_neuromorphic_cpu_small.json")
    lines = [f"`python benchmarks/open_neuromorphic.py --device cpu --small` ({_machine(r['machine'])}; "
             f"Linear({r['inputs']}->{r['neurons']}) + LIF, batch {r['batch']}, T={r['steps']}, forward+backward, "
             f"median of {r['rounds']} rounds):", "",
             "| case | seconds | x fastest |", "|---|---|---|"]
    for name, c in r["cases"].items():
        lines.append(f"| {NAMES.get(name, name)} | {c['s']:.4f} | {c['x_fastest']:.2f} |")
    return "\n".join(lines)


def grad_storage() -> str:
    r, steps = _load("grad_storage.json"), _load("train_step_cpu.json")
    res = {w["workload"]: w["cases"] for w in steps["results"]}
    seeds = "/".join(str(s) for s in r["digits"]["seeds"])
    mnist = r["mnist"]
    lines = [f"`python benchmarks/grad_storage.py <mnist root>` ({_machine(r['machine'])}): test accuracy of "
             f"`snntrain neuron.grad_storage=...` on the default digits run (seeds {seeds})"
             + (f" and on real MNIST (`{' '.join(mnist['args'])}`)" if mnist else "")
             + "; time and bytes saved for backward from the `train_step.py` run below, as multiples of the ANN limit:",
             "", f"| `grad_storage` | A time, saved | B time, saved | C time, saved | digits acc, seeds {seeds} |"
             + (" MNIST acc |" if mnist else ""), "|---|---|---|---|---|" + ("---|" if mnist else "")]
    for st in ("exact", "bf16", "int8"):
        case = "snntrain-fused" if st == "exact" else f"snntrain-fused-{st}"
        cells = [f"{res[w][case]['x_limit']:.2f}x, {res[w][case]['saved_MB']:.1f} MB ({res[w][case]['saved_x_limit']:.2f}x)"
                 for w in "ABC"]
        cells.append(" / ".join(f"{x['test_acc']:.4f}" for x in r["digits"]["runs"][st]))
        if mnist:
            cells.append(f"{mnist['runs'][st]['test_acc']:.4f}")
        lines.append(f"| `{st}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


TABLES = {"train_step_cpu": train_step_cpu, "grad_storage": grad_storage,
          "train_step_cpu_avx512": lambda: train_step_cpu("train_step_cpu_avx512.json"),
          "end_to_end": end_to_end,
          "open_neuromorphic_cpu_small": open_neuromorphic_cpu_small}


def block(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- table:{name} -->\n)(.*?)(<!-- /table -->)", re.S)


def rendered(text: str) -> str:
    """``text`` with every marked table replaced by its rendering from the result files."""
    for name, render in TABLES.items():
        text = block(name).sub(lambda m, r=render: m.group(1) + r() + "\n" + m.group(3), text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite the tables in {PAGE.name}")
    a = ap.parse_args()
    if a.write:
        PAGE.write_text(rendered(PAGE.read_text()))
        print(f"written to {PAGE}")
    else:
        print("\n\n".join(render() for render in TABLES.values()))


if __name__ == "__main__":
    main()
