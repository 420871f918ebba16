"""The Open Neuromorphic SNN-library benchmark's case: one Linear + LIF layer, forward and backward.

The public workload (open-neuromorphic.org, "SNN library benchmarks"): a fully connected
layer followed by a layer of LIF neurons, batch 16, T=500 steps, 16,384 neurons, one
forward and one backward pass (the loss is the sum of the output spikes), timed per
iteration. Its published GPU figures include SpikingJelly (CuPy backend) 0.118 s, Norse
(compiled) 0.110 s and Spyx (fp16) 0.047 s, on a consumer GPU. The input width of the
layer is ``--inputs`` (default: as many as neurons).

Cases, all in one process, interleaved round by round, on the same random input
(uniform in [0, 1), a fresh draw per case is not needed: the work is dense):

* ``snntrain``: ``SeqWrap(Linear)`` + ``lif`` on its ``auto`` backend (the C++ kernel on
  the CPU, Triton on CUDA), and ``snntrain-torch`` (the reference loop);
* ``spikingjelly``: multi-step ``layer.Linear`` + ``neuron.LIFNode`` (torch backend; and
  ``spikingjelly-cupy`` / ``spikingjelly-triton`` on CUDA where they import);
* ``snntorch``: ``nn.Linear`` + ``snn.Leaky`` stepped in a Python loop over T;
* ``norse``: ``nn.Linear`` on the whole sequence + ``norse.torch.LIF`` (its default,
  current-based LIF, as the public benchmark runs it).

Every LIF: decay 0.9 (tau 10), threshold 1 (norse: its defaults, a current-based LIF).
Reported: median seconds per forward+backward and its ratio to the fastest case.

    python benchmarks/open_neuromorphic.py --device cpu --small      # 1,024 neurons: runs in a minute on 2 cores
    python benchmarks/open_neuromorphic.py --device cuda             # the published size (16,384 neurons)

Results go to ``benchmarks/results/open_neuromorphic_<device>[_small].json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from machine import describe
from torch import Tensor, nn

DECAY = 0.9


def make_case(name: str, n_in: int, n_out: int, device: str) -> Callable[[Tensor], Tensor]:
    """``forward(x_seq [T, B, n_in]) -> spikes [T, B, n_out]`` of one library."""
    if name.startswith("snntrain"):
        from snntrain import build
        from snntrain.layers.synapse import SeqWrap

        backend = "torch" if name == "snntrain-torch" else "auto"
        net = nn.Sequential(SeqWrap(nn.Linear(n_in, n_out)),
                            build("neuron", "lif", context={"shape": (n_out,)}, decay=DECAY, backend=backend)).to(device)
        return net
    if name.startswith("spikingjelly"):
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        lif = neuron.LIFNode(tau=1 / (1 - DECAY), decay_input=False, v_reset=None, surrogate_function=surrogate.ATan(),
                             step_mode="m")
        if "-" in name:  # spikingjelly-cupy, spikingjelly-triton: its GPU backends
            backend = name.split("-", 1)[1]
            assert backend in lif.supported_backends, f"SpikingJelly's LIFNode has no {backend} backend here"
            lif.backend = backend
        net = nn.Sequential(layer.Linear(n_in, n_out, step_mode="m"), lif).to(device)

        def sj(x_seq: Tensor) -> Tensor:
            functional.reset_net(net)
            return net(x_seq)

        sj.parameters = net.parameters  # type: ignore[attr-defined]
        return sj
    if name == "snntorch":
        import snntorch as snn

        fc, lif = nn.Linear(n_in, n_out).to(device), snn.Leaky(beta=DECAY, spike_grad=snn.surrogate.atan()).to(device)

        def snt(x_seq: Tensor) -> Tensor:
            mem, out = lif.init_leaky(), []
            for x in x_seq:
                spk, mem = lif(fc(x), mem)
                out.append(spk)
            return torch.stack(out)

        snt.parameters = fc.parameters  # type: ignore[attr-defined]
        return snt
    if name == "norse":
        import norse.torch as norse

        fc, lif = nn.Linear(n_in, n_out).to(device), norse.LIF().to(device)

        def nor(x_seq: Tensor) -> Tensor:
            T, B = x_seq.shape[:2]
            spikes, _ = lif(fc(x_seq.flatten(0, 1)).view(T, B, -1))
            return spikes

        nor.parameters = fc.parameters  # type: ignore[attr-defined]
        return nor
    raise ValueError(f"unknown case {name!r}")


def cases(device: str) -> list[str]:
    names = ["snntrain", "snntrain-torch", "spikingjelly", "snntorch", "norse"]
    return names + (["spikingjelly-cupy", "spikingjelly-triton"] if device == "cuda" else [])


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--small", action="store_true", help="1,024 neurons and inputs (a CPU-sized run)")
    ap.add_argument("--neurons", type=int, default=None, help="LIF neurons (default 16,384; --small: 1,024)")
    ap.add_argument("--inputs", type=int, default=None, help="input features (default: as many as neurons)")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default=None, help="comma-separated subset")
    ap.add_argument("--out", default=None, help="result file (default results/open_neuromorphic_<device>[_small].json)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    n_out = a.neurons or (1024 if a.small else 16384)
    n_in = a.inputs or n_out
    dev = a.device
    if dev == "cpu":  # build the C++ kernel before timing (a run never waits for it otherwise)
        from snntrain.kernels.cpu import kernel

        kernel(wait=True)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.steps, a.batch, n_in, generator=g).to(dev)
    runs: dict[str, Callable[[], None]] = {}
    for name in (a.cases.split(",") if a.cases else cases(dev)):
        try:
            torch.manual_seed(0)
            f = make_case(name, n_in, n_out, dev)

            def once(f: Callable[[Tensor], Tensor] = f) -> None:
                for p in f.parameters():
                    p.grad = None
                f(x).sum().backward()

            once()  # warm-up (kernels, caches, JIT)
            runs[name] = once
        except Exception as e:  # a library or backend that does not import here
            print(f"  {name}: skipped ({type(e).__name__}: {e})".splitlines()[0])
    times: dict[str, list[float]] = {n: [] for n in runs}
    for _ in range(a.rounds):
        for name, once in runs.items():
            sync(dev)
            t0 = time.perf_counter()
            once()
            sync(dev)
            times[name].append(time.perf_counter() - t0)
    best = min(statistics.median(t) for t in times.values())
    rows = {n: {"s": round(statistics.median(t), 4), "x_fastest": round(statistics.median(t) / best, 2)} for n, t in times.items()}
    machine = {"device": torch.cuda.get_device_name() if dev == "cuda" else platform.processor() or platform.machine(),
               "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
               **({} if dev == "cuda" else describe())}
    print(f"machine: {machine}\nLinear({n_in}->{n_out}) + LIF, batch {a.batch}, T={a.steps}, fwd+bwd, {a.rounds} rounds")
    for n, r in rows.items():
        print(f"  {n:18s} {r['s']:8.4f} s  {r['x_fastest']:5.2f}x")
    path = Path(a.out or Path(__file__).parent / "results" / f"open_neuromorphic_{dev}{'_small' if a.small else ''}.json")
    path.write_text(json.dumps({"machine": machine, "neurons": n_out, "inputs": n_in, "steps": a.steps, "batch": a.batch,
                                "rounds": a.rounds, "cases": rows}, indent=2) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
