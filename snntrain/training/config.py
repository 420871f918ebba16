"""Checks on the top-level config values, run before anything is built."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError

GROUPS = ("model", "neuron", "surrogate", "norm", "dataset", "encoder", "optimizer", "scheduler", "loss")
#: keys that may differ between a checkpoint's config and the run that resumes it
RESUME_MAY_DIFFER = ("resume", "device", "trainer.num_workers", "trainer.progress", "trainer.eval_batch_size")


def _int(cfg: dict[str, Any], key: str, low: int, allow_none: bool = False) -> None:
    node = cfg
    *parents, leaf = key.split(".")
    for p in parents:
        node = node.get(p) or {}
    value = node.get(leaf)
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        extra = " or null" if allow_none else ""
        raise ConfigError(f"{key}: must be an integer >= {low}{extra}, got {value!r}. Set it with {key}=<value>.")


def validate(cfg: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the first bad top-level key."""
    for group in GROUPS:
        section = cfg.get(group)
        if not isinstance(section, dict) or "name" not in section:
            raise ConfigError(
                f"{group}: the config has no {group} section with a 'name'. Choose one with {group}=<name> "
                f"(see `snntrain-list {group}`)."
            )
    mode = (cfg.get("trainer") or {}).get("mode", "bptt")
    from .loop import TRAINERS

    if mode != "bptt" and mode not in TRAINERS:
        raise ConfigError(f"trainer.mode: unknown mode {mode!r}. Valid modes: {', '.join(['bptt', *TRAINERS])}.")
    _int(cfg, "T", 1)
    _int(cfg, "seed", 0)
    _int(cfg, "trainer.epochs", 1)
    _int(cfg, "trainer.batch_size", 1)
    _int(cfg, "trainer.eval_batch_size", 1)
    _int(cfg, "trainer.limit_batches", 1, allow_none=True)
    _int(cfg, "trainer.num_workers", 0)
    tc = cfg.get("trainer") or {}
    if tc.get("pin_memory", "auto") not in ("auto", True, False):
        raise ConfigError(f"trainer.pin_memory: must be auto, true or false, got {tc['pin_memory']!r}.")
    if tc.get("num_workers", 0) == 0 and (tc.get("persistent_workers") or tc.get("prefetch_factor") is not None):
        raise ConfigError(
            "trainer.persistent_workers / trainer.prefetch_factor only apply with worker processes; "
            "set trainer.num_workers >= 1 or leave them at false / null."
        )
    if tc.get("prefetch_factor") is not None:
        _int(cfg, "trainer.prefetch_factor", 1)
    device = cfg.get("device")
    if device not in ("auto", "cpu", "cuda") and not (isinstance(device, str) and device.startswith("cuda:")):
        raise ConfigError(f"device: must be auto, cpu, cuda or cuda:<index>, got {device!r}.")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {device} was asked for but torch sees no CUDA device here; use device=cpu or device=auto.")
    if cfg.get("resume") is not None and not isinstance(cfg["resume"], str):
        raise ConfigError(f"resume: must be a run directory or checkpoint path, got {cfg['resume']!r}.")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_resumable(saved: dict[str, Any], now: dict[str, Any], path: str) -> None:
    """A resumed run must use the config it was started with (apart from :data:`RESUME_MAY_DIFFER`)."""
    a, b = _flatten(saved), _flatten(now)
    diffs = [k for k in sorted(set(a) | set(b)) if k not in RESUME_MAY_DIFFER and a.get(k) != b.get(k)]
    if diffs:
        shown = "; ".join(f"{k}: checkpoint {a.get(k)!r}, now {b.get(k)!r}" for k in diffs[:6])
        raise ConfigError(
            f"resume: this run's config differs from the one that wrote {path} ({shown}"
            f"{'; ...' if len(diffs) > 6 else ''}). Resume with the same overrides as the original run "
            f"(they are in its .hydra/overrides.yaml) plus resume=<run dir>."
        )
