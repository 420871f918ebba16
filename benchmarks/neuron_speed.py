"""LIF forward+backward time: snntrain vs snnTorch's Leaky vs SpikingJelly's LIFNode, same run.

All three integrate the same input with the same decay, threshold, subtract reset and
arc-tangent surrogate (snnTorch in its default delayed-reset form, as it is normally
used), over T steps of a [B, N] input, on the CPU (or --device cuda). Reports the
median of --reps timings per library and the ratio to snntrain. Results go to
benchmarks/results/neuron_speed.json.

    python benchmarks/neuron_speed.py [--T 16] [--B 64] [--N 4096] [--reps 20]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from snntrain import build


def timeit(fn, reps: int, device: str) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=16)
    ap.add_argument("--B", type=int, default=64)
    ap.add_argument("--N", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    x = (torch.randn(a.T, a.B, a.N, device=a.device) + 0.5).requires_grad_()

    ours = build("neuron", "lif", decay=0.5).to(a.device)
    candidates = {"snntrain": lambda: ours(x).sum().backward()}
    try:
        import snntorch as snn

        leaky = snn.Leaky(beta=0.5, spike_grad=snn.surrogate.atan()).to(a.device)

        def run_snntorch():
            mem = leaky.init_leaky()
            spikes = []
            for t in range(a.T):
                s, mem = leaky(x[t], mem)
                spikes.append(s)
            torch.stack(spikes).sum().backward()

        candidates["snntorch"] = run_snntorch
    except ImportError:
        pass
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate

        lif = neuron.LIFNode(tau=2.0, decay_input=False, v_reset=None, surrogate_function=surrogate.ATan(), step_mode="m").to(a.device)

        def run_spikingjelly():
            functional.reset_net(lif)
            lif(x).sum().backward()

        candidates["spikingjelly"] = run_spikingjelly
    except ImportError:
        pass

    rows = {name: timeit(fn, a.reps, a.device) for name, fn in candidates.items()}
    base = rows["snntrain"]
    for name, t in rows.items():
        print(f"{name:13s} {t * 1e3:8.2f} ms  ({t / base:.2f}x snntrain's time)")
    out = {"T": a.T, "B": a.B, "N": a.N, "device": a.device, "torch": torch.__version__, "machine": platform.machine(),
           "threads": torch.get_num_threads(), "median_ms": {k: round(v * 1e3, 3) for k, v in rows.items()}}
    path = Path(__file__).parent / "results" / f"neuron_speed_{a.device}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
