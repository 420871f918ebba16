"""Checkpoints: a plain dict saved atomically, loaded with clear errors.

Contents: ``model``, ``optimizer``, ``scheduler`` (state dicts of the unwrapped
modules), ``epoch`` (epochs completed), ``best_test_acc``, ``history`` (one record
per epoch), ``config`` (the resolved config as plain containers), ``rng`` (torch's CPU
generator state, so a resumed run draws the same random numbers; ``cuda_rng`` the same
for CUDA devices, or None), ``version``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError

LAST, BEST = "last.pt", "best.pt"


def save(payload: dict[str, Any], path: Path) -> None:
    """Write to a temporary file and rename it, so a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def resolve(resume: str) -> Path:
    """A run directory (uses its ``checkpoints/last.pt``) or a checkpoint file."""
    p = Path(resume).expanduser()
    if p.is_dir():
        p = p / "checkpoints" / LAST
    if not p.is_file():
        raise ConfigError(
            f"resume: no checkpoint at {p}. Pass a run directory that holds checkpoints/{LAST} "
            f"(e.g. resume=outputs/2026-01-01/12-00-00) or a .pt file written by snntrain."
        )
    return p.resolve()


def load(resume: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = resolve(resume)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, not a torch file, foreign pickle...
        raise ConfigError(
            f"resume: {path} is not a readable snntrain checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}). Point resume= at another run's "
            f"checkpoints/{LAST} or {BEST}."
        ) from None
    missing = {"model", "optimizer", "scheduler", "epoch", "config", "rng"} - set(ckpt if isinstance(ckpt, dict) else ())
    if missing:
        raise ConfigError(
            f"resume: {path} lacks {', '.join(sorted(missing))}; it was not written by snntrain's trainer. "
            f"Point resume= at a run directory made by `snntrain`."
        )
    ckpt["path"] = str(path)
    return ckpt


def guard_run_dir(run_dir: Path, resumed: dict[str, Any] | None) -> None:
    """Refuse to write into a run directory that holds another run's checkpoints.

    Continuing the run that lives there (``resume=<that dir>``) is allowed.
    """
    ckpt_dir = Path(run_dir) / "checkpoints"
    if (ckpt_dir / LAST).exists() and not (resumed and Path(resumed["path"]).parent == ckpt_dir.resolve()):
        raise ConfigError(
            f"run directory {run_dir} already holds checkpoints of an earlier run; they are left as they are. "
            f"Pick a new directory (hydra.run.dir=...) or continue that run with resume={run_dir}."
        )


def rng_states(device: torch.device) -> dict[str, Any]:
    """Generator states to store in a checkpoint, so a resumed run draws the same numbers."""
    return {"rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}


def restore_rng(ckpt: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(ckpt["rng"].cpu())
    if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["cuda_rng"]])
