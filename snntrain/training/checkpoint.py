"""Checkpoints: plain dicts, written atomically, read without running code.

A checkpoint holds ``model``, ``optimizer``, ``scheduler`` (state dicts of the unwrapped
modules; the trainer may add its own entries), ``epoch`` (epochs completed),
``position`` (where in the run it was taken: ``epoch`` index, ``batch`` = batches done
in that epoch, ``step`` = optimizer steps in the whole run, ``evaluated``), ``accum``
(the epoch's running sums, so the epoch's train metrics come out as without the
stop), ``best_test_acc``, ``history`` (one record per finished epoch), ``config``
(the resolved config), ``rng`` / ``cuda_rng`` (generator states), ``version``.

Writing (:func:`save`): a temporary file in the same folder, flushed and fsynced,
renamed over the target, then the folder fsynced, so a crash or a full disk never
leaves half a checkpoint and never touches the previous one. Reading (:func:`load`)
uses ``torch.load(weights_only=True)``, which refuses any object but tensors and
plain containers: a crafted file cannot run code.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, StorageError

LAST, BEST = "last.pt", "best.pt"
STEP_GLOB = "step-*.pt"
TMP_SUFFIX = ".tmp"
#: keys every snntrain checkpoint has
REQUIRED = ("model", "epoch", "config", "rng", "position")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _storage_error(path: Path, err: OSError, what: str) -> StorageError:
    why = os.strerror(err.errno) if err.errno else str(err)
    hint = ("free some space (or point hydra.run.dir at a disk with room)" if err.errno in (errno.ENOSPC, errno.EDQUOT)
            else "check that the folder exists and is writable")
    return StorageError(
        f"could not write {what} {path}: {why}. The previous version of that file (if any) is intact; "
        f"{hint}, then continue the run with resume={path.parent.parent if path.parent.name == 'checkpoints' else path.parent}."
    )


def write_atomic(path: Path, writer, what: str = "file") -> None:
    """``writer(file_object)`` into ``path.tmp``, fsync, rename over ``path``, fsync the folder."""
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _storage_error(path, err, what) from None
    except RuntimeError as err:  # torch.save reports a failed write as a C++ error, e.g. "basic_ios::clear"
        tmp.unlink(missing_ok=True)
        raise _storage_error(path, OSError(0, f"the write failed ({' '.join(str(err).split())[:200]})"), what) from None


def save(payload: dict[str, Any], path: Path) -> None:
    """Save a checkpoint atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda f: torch.save(payload, f), "checkpoint")


def link(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (a hard link, else a copy), atomically."""
    tmp = target.with_name(target.name + TMP_SUFFIX)
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:  # file systems without hard links
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _storage_error(target, err, "checkpoint") from None


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete ``*.tmp`` files a killed run left behind (call only while holding the run's lock)."""
    stale = sorted(Path(folder).glob("*" + TMP_SUFFIX)) if Path(folder).is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def step_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:09d}.pt"


def prune_steps(folder: Path, keep: int) -> None:
    """Keep the newest ``keep`` step checkpoints (``last.pt``/``best.pt`` are separate files or links)."""
    steps = sorted(Path(folder).glob(STEP_GLOB))
    for p in steps[: max(len(steps) - keep, 0)]:
        p.unlink(missing_ok=True)


def resolve(resume: str, key: str = "resume", name: str = LAST) -> Path:
    """A run directory (uses its ``checkpoints/<name>``) or a checkpoint file; ``key`` names the option in errors."""
    p = Path(resume).expanduser()
    if p.is_dir():
        p = p / "checkpoints" / name
    if not p.is_file():
        raise ConfigError(
            f"{key}: no checkpoint at {p}. Pass a run directory that holds checkpoints/{name} "
            f"(e.g. outputs/2026-01-01/12-00-00) or a .pt file written by snntrain."
        )
    return p.resolve()


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _why_unreadable(err: Exception) -> str:
    """A one-line reason from torch.load's error, ANSI colour codes removed."""
    text = _ANSI.sub("", str(err))
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (f"it contains the Python object {found.group(1)}, which is not a tensor or plain data; loading it "
                f"could run code, so it was refused")
    if "weights only load failed" in text.lower() or "unsupported operand" in text.lower():
        return "it contains Python objects other than tensors and plain data; loading it could run code, so it was refused"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "no detail")
    return f"{type(err).__name__}: {first[:300]}"


def load(resume: str, map_location: str | torch.device = "cpu", key: str = "resume", name: str = LAST) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; every failure is a one-paragraph :class:`ConfigError`."""
    path = resolve(resume, key, name)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, not a torch file, a pickle with code in it...
        raise ConfigError(
            f"{key}: {path} is not a readable snntrain checkpoint ({_why_unreadable(err)}). Point {key} at "
            f"another run's checkpoints/{LAST} or {BEST}."
        ) from None
    missing = set(REQUIRED) - set(ckpt if isinstance(ckpt, dict) else ())
    if missing:
        raise ConfigError(
            f"{key}: {path} lacks {', '.join(sorted(missing))}; it was not written by this version of snntrain's "
            f"run engine. Point {key} at a run directory made by `snntrain`."
        )
    ckpt["path"] = str(path)
    return ckpt


def all_finite(obj: Any) -> bool:
    """Whether every floating-point tensor inside ``obj`` (nested dicts/lists) is finite."""
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(all_finite(v) for v in obj)
    if isinstance(obj, float):
        return obj == obj and obj not in (float("inf"), float("-inf"))
    return True


def rng_states(device: torch.device) -> dict[str, Any]:
    """Generator states to store in a checkpoint, so a resumed run draws the same numbers."""
    return {"rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}


def restore_rng(ckpt: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(ckpt["rng"].cpu())
    if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["cuda_rng"]])
