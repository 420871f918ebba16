"""``snntrain-eval``: evaluate a run's checkpoint on its test set, as the run itself did.

    snntrain-eval outputs/2026-11-23/14-00-00            # checkpoints/last.pt: the numbers of metrics.json
    snntrain-eval <run dir> --checkpoint best            # checkpoints/best.pt
    snntrain-eval <file.pt> dataset.root=/data device=cuda --json

The checkpoint's own config rebuilds the data, the encoder and the network (``key=value``
arguments override it, e.g. where the data now lives), its weights are loaded, and the
trainer's own evaluation runs: test accuracy, loss and the firing rate of every spiking
stage. Evaluation is deterministic (a stochastic encoder is seeded from the run's seed),
so the test accuracy of ``last.pt`` equals ``test_acc`` in the run's ``metrics.json``.
From Python: :func:`evaluate_checkpoint`.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .errors import ConfigError


def _override(cfg: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"{item!r}: overrides are key=value (e.g. dataset.root=/data).")
    import yaml

    value = yaml.safe_load(raw) if raw else None
    node = cfg
    *path, last = key.split(".")
    for part in path:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"{key}: the checkpoint's config has no section {part!r}; sections: {', '.join(cfg)}.")
        node = node[part]
    node[last] = value


def rebuild(path: str, overrides: list[str] = (), checkpoint: str = "last",  # type: ignore[assignment]
            device: str | None = None) -> tuple[Any, dict[str, Any]]:
    """``(trainer, checkpoint)``: the run's trainer (data, network, ...) rebuilt from its checkpoint's config
    (with ``overrides``), the checkpoint's weights loaded. Shared by ``snntrain-eval`` and ``snntrain-export``."""
    import torch

    from .training import checkpoint as ck
    from .training.engine import build_trainer

    ckpt = ck.load(path, key="checkpoint", name={"last": ck.LAST, "best": ck.BEST}[checkpoint])
    ck.check_run_fields(ckpt, key="checkpoint")  # a well-typed config and position before anything is built
    cfg = ckpt["config"]
    for item in overrides:
        _override(cfg, item)
    if device is not None:
        cfg["device"] = device
    dev = cfg.get("device", "auto")
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if dev == "auto" else dev
    trainer = build_trainer(cfg, dev)
    try:  # every weight: present, the network's dtype and shape, finite
        ck.check_fits({"model": ckpt["model"], "path": ckpt["path"]}, {"model": trainer.state_dict()["model"]},
                      key="checkpoint")
    except ConfigError as err:
        hint = (" If an override changed the network, leave out overrides of model.*, neuron.*, norm.* or the "
                "dataset's shape." if overrides else "")
        raise ConfigError(f"{err}{hint}") from None
    trainer.model.load_state_dict(ckpt["model"])
    return trainer, ckpt


def evaluate_checkpoint(path: str, overrides: list[str] = (), checkpoint: str = "last",  # type: ignore[assignment]
                        device: str | None = None) -> dict[str, Any]:
    """Test metrics of the checkpoint at ``path`` (a run directory or a ``.pt`` file)."""
    trainer, ckpt = rebuild(path, overrides, checkpoint, device)
    epoch = int(ckpt.get("epoch", 1))
    metrics = trainer.evaluate(max(epoch - 1, 0), last=True)
    return {"checkpoint": ckpt["path"], "epoch": epoch, **metrics}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="snntrain-eval", description="Evaluate a snntrain checkpoint on its test set.")
    ap.add_argument("run", help="a run directory (uses checkpoints/last.pt) or a checkpoint file")
    ap.add_argument("overrides", nargs="*", help="key=value changes to the checkpoint's config (e.g. dataset.root=/data)")
    ap.add_argument("--checkpoint", choices=["last", "best"], default="last", help="which checkpoint of a run directory")
    ap.add_argument("--device", default=None, help="cpu | cuda | cuda:<index> (default: the run's setting)")
    ap.add_argument("--json", action="store_true", help="print the metrics as JSON")
    a = ap.parse_args(argv)
    try:
        m = evaluate_checkpoint(a.run, a.overrides, a.checkpoint, a.device)
    except ConfigError as err:
        print(f"snntrain-eval: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    if a.json:
        print(json.dumps(m, indent=2))
        return
    print(f"{m['checkpoint']} (after epoch {m['epoch']})")
    print(f"test accuracy {m['test_acc']:.4f}  test loss {m['test_loss']:.4f}")
    for stage, rate in m.get("firing_rates", {}).items():
        print(f"  {stage:<10} firing rate {rate:.4f}")


if __name__ == "__main__":
    main()
