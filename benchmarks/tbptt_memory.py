"""Truncated BPTT: the most bytes autograd holds for backward at once, full BPTT vs chunks of K steps.

    python benchmarks/tbptt_memory.py [--T 32] [--K 1 4 8]

Counts every tensor saved for backward (``torch.autograd.graph.saved_tensors_hooks``),
adding it when saved and releasing it when the backward that used it has run, during one
training step of the spiking VGG (``model=vgg``, 8x8 digits) with the ``bn`` norm.
"""
from __future__ import annotations

import argparse
import json
import weakref

import torch

from snntrain.training import build_trainer
from hydra import compose, initialize_config_module


class _Box:
    __slots__ = ("t", "__weakref__")

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t


class Peak:
    """Bytes of saved tensors alive now and at most (a tensor saved twice counts twice, as it may)."""

    def __init__(self) -> None:
        self.now = self.peak = 0

    def pack(self, t: torch.Tensor):
        n = t.numel() * t.element_size()
        self.now += n
        self.peak = max(self.peak, self.now)
        box = _Box(t)
        weakref.finalize(box, self.release, n)
        return box

    def release(self, n: int) -> None:
        self.now -= n

    @staticmethod
    def unpack(box):
        return box.t


def peak_bytes(T: int, K: int | None) -> int:
    with initialize_config_module(config_module="snntrain.configs", version_base=None):
        cfg = compose(config_name="train", overrides=[f"T={T}", "model=vgg", "norm=bn", "trainer.progress=false",
                                                      f"trainer.tbptt_steps={'null' if K is None else K}"])
    torch.manual_seed(0)
    trainer = build_trainer(cfg)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    meter = Peak()
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        trainer.train_step(x, y)
    return meter.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=32)
    ap.add_argument("--K", type=int, nargs="+", default=[1, 4, 8])
    a = ap.parse_args()
    full = peak_bytes(a.T, None)
    rows = [{"tbptt_steps": None, "peak_saved_MB": full / 2**20, "ratio": 1.0}]
    for k in a.K:
        b = peak_bytes(a.T, k)
        rows.append({"tbptt_steps": k, "peak_saved_MB": b / 2**20, "ratio": b / full})
    print(f"T={a.T}, model=vgg norm=bn, batch 64 (8x8 digits): most bytes saved for backward at once")
    for r in rows:
        print(f"  tbptt_steps={str(r['tbptt_steps']):>4}: {r['peak_saved_MB']:8.2f} MB  ({r['ratio']:.3f} of full BPTT)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
