"""Memory of one training step as T grows: BPTT, truncated BPTT, recomputation, SLTT, OTTT; SpikingJelly's peers.

Workload C of ``benchmarks/train_step.py``: on 3x32x32, [conv3x3 -> BN -> LIF] with 64, 128,
256 channels, a 2x2 max pool after the first two, global average pool, linear 256-10;
B=32, the image repeated over T; LIF decay 0.5, threshold 1, atan surrogate. One step =
forward, cross-entropy, backward, SGD. Run at T = 4, 16, 32.

Cases (all in this process):

* ``bptt``: the whole sequence, one graph (snntrain's default neuron backend);
* ``tbptt``: truncated BPTT in chunks of 4 steps (``trainer.tbptt_steps=4``);
* ``recompute``: ``trainer.recompute=stage`` (each [conv, BN, LIF] stage recomputed, inputs as bits);
* ``sltt`` / ``ottt``: snntrain's trainers' step loops (one step's graph at a time);
* ``sj-sltt`` / ``sj-ottt``: SpikingJelly's ``SLTTLIFNode`` / ``OTTTLIFNode`` (+ ``OTTTSequential``),
  single-step mode, each step's loss back-propagated at once (its documented usage);
* ``sj-memopt``: SpikingJelly's multi-step net with every stage wrapped by
  ``memopt.checkpoint_module`` and the ``BitSpikeCompressor``.

Reported per case and T: **saved** — the largest number of bytes autograd holds for the
backward at any moment of the step (the tensors saved, each counted once by its own size —
a step's slice of the input counts as that slice —, counted with saved-tensor hooks and
released when their graph is freed; parameters excluded). It is deterministic. SpikingJelly's
memopt keeps what it needs outside autograd's saved tensors, so its *saved* column is not
comparable: compare it by *peak* (CUDA). **peak** — CUDA only (``max_memory_allocated`` over the step, minus what was
allocated before). **ms/step** — the median of ``--rounds`` steps; only meaningful on an idle
machine. ``--json`` writes ``benchmarks/results/memory_<device>.json``.

    python benchmarks/memory.py [--T 4,16,32] [--rounds 3] [--device cpu] [--cases bptt,sltt,...] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import snntrain_model  # noqa: E402  (workload C's network, built the same way)

B = 32
CASES = ["bptt", "tbptt", "recompute", "sltt", "ottt", "sj-sltt", "sj-ottt", "sj-memopt"]


# ---------------------------------------------------------------- saved bytes, live
class Live:
    """Saved-tensor hooks that count the bytes autograd holds now and the most it held."""

    def __init__(self) -> None:
        self.refs: dict[tuple, list] = {}  # (data pointer, elements) -> [bytes, holders]
        self.now = self.peak = 0

    def pack(self, t: Tensor):
        if isinstance(t, nn.Parameter):
            return t
        live = self
        key = (t.data_ptr(), t.numel())  # the tensor's own bytes: a step's slice of the input is not the whole input
        nbytes = t.numel() * t.element_size()

        class Holder:
            def __init__(self) -> None:
                self.t = t
                entry = live.refs.setdefault(key, [nbytes, 0])
                if entry[1] == 0:
                    live.now += entry[0]
                    live.peak = max(live.peak, live.now)
                entry[1] += 1

            def __del__(self) -> None:
                entry = live.refs.get(key)
                if entry is not None:
                    entry[1] -= 1
                    if entry[1] == 0:
                        live.now -= entry[0]
                        del live.refs[key]

        return Holder()

    @staticmethod
    def unpack(h):
        return h if isinstance(h, Tensor) else h.t


# ---------------------------------------------------------------- the steps
def batch(T: int, device: str) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(B, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (B,), generator=g)
    return img.unsqueeze(0).expand(T, B, 3, 32, 32).contiguous().to(device), y.to(device)


def ours(case: str, device: str) -> tuple[nn.Module, Callable[[Tensor, Tensor], None]]:
    from snntrain.layers.carry import carry_state
    from snntrain.models import SpikingNet
    from snntrain.training.ottt import trace_synapses
    from snntrain.training.recompute import Recompute

    model = SpikingNet(*snntrain_model("conv", "auto", True)).to(device)
    net: nn.Module = Recompute(model) if case == "recompute" else model
    if case == "ottt":
        trace_synapses(model, 0.5)

    def whole(x: Tensor, y: Tensor) -> None:
        F.cross_entropy(net(x).mean(0), y).backward()

    def chunks(x: Tensor, y: Tensor, K: int) -> None:
        T = x.shape[0]
        with carry_state(model) as carry:
            for s in range(0, T, K):
                c = x[s : s + K]
                (F.cross_entropy(model(c).mean(0), y) * (len(c) / T)).backward()
                carry.next_chunk()

    if case in ("bptt", "recompute"):
        return model, whole
    return model, (lambda x, y: chunks(x, y, 4)) if case == "tbptt" else (lambda x, y: chunks(x, y, 1))


def peer(case: str, device: str) -> tuple[nn.Module, Callable[[Tensor, Tensor], None]]:
    from spikingjelly.activation_based import functional, layer, memopt, neuron, surrogate
    from spikingjelly.activation_based.layer.online_learning import OTTTSequential

    def stages(node: Callable[[], nn.Module], wrap) -> list[nn.Module]:
        mods, c_in = [], 3
        for i, c in enumerate((64, 128, 256)):
            mods.append(wrap(nn.Conv2d(c_in, c, 3, padding=1, bias=False)))
            mods.append(wrap(nn.BatchNorm2d(c)))
            mods.append(node())
            if i < 2:
                mods.append(wrap(nn.MaxPool2d(2)))
            c_in = c
        return [*mods, wrap(nn.AdaptiveAvgPool2d(1)), wrap(nn.Flatten(1)), wrap(nn.Linear(256, 10))]

    if case == "sj-memopt":
        def lif():
            return neuron.LIFNode(tau=2.0, decay_input=False, v_reset=None, surrogate_function=surrogate.ATan(),
                                  step_mode="m")
        mods = stages(lif, layer.SeqToANNContainer)
        groups = [nn.Sequential(*mods[0:3]), nn.Sequential(*mods[3:7]), nn.Sequential(*mods[7:11]), nn.Sequential(*mods[11:])]
        comp = memopt.compress.BitSpikeCompressor()
        model = nn.Sequential(*[memopt.checkpoint_module(g, compressor=comp) for g in groups[:3]], groups[3]).to(device)

        def step(x: Tensor, y: Tensor) -> None:
            functional.reset_net(model)
            F.cross_entropy(model(x).mean(0), y).backward()

        return model, step
    node_cls = neuron.SLTTLIFNode if case == "sj-sltt" else neuron.OTTTLIFNode
    kw = dict(decay_input=False, v_reset=None) if case == "sj-sltt" else {}
    mods = stages(lambda: node_cls(tau=2.0, surrogate_function=surrogate.ATan(), **kw), lambda m: m)
    model = (OTTTSequential(*mods) if case == "sj-ottt" else nn.Sequential(*mods)).to(device)

    def online(x: Tensor, y: Tensor) -> None:
        functional.reset_net(model)
        T = x.shape[0]
        for t in range(T):
            (F.cross_entropy(model(x[t]), y) / T).backward()

    return model, online


def measure(case: str, T: int, device: str, rounds: int) -> dict:
    model, step = (peer if case.startswith("sj-") else ours)(case, device)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = batch(T, device)
    live = Live()
    opt.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(live.pack, live.unpack):
        step(x, y)
    opt.step()
    peak = None
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        opt.zero_grad(set_to_none=True)
        step(x, y)
        opt.step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    times = []
    for _ in range(rounds):
        opt.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step(x, y)
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"case": case, "T": T, "saved_bytes": live.peak, "peak_bytes": peak,
            "ms_per_step": statistics.median(times) if times else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", default="4,16,32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    Ts = [int(t) for t in a.T.split(",")]
    print(f"workload C (conv 64-128-256, B={B}) on {a.device}; saved = most bytes held for backward at once")
    print(f"{'case':<11}{'T':>4}{'saved MB':>11}{'x T=4':>8}{'x bptt':>8}{'peak MB':>10}{'ms/step':>10}")
    for case in a.cases.split(","):
        for T in Ts:
            r = measure(case, T, a.device, a.rounds)
            rows.append(r)
    by = {(r["case"], r["T"]): r for r in rows}
    for r in rows:
        first = by.get((r["case"], Ts[0]))
        bptt = by.get(("bptt", r["T"]))
        rel_t = r["saved_bytes"] / first["saved_bytes"] if first and first["saved_bytes"] else float("nan")
        rel_b = r["saved_bytes"] / bptt["saved_bytes"] if bptt and bptt["saved_bytes"] else float("nan")
        peak = f"{r['peak_bytes'] / 2**20:10.1f}" if r["peak_bytes"] is not None else f"{'-':>10}"
        ms = f"{r['ms_per_step']:10.1f}" if r["ms_per_step"] is not None else f"{'-':>10}"
        print(f"{r['case']:<11}{r['T']:>4}{r['saved_bytes'] / 2**20:11.2f}{rel_t:8.2f}{rel_b:8.2f}{peak}{ms}")
    if a.json:
        out = Path(__file__).resolve().parent / "results" / f"memory_{a.device.split(':')[0]}.json"
        out.write_text(json.dumps({"workload": "C", "B": B, "rows": rows}, indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
