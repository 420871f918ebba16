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


_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "seq", "map")}


def parse_value(key: str, raw: str) -> Any:
    """The YAML value ``raw`` of override ``key``: plain scalars, lists and maps only.

    No tags (``!!python/...``, ``!!binary``), no anchors or aliases (a few hundred characters of
    nested aliases expand to gigabytes), at most 4096 characters, the characters and 64-bit
    integers the command line allows (:mod:`snntrain.overrides`).
    """
    import yaml

    from .overrides import INT64, MAX_VALUE, _ascii_form, _char_problem

    if len(raw) > MAX_VALUE:
        raise ConfigError(f"{key}: the value is {len(raw)} characters long; values are limited to {MAX_VALUE}.")
    problem = _char_problem(raw)
    if problem:
        fix = _ascii_form(raw)
        raise ConfigError(f"{key}: the value {problem}.{f' Did you mean {key}={fix}?' if fix else ''}")
    if "${" in raw:
        raise ConfigError(f"{key}: {raw!r} is an interpolation; snntrain-eval takes plain values.")
    if not raw.strip():
        raise ConfigError(f"{key}: the value is empty; give a value, or null where the key allows none ({key}=null).")
    try:
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{key}: {raw[:60]!r} is not a YAML value ({' '.join(str(err).split())[:160]}).") from None
    seen: set[int] = set()
    todo = [node] if node is not None else []
    while todo:
        n = todo.pop()
        if id(n) in seen:
            raise ConfigError(f"{key}: YAML anchors and aliases (&name, *name) are not accepted in overrides; write "
                              f"the value out.")
        seen.add(id(n))
        if n.tag not in _PLAIN_TAGS:
            raise ConfigError(f"{key}: the YAML tag {n.tag!r} is not accepted; overrides are plain numbers, strings, "
                              f"true/false, null, lists [a, b] and maps {{a: 1}}.")
        if isinstance(n.value, list):
            for item in n.value:
                todo.extend(item if isinstance(item, tuple) else [item])
    value = yaml.safe_load(raw)
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, int) and not isinstance(v, bool) and not -INT64 <= v < INT64:
            raise ConfigError(f"{key}: {str(v)[:30]}... is too large: integers here are 64-bit.")
        if isinstance(v, float) and v != v:
            continue
        stack.extend(v.values() if isinstance(v, dict) else v if isinstance(v, list) else [])
    return value


def _split(item: str) -> tuple[str, str]:
    from .overrides import _KEY

    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"{item[:60]}: overrides are key=value (e.g. dataset.root=/data).")
    if not _KEY.fullmatch(key) or "/" in key or "@" in key:
        shown = key[:60].encode("ascii", "backslashreplace").decode()
        raise ConfigError(f"{shown}: not a config key; keys are dotted names such as dataset.root or T.")
    return key, raw


def _override(cfg: dict[str, Any], item: str) -> None:
    key, raw = _split(item)
    value = parse_value(key, raw)
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
    from .training import budget

    with budget.enforcing("eval"):  # the memory budget of an evaluation: no gradients, no optimizer
        trainer, ckpt = rebuild(path, overrides, checkpoint, device)
    epoch = int(ckpt.get("epoch", 1))
    metrics = trainer.evaluate(max(epoch - 1, 0), last=True)
    return {"checkpoint": ckpt["path"], "epoch": epoch, **metrics}


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line, like every other error of the command."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message}. See {self.prog} --help.", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    ap = _Parser(prog="snntrain-eval", description="Evaluate a snntrain checkpoint on its test set.")
    ap.add_argument("run", help="a run directory (uses checkpoints/last.pt) or a checkpoint file")
    ap.add_argument("overrides", nargs="*", help="key=value changes to the checkpoint's config (e.g. dataset.root=/data)")
    ap.add_argument("--checkpoint", choices=["last", "best"], default="last", help="which checkpoint of a run directory")
    ap.add_argument("--device", default=None, help="cpu | cuda | cuda:<index> (default: the run's setting)")
    ap.add_argument("--json", action="store_true", help="print the metrics as JSON")
    a = ap.parse_args(argv)
    try:
        for item in a.overrides:  # every override is read before the checkpoint is
            parse_value(*_split(item))
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
    sops, energy = m.get("sops") or {}, m.get("energy_uJ") or {}
    if sops:
        print(f"synaptic operations per sample: {sops['ac']:,.0f} AC + {sops['mac']:,.0f} MAC "
              f"(an ANN of the same shape: {sops['dense']:,.0f} MAC)")
    if energy:
        print(f"energy per sample: {energy['snn']:.4g} uJ (the ANN: {energy['ann']:.4g} uJ, ratio "
              f"{energy['snn_over_ann']:.3g})")


if __name__ == "__main__":
    main()
