"""Multi-step LIF forward+backward: snntrain's backends against SpikingJelly's and snnTorch, one process.

SpikingJelly's published neuron benchmark shape: an input ``[T, N, C]`` with N=64, C=65,536,
T=4 and 32, in fp16 and fp32, one LIF layer, the time of ``forward`` plus ``backward`` of the
sum of the spikes. Every case runs the same neuron: tau=2 (beta=0.5), the input decayed
(``H = V + (X - V)/tau``, SpikingJelly's default ``decay_input=True``), threshold 1, a hard
reset to 0 kept in the graph, the logistic surrogate with alpha=4. snnTorch's ``Leaky`` has no
decayed input (``H = beta V + X``): same cost, other numbers; it is timed, not compared.

Cases (those that cannot run here are recorded with the reason, not timed):

* ``snntrain-torch``, ``snntrain-fused``, ``snntrain-triton``: ``neuron.backend``;
* ``sj-torch``, ``sj-triton``, ``sj-cuda``, ``sj-auto``: SpikingJelly 2.0's ``LIFNode`` with its
  CUDA implementation picked as ``SJ_LIF_CUDA_IMPLEMENTATION`` does (``cuda`` is its native
  extension, present only in a source build; ``auto`` is what it runs by default, which for
  fp16 inputs is its PyTorch reference);
* ``snntorch``: ``snn.Leaky`` in its time loop.

Each case: warm-up, then the median of ``--reps`` timings (CUDA events on a GPU), and the
peak memory the step allocates beyond its input (``torch.cuda.max_memory_allocated``; on the
CPU the bytes saved for backward instead). Spike counts of the cases that share the math are
checked equal, so a fast wrong kernel cannot win.

    python benchmarks/lif_kernels.py --device cuda [--T 4,32] [--dtypes fp16,fp32] [--N 64 --C 65536]
    python benchmarks/lif_kernels.py --device cpu --N 4 --C 1024 --reps 3     # a small CPU run

Results: ``--json PATH`` (default ``benchmarks/results/lif_kernels_<device>.json``).
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

DTYPES = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}
SAME_MATH = ("snntrain-torch", "snntrain-fused", "snntrain-triton", "sj-torch", "sj-triton", "sj-cuda", "sj-auto")


def _snntrain(backend: str, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    from snntrain import build

    neuron = build("neuron", "lif", decay=0.5, decay_input=True, reset="zero", backend=backend,
                   context={"surrogate": build("surrogate", "sigmoid", alpha=4.0)})
    return neuron.to(device)


def _spikingjelly(impl: str, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    from spikingjelly.activation_based import functional, neuron, surrogate

    if device == "cuda":
        from spikingjelly._ops.lif import _selection

        _selection._requested = impl  # what SJ_LIF_CUDA_IMPLEMENTATION sets at import
        _selection._selections.clear()
        _selection._compiled_selections.clear()
        got = _selection._select(torch.cuda.current_device()).name
        if impl != "auto" and got != impl:
            raise RuntimeError(f"SpikingJelly picked {got!r}")
    elif impl not in ("torch", "auto"):
        raise RuntimeError("SpikingJelly's CUDA implementations need a GPU")
    lif = neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0,
                         surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m").to(device)

    def run(x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(lif)
        return lif(x)

    return run


def _snntorch(device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    import snntorch as snn

    leaky = snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero", spike_grad=snn.surrogate.sigmoid(slope=4)).to(device)

    def run(x: torch.Tensor) -> torch.Tensor:
        mem = leaky.init_leaky()
        out = []
        for t in range(x.shape[0]):
            s, mem = leaky(x[t], mem)
            out.append(s)
        return torch.stack(out)

    return run


def make(case: str, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if case.startswith("snntrain-"):
        return _snntrain(case.split("-", 1)[1], device)
    if case.startswith("sj-"):
        return _spikingjelly(case.split("-", 1)[1], device)
    if case == "snntorch":
        return _snntorch(device)
    raise ValueError(case)


def time_case(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, reps: int) -> dict:
    cuda = x.is_cuda

    def step() -> torch.Tensor:
        x.grad = None
        s = fn(x)
        s.sum().backward()
        return s

    for _ in range(3):
        s = step()
    spikes = float(s.detach().float().sum())
    times = []
    for _ in range(reps):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    out = {"ms": statistics.median(times), "ms_min": min(times), "spikes": spikes}
    if cuda:
        x.grad = None
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        out["peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        x.grad = None
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            s = fn(x)
        saved.pop(x.untyped_storage().data_ptr(), None)
        out["saved_mb"] = sum(saved.values()) / 2**20
        del s
    return out


def run(device: str, Ts: list[int], dtypes: list[str], N: int, C: int, reps: int, cases: list[str]) -> list[dict]:
    rows = []
    for dt in dtypes:
        for T in Ts:
            g = torch.Generator().manual_seed(0)
            x = (torch.randn(T, N, C, generator=g) * 1.5 + 0.8).to(device=device, dtype=DTYPES[dt]).requires_grad_()
            ref = None
            for case in cases:
                row = {"case": case, "dtype": dt, "T": T, "N": N, "C": C}
                try:
                    row.update(time_case(make(case, device), x, reps))
                except Exception as e:  # a case this machine or dtype cannot run is a result too
                    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                if case in SAME_MATH and "spikes" in row:
                    ref = row["spikes"] if ref is None else ref
                    # same math, same input: the spike counts agree up to fp rounding at the threshold
                    row["spikes_match"] = abs(row["spikes"] - ref) <= max(1.0, 1e-4 * ref)
                rows.append(row)
                print(_line(row), flush=True)
            del x
            if device == "cuda":
                torch.cuda.empty_cache()
    return rows


def _line(r: dict) -> str:
    head = f"{r['case']:<16} {r['dtype']:<5} T={r['T']:<3}"
    if "error" in r:
        return f"{head} -- {r['error'][:110]}"
    mem = f"{r['peak_mb']:9.1f} MB peak" if "peak_mb" in r else f"{r['saved_mb']:9.1f} MB saved"
    ok = "" if r.get("spikes_match", True) else "  SPIKES DIFFER"
    return f"{head} {r['ms']:9.3f} ms  {mem}{ok}"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--T", default="4,32")
    ap.add_argument("--dtypes", default="fp16,fp32")
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--C", type=int, default=65536)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--cases", default="snntrain-torch,snntrain-fused,snntrain-triton,sj-torch,sj-triton,sj-cuda,sj-auto,snntorch")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    rows = run(a.device, [int(t) for t in a.T.split(",")], a.dtypes.split(","), a.N, a.C, a.reps, a.cases.split(","))
    result = {
        "device": torch.cuda.get_device_name() if a.device == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "shape": {"N": a.N, "C": a.C}, "reps": a.reps, "rows": rows,
    }
    path = Path(a.json) if a.json else Path(__file__).parent / "results" / f"lif_kernels_{a.device}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
