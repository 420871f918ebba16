"""One validation path for a run's config, run before anything is built or written.

* top-level keys and the shared ``trainer.*`` keys: :mod:`snntrain.training.schema`;
* each component group (``model``, ``neuron``, ..., ``trainer``) names a registered
  component, whose arguments the registry checks when it is built;
* the trainer's own arguments (e.g. ``trainer.units`` of ``trainer=stdp``) are the
  arguments of the registered trainer, checked by the registry the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..registry import entry
from .schema import GRADIENT_KEYS, LOOP, RESUME_MAY_DIFFER, TOP, check_section, precheck


@dataclass(frozen=True)
class RunSpec:
    """The checked run settings: ``loop`` (the shared ``trainer.*`` keys) and the trainer's own arguments."""

    loop: dict[str, Any]
    trainer: str
    trainer_args: dict[str, Any]


def section_args(section: dict[str, Any]) -> dict[str, Any]:
    """A component section without its ``name``: the arguments for the registry."""
    return {k: v for k, v in section.items() if k != "name"}


def validate(cfg: dict[str, Any]) -> RunSpec:
    """Raise :class:`ConfigError` naming the first bad key; return the checked run settings."""
    precheck(cfg)
    tc = cfg["trainer"]
    trainer = entry("trainer", tc["name"]).name  # unknown names: an error listing the trainers
    own = [p.name for p in entry("trainer", trainer).user_params()]
    objectives = getattr(entry("trainer", trainer).obj, "objectives", {})
    metric = cfg.get("optimized_metric", TOP["optimized_metric"].default)
    if metric not in objectives:
        raise ConfigError(f"optimized_metric: trainer={trainer} reports no final metric {metric!r}; choose one of "
                          f"{', '.join(objectives)}.")
    loop = check_section({k: v for k, v in tc.items() if k in LOOP or k not in own and k != "name"}, LOOP,
                         "trainer.", f"trainer={trainer}", also_valid=tuple(own))
    if getattr(entry("trainer", trainer).obj, "gradient_free", False):
        for key in GRADIENT_KEYS:
            if loop[key] != LOOP[key].default:
                raise ConfigError(f"trainer.{key}: trainer={trainer} follows no gradients, so this key has no effect; "
                                  f"leave it at {LOOP[key].default!r}.")
    for key, unset in (("persistent_workers", False), ("prefetch_factor", None)):
        if loop["num_workers"] == 0 and loop[key] != unset:
            raise ConfigError(
                f"trainer.{key}: only applies with DataLoader worker processes, but trainer.num_workers is 0; "
                f"set trainer.num_workers >= 1 or leave trainer.{key} at {str(unset).lower() if unset is False else 'null'}."
            )
    device = cfg["device"]
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {device} was asked for but torch sees no CUDA device here; use device=cpu or device=auto.")
    return RunSpec(loop=loop, trainer=trainer, trainer_args={k: v for k, v in tc.items() if k in own})


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
            f"(they are in its .hydra/overrides.yaml) plus resume=<run dir>; only "
            f"{', '.join(RESUME_MAY_DIFFER[1:])} may change."
        )
