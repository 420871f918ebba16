"""End to end on real MNIST: snntrain's command line against SpikingJelly's and snnTorch's plain training loops.

The workload of snnTorch's tutorial 5: a 784-1000-10 network with one LIF layer
(decay 0.95, threshold 1, subtract reset, arc-tangent surrogate), rate coding over T=25
steps (one Bernoulli draw per pixel and step), cross-entropy on the time-averaged readout,
Adam at 5e-4, batches of 128, pixels in [0, 1]. Each case trains for ``--batches`` batches
from a fresh process, reading the data with torchvision and a ``DataLoader`` (no workers),
then scores the 10,000 test images:

* ``snntrain``: the ``snntrain`` command (``dataset=mnist encoder=rate model.hidden=[1000]
  neuron.decay=0.95 T=25 ...``); the rate and accuracy are the run's own ``metrics.json``;
* ``spikingjelly``: multi-step ``layer.Linear`` / ``neuron.LIFNode(tau=20, decay_input=False,
  v_reset=None)`` and ``functional.reset_net`` after each batch, the loop of its tutorials;
* ``snntorch``: ``snn.Leaky(beta=0.95)`` stepped in a Python loop over T, tutorial 5's loop.

Reported per case (median over interleaved rounds): training samples per second (the
training batches only: loading, encoding, forward, backward, step), the process's wall
time, and test accuracy.

    python benchmarks/end_to_end.py /path/to/mnist [--rounds 3] [--batches 150] [--threads 2]

``/path/to/mnist`` holds the four official files (``train-images-idx3-ubyte.gz`` ...), or
``MNIST/raw/`` with them; without them the script says so and exits (status 0). Results go
to ``benchmarks/results/end_to_end.json``.
"""
from __future__ import annotations

import argparse
import gzip
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

from machine import describe

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
T, B, LR, DECAY = 25, 128, 5e-4, 0.95
CASES = ("snntrain", "spikingjelly", "snntorch")


def find(root: Path) -> Path | None:
    """The folder with the four files (gzipped or not), or None."""
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        if all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in FILES):
            return folder
    return None


def prepare(src: Path, cache: Path) -> Path:
    """A torchvision root: ``cache/MNIST/raw`` with the uncompressed files (made once)."""
    raw = cache / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f in FILES:
        if (raw / f).is_file():
            continue
        if (src / f).is_file():
            shutil.copy(src / f, raw / f)
        else:
            with gzip.open(src / f"{f}.gz") as a, open(raw / f, "wb") as b:
                shutil.copyfileobj(a, b)
    return cache


# ---------------------------------------------------------------- the peers' loops (run in a child process)
def peer_net(case: str):
    from torch import nn

    if case == "spikingjelly":
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        net = nn.Sequential(
            layer.Flatten(step_mode="m"), layer.Linear(784, 1000, step_mode="m"),
            neuron.LIFNode(tau=1 / (1 - DECAY), decay_input=False, v_reset=None, surrogate_function=surrogate.ATan(),
                           step_mode="m"),
            layer.Linear(1000, 10, step_mode="m"),
        )

        def forward(x_seq):
            out = net(x_seq)
            functional.reset_net(net)
            return out

        return net, forward
    import snntorch as snn
    import torch

    fc1, lif, fc2 = nn.Linear(784, 1000), snn.Leaky(beta=DECAY, spike_grad=snn.surrogate.atan()), nn.Linear(1000, 10)
    net = nn.ModuleList([fc1, lif, fc2])

    def forward(x_seq):
        mem, out = lif.init_leaky(), []
        for x in x_seq:
            spk, mem = lif(fc1(x.flatten(1)), mem)
            out.append(fc2(spk))
        return torch.stack(out)

    return net, forward


def run_peer(case: str, root: str, batches: int, seed: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    tf = transforms.ToTensor()
    train = DataLoader(datasets.MNIST(root, train=True, transform=tf), batch_size=B, shuffle=True, drop_last=True)
    test = DataLoader(datasets.MNIST(root, train=False, transform=tf), batch_size=512)
    net, forward = peer_net(case)
    opt = torch.optim.Adam(net.parameters(), lr=LR)

    def rate(x):
        return torch.bernoulli(x.unsqueeze(0).expand(T, *x.shape))

    n, t0 = 0, time.perf_counter()
    net.train()
    for i, (x, y) in enumerate(train):
        if i == batches:
            break
        loss = F.cross_entropy(forward(rate(x)).mean(0), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
    train_s = time.perf_counter() - t0
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test:
            correct += int((forward(rate(x)).mean(0).argmax(1) == y).sum())
    return {"samples_per_s": n / train_s, "test_acc": correct / len(test.dataset)}


# ---------------------------------------------------------------- one case, one fresh process
def run_case(case: str, root: Path, batches: int, threads: int, seed: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    if case == "snntrain":
        with tempfile.TemporaryDirectory() as out:
            cmd = [str(Path(sys.executable).parent / "snntrain"), "dataset=mnist", f"dataset.root={root}", "dataset.normalize=false",
                   "encoder=rate", "model=mlp", "model.hidden=[1000]", f"neuron.decay={DECAY}", f"T={T}", "optimizer=adam",
                   f"optimizer.lr={LR}", "scheduler=none", f"trainer.batch_size={B}", f"trainer.limit_batches={batches}",
                   "trainer.epochs=1", "trainer.eval_batch_size=512", "trainer.progress=false", f"seed={seed}",
                   "device=cpu", f"hydra.run.dir={out}/run"]
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                raise RuntimeError(f"snntrain failed ({r.returncode}): {r.stderr.strip()[-400:]}")
            m = json.loads((Path(out) / "run" / "metrics.json").read_text())
            got = {"samples_per_s": m["samples_per_s"], "test_acc": m["test_acc"]}
    else:
        cmd = [sys.executable, __file__, str(root), "--child", case, "--batches", str(batches), "--seed", str(seed),
               "--threads", str(threads)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"{case} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
        got = json.loads(r.stdout.strip().splitlines()[-1])
    return {**got, "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="folder with the four MNIST files (or MNIST/raw/ with them)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "end_to_end.json"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        import torch

        torch.set_num_threads(a.threads)
        print(json.dumps(run_peer(a.child, a.root, a.batches, a.seed)))
        return
    src = find(Path(a.root))
    if src is None:
        print(f"end_to_end: no MNIST files under {a.root} (expected {', '.join(FILES)}, gzipped or not); skipped")
        return
    root = prepare(src, Path(tempfile.gettempdir()) / "snntrain_end_to_end_mnist")
    cases = a.cases.split(",")
    runs: dict[str, list[dict]] = {c: [] for c in cases}
    for r in range(a.rounds):  # interleaved, round by round
        for case in cases:
            runs[case].append(run_case(case, root, a.batches, a.threads, a.seed + r))
            print(f"round {r + 1} {case:13s} {runs[case][-1]}", flush=True)
    rows = {}
    for case, rs in runs.items():
        rows[case] = {k: round(statistics.median(x[k] for x in rs), 4) for k in ("samples_per_s", "test_acc", "wall_s")}
    base = rows.get("spikingjelly", {}).get("samples_per_s")
    for case, row in rows.items():
        if base:
            row["x_spikingjelly"] = round(row["samples_per_s"] / base, 3)
    import torch

    machine = {"device": platform.processor() or platform.machine(), "threads": a.threads, "torch": torch.__version__,
               "python": platform.python_version(), "cpus": os.cpu_count(), **describe()}
    print(f"\nmachine: {machine}\n{'case':13s} {'samples/s':>10s} {'x SJ':>6s} {'test acc':>9s} {'wall s':>7s}")
    for case, row in rows.items():
        print(f"{case:13s} {row['samples_per_s']:10.0f} {row.get('x_spikingjelly', float('nan')):6.2f} "
              f"{row['test_acc']:9.4f} {row['wall_s']:7.1f}")
    out = {"machine": machine, "batches": a.batches, "rounds": a.rounds, "T": T, "batch_size": B, "cases": rows, "runs": runs}
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
