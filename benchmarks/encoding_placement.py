"""Where should static inputs be encoded into spike sequences: DataLoader workers or the step?

Measures, for MNIST-sized batches ([B, 1, 28, 28]) and rate coding with T steps:

* ``in_step``: the loader yields static batches; the batch is encoded after it arrives
  (on the model's device; here the CPU) -- snntrain's choice;
* ``in_worker``: the loader's collate function encodes, so batches arrive as [T, B, ...].

For each, samples/s of "load + encode" (no model) with 0 and 2 worker processes, and
the bytes each batch carries to the device. Also the time of one encoding against one
training step (forward + backward) of the spiking VGG on the same batch, i.e. the share
of a step that encoding costs where it runs in the step. Results go to
benchmarks/results/encoding_placement.json.

    python benchmarks/encoding_placement.py [--T 8] [--batches 40]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.dataloader import default_collate

from snntrain import build


class EncodeCollate:
    def __init__(self, encoder):
        self.encoder = encoder

    def __call__(self, samples):
        x, y = default_collate(samples)
        return self.encoder(x), y


def measure(loader, encoder, batches: int) -> tuple[float, int]:
    n, nbytes, t0 = 0, 0, time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if i == batches:
            break
        seq = encoder(x) if encoder is not None else x
        nbytes = x.numel() * x.element_size()
        n += seq.shape[1]
    return n / (time.perf_counter() - t0), nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--batches", type=int, default=40)
    args = ap.parse_args()
    torch.manual_seed(0)
    data = TensorDataset(torch.rand(args.batch_size * args.batches, 1, 28, 28), torch.zeros(args.batch_size * args.batches, dtype=torch.long))
    encoder = build("encoder", "rate", context={"T": args.T})
    rows = []
    for workers in (0, 2):
        for placement in ("in_step", "in_worker"):
            kw = dict(batch_size=args.batch_size, num_workers=workers)
            if placement == "in_worker":
                loader, enc = DataLoader(data, collate_fn=EncodeCollate(encoder), **kw), None
            else:
                loader, enc = DataLoader(data, **kw), encoder
            measure(loader, enc, 3)  # warm-up (worker start-up)
            rate, nbytes = measure(loader, enc, args.batches)
            rows.append({"placement": placement, "num_workers": workers, "samples_per_s": round(rate),
                         "bytes_to_device_per_batch": nbytes})
            print(f"{placement:10s} workers={workers}  {rate:10.0f} samples/s  {nbytes / 1e6:6.2f} MB per batch to the device")
    from snntrain.models import make_factories

    neuron, norm = make_factories({"name": "lif"}, {"name": "atan"}, {"name": "bn"}, args.T)
    model = build("model", "vgg", context={"in_shape": (1, 28, 28), "num_classes": 10, "T": args.T, "neuron": neuron, "norm": norm})
    x = data.tensors[0][: args.batch_size]

    def timed(fn, reps=5):
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps

    encode_s = timed(lambda: encoder(x))
    step_s = timed(lambda: model(encoder(x)).mean().backward())
    print(f"encoding {encode_s * 1e3:.2f} ms vs training step {step_s * 1e3:.1f} ms: {100 * encode_s / step_s:.2f}% of a step")
    out = {"T": args.T, "encode_ms": round(encode_s * 1e3, 3), "vgg_step_ms": round(step_s * 1e3, 2),
           "encode_share_of_step": round(encode_s / step_s, 5), "batch_size": args.batch_size, "torch": torch.__version__, "machine": platform.machine(),
           "threads": torch.get_num_threads(), "results": rows}
    path = Path(__file__).parent / "results" / "encoding_placement.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
