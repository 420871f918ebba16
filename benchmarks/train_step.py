"""Training-step cost of a spiking network: snntrain's backends vs snnTorch vs SpikingJelly vs the ANN limit.

One training step = forward over T steps, cross-entropy on the time-averaged readout,
backward, Adam. Workloads (every LIF: decay 0.5, threshold 1, subtract reset, arc-tangent
surrogate with alpha 2):

* A: MLP 784-1000-10 (one LIF layer), T=25, B=128, Bernoulli (rate-coded) input;
* B: conv net on 3x32x32 analog input repeated over T: [conv3x3 -> BN -> LIF] with 64,
  128, 256 channels, a 2x2 average pool after the first two, global average pool, linear
  256-10; T=4, B=32;
* C: B at T=16.

Cases: ``snntrain-torch`` / ``snntrain-fused`` / ``snntrain-triton`` (CUDA) (the neuron
backend; bit-packed synapse inputs on), ``snntrain-fused-nopack`` (bit packing off),
``snntrain-<fused|triton>-bf16`` / ``-int8`` (``neuron.grad_storage``), ``snntorch`` (``Leaky``,
its usual per-step loop), ``spikingjelly`` (multi-step ``LIFNode``, torch backend; cupy
and triton too when on a GPU where they import), and ``ann`` (the same layers with ReLU on
a ``[T*B, ...]`` batch: what the synapses alone cost). A case name ending in ``@bf16``
runs the step under ``torch.autocast`` in bfloat16 (what ``trainer.precision=bf16-mixed``
does; its ratio is still to the float32 ANN limit). All cases run in one process,
interleaved round by round. Reported: median ms per step, its ratio to the ANN limit,
the bytes autograd saves for backward (unique storages, counted with saved-tensor hooks
during one forward), and peak memory (CUDA: ``max_memory_allocated``; CPU: the rise of
the peak resident set size, ``VmHWM``, over one step, in a fresh subprocess per case).

    python benchmarks/train_step.py [--workloads A,B,C] [--rounds 8] [--device cpu] [--threads 2]
    python benchmarks/train_step.py --saved-only    # the bytes saved for backward only (deterministic, quick)

Results go to ``benchmarks/results/train_step_<device>.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from machine import describe, has_bf16_units
from torch import Tensor, nn

WORKLOADS = {"A": dict(kind="mlp", T=25, B=128), "B": dict(kind="conv", T=4, B=32), "C": dict(kind="conv", T=16, B=32)}


# ---------------------------------------------------------------- models
def snntrain_model(kind: str, backend: str, pack: bool, storage: str = "exact") -> nn.Module:
    from snntrain import build
    from snntrain.layers.synapse import SeqWrap
    from snntrain.models.net import SpikingNet  # the container of snntrain's models (neuron + 2x2 pool fused)

    def lif(shape):
        return build("neuron", "lif", context={"shape": shape}, decay=0.5, backend=backend, grad_storage=storage)

    def seq(m):
        return SeqWrap(m, pack_spikes=pack)

    if kind == "mlp":
        return SpikingNet(seq(nn.Flatten(1)), seq(nn.Linear(784, 1000)), lif((1000,)), seq(nn.Linear(1000, 10)))
    layers: list[nn.Module] = []
    c_in, size = 3, 32
    for i, c in enumerate((64, 128, 256)):
        layers += [seq(nn.Conv2d(c_in, c, 3, padding=1, bias=False)), seq(nn.BatchNorm2d(c)), lif((c, size, size))]
        if i < 2:
            layers.append(seq(nn.AvgPool2d(2)))
            size //= 2
        c_in = c
    layers += [seq(nn.AdaptiveAvgPool2d(1)), seq(nn.Flatten(1)), seq(nn.Linear(256, 10))]
    return SpikingNet(*layers)


def ann_layers(kind: str) -> nn.Sequential:
    """The same synapses with ReLU, for a [T*B, ...] batch."""
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(1), nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 10))
    layers: list[nn.Module] = []
    c_in = 3
    for i, c in enumerate((64, 128, 256)):
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
        if i < 2:
            layers.append(nn.AvgPool2d(2))
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(256, 10))


class ANN(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.net = ann_layers(kind)

    def forward(self, x_seq: Tensor) -> Tensor:
        y = self.net(x_seq.flatten(0, 1))
        return y.view(x_seq.shape[0], x_seq.shape[1], -1)


class SnnTorchNet(nn.Module):
    """snnTorch's usual form: per time step, every layer, a Leaky carrying its membrane."""

    def __init__(self, kind: str):
        super().__init__()
        import snntorch as snn

        self.layers = ann_layers(kind)
        for i, m in enumerate(self.layers):
            if isinstance(m, nn.ReLU):
                self.layers[i] = snn.Leaky(beta=0.5, spike_grad=snn.surrogate.atan(alpha=2.0))

    def forward(self, x_seq: Tensor) -> Tensor:
        import snntorch as snn

        mems = {i: m.init_leaky() for i, m in enumerate(self.layers) if isinstance(m, snn.Leaky)}
        out = []
        for x in x_seq:
            for i, m in enumerate(self.layers):
                if i in mems:
                    x, mems[i] = m(x, mems[i])
                else:
                    x = m(x)
            out.append(x)
        return torch.stack(out)


class SpikingJellyNet(nn.Module):
    def __init__(self, kind: str, backend: str = "torch"):
        super().__init__()
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        self.functional = functional
        mods: list[nn.Module] = []
        for m in ann_layers(kind):
            if isinstance(m, nn.ReLU):
                lif = neuron.LIFNode(tau=2.0, decay_input=False, v_reset=None, surrogate_function=surrogate.ATan(), step_mode="m")
                if backend != "torch":
                    assert backend in lif.supported_backends, f"SpikingJelly's LIFNode has no {backend} backend here"
                    lif.backend = backend
                mods.append(lif)
            else:
                mods.append(layer.SeqToANNContainer(m))
        self.net = nn.Sequential(*mods)

    def forward(self, x_seq: Tensor) -> Tensor:
        self.functional.reset_net(self.net)
        return self.net(x_seq)


def make_case(name: str, kind: str) -> nn.Module:
    name = name.split("@")[0]
    if name == "ann":
        return ANN(kind)
    if name == "snntorch":
        return SnnTorchNet(kind)
    if name.startswith("spikingjelly"):
        return SpikingJellyNet(kind, name.split("-")[1] if "-" in name else "torch")
    backend, *opt = name.split("-")[1:]
    storage = opt[0] if opt and opt[0] in ("bf16", "int8") else "exact"
    return snntrain_model(kind, backend, pack="nopack" not in opt, storage=storage)


def cases(device: str) -> list[str]:
    """Every case for ``device``; the bf16-autocast cases on the CPU only where it has bf16 units (elsewhere
    bf16 is emulated, many times slower than float32, and says nothing about snntrain)."""
    ours = "snntrain-triton" if device == "cuda" else "snntrain-fused"
    names = ["ann", "snntrain-torch", "snntrain-fused", "snntrain-fused-nopack", f"{ours}-bf16", f"{ours}-int8",
             "snntorch", "spikingjelly"]
    if device == "cuda":
        names[3:3] = ["snntrain-triton"]
        names += ["spikingjelly-cupy", "spikingjelly-triton"]
    if device == "cuda" or has_bf16_units():
        names += ["ann@bf16", f"{ours}@bf16"]
    else:
        print("  the bf16 autocast cases are left out: this CPU has no bf16 units (AVX512-BF16 or AMX)")
    return names


# ---------------------------------------------------------------- one training step
def make_step(model: nn.Module, T: int, B: int, kind: str, device: str, amp: bool = False) -> Callable[[], None]:
    g = torch.Generator().manual_seed(0)
    shape = (B, 1, 28, 28) if kind == "mlp" else (B, 3, 32, 32)
    img = torch.rand(shape, generator=g).to(device)
    target = torch.randint(0, 10, (B,), generator=g).to(device)
    x_seq = img.unsqueeze(0).expand(T, *shape).contiguous()
    if kind == "mlp":  # rate coding: one Bernoulli draw per pixel and step (fixed, so every case sees the same)
        x_seq = torch.bernoulli(x_seq.cpu(), generator=g).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def forward() -> Tensor:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            return model(x_seq)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward().float().mean(0), target)
        loss.backward()
        opt.step()

    step.forward = forward  # type: ignore[attr-defined]
    return step


def saved_bytes(step: Callable[[], None]) -> int:
    """Bytes of the unique storages autograd saves during one forward (parameters excluded)."""
    seen: dict[int, int] = {}
    params = set()

    def pack(t: Tensor) -> Tensor:
        s = t.untyped_storage()
        if not isinstance(t, nn.Parameter):
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = step.forward()  # type: ignore[attr-defined]
    del out, params
    return sum(seen.values())


def peak_cpu_subprocess(name: str, workload: str, threads: int) -> int:
    cmd = [sys.executable, __file__, "--peak-of", name, "--workloads", workload, "--threads", str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        print(f"  peak of {name}: failed: {r.stderr.strip().splitlines()[-1:]}")
        return -1
    return int(r.stdout.strip().splitlines()[-1])


def peak_cpu_here(name: str, workload: str) -> int:
    w = WORKLOADS[workload]
    torch.manual_seed(0)
    model = make_case(name, w["kind"])
    step = make_step(model, w["T"], w["B"], w["kind"], "cpu", amp=name.endswith("@bf16"))
    before = _hwm()
    step()
    return _hwm() - before


def _hwm() -> int:
    """Peak resident set size of this process in bytes (``VmHWM``: per address space, so a fresh
    subprocess does not inherit its parent's peak as ``ru_maxrss`` does across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_workload(workload: str, rounds: int, device: str, threads: int, only: list[str] | None = None,
                 saved_only: bool = False, measure_peak: bool = True) -> dict:
    w = WORKLOADS[workload]
    steps, saved, peak, times = {}, {}, {}, {}
    for name in cases(device) if only is None else ["ann", *only]:
        try:
            torch.manual_seed(0)
            model = make_case(name, w["kind"]).to(device)
            steps[name] = make_step(model, w["T"], w["B"], w["kind"], device, amp=name.endswith("@bf16"))
        except Exception as e:  # a peer backend that does not import here
            print(f"  {name}: skipped ({type(e).__name__}: {e})".splitlines()[0])
            continue
        saved[name] = saved_bytes(steps[name])
        times[name] = []
        if saved_only:
            del steps[name]
    if saved_only:
        rows = {n: {"saved_MB": round(b / 2**20, 1), "saved_x_limit": round(b / saved["ann"], 3)} for n, b in saved.items()}
        return {"workload": workload, **w, "cases": rows}
    for name, step in steps.items():  # warm-up
        step()
        step()
    for _ in range(rounds):  # interleaved, round by round
        for name, step in steps.items():
            sync(device)
            t0 = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    for name, step in steps.items():
        if not measure_peak:
            peak[name] = None
        elif device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step()
            sync(device)
            peak[name] = torch.cuda.max_memory_allocated() - base
        else:
            peak[name] = peak_cpu_subprocess(name, workload, threads)
    limit = statistics.median(times["ann"])
    rows = {}
    for name in steps:
        med = statistics.median(times[name])
        rows[name] = {
            "ms": round(med * 1e3, 2), "x_limit": round(med / limit, 3), "saved_MB": round(saved[name] / 2**20, 1),
            "saved_x_limit": round(saved[name] / saved["ann"], 3), "peak_MB": None if peak[name] is None else round(peak[name] / 2**20, 1),
        }
    return {"workload": workload, **w, "rounds": rounds, "cases": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="A,B,C")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default=None, help="comma-separated subset of the cases (ann is always run)")
    ap.add_argument("--saved-only", action="store_true", help="only the bytes saved for backward (no timing)")
    ap.add_argument("--no-peak", action="store_true", help="skip the peak-memory measurement (a subprocess per case on CPU)")
    ap.add_argument("--peak-of", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.peak_of:
        print(peak_cpu_here(a.peak_of, a.workloads))
        return
    machine = {
        "device": torch.cuda.get_device_name() if a.device == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
        **describe(),
    }
    print(f"machine: {machine}")
    results = []
    for wl in a.workloads.split(","):
        r = run_workload(wl, a.rounds, a.device, a.threads, a.cases.split(",") if a.cases else None, a.saved_only,
                         not a.no_peak)
        results.append(r)
        if a.saved_only:
            print(f"\n{wl}: {r['kind']} T={r['T']} B={r['B']}: saved for backward")
            for name, c in r["cases"].items():
                print(f"  {name:24s} {c['saved_MB']:9.1f} MB {c['saved_x_limit']:8.3f} x limit")
            continue
        print(f"\n{wl}: {r['kind']} T={r['T']} B={r['B']} ({a.rounds} rounds)")
        print(f"  {'case':24s} {'ms/step':>9s} {'x limit':>8s} {'saved MB':>9s} {'x limit':>8s} {'peak MB':>8s}")
        for name, c in r["cases"].items():
            print(f"  {name:24s} {c['ms']:9.1f} {c['x_limit']:8.2f} {c['saved_MB']:9.1f} {c['saved_x_limit']:8.2f} {'-' if c['peak_MB'] is None else format(c['peak_MB'], '.1f'):>8s}")
    suffix = "_saved" if a.saved_only else "_partial" if a.cases else ""
    path = Path(__file__).parent / "results" / f"train_step_{a.device}{suffix}.json"
    path.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
