"""Checkpoints: plain dicts, written atomically, read without running code.

A checkpoint holds ``model``, ``optimizer``, ``scheduler`` (state dicts of the unwrapped
modules; the trainer may add its own entries), ``epoch`` (epochs completed),
``position`` (where in the run it was taken: ``epoch`` index, ``batch`` = batches done
in that epoch, ``step`` = optimizer steps in the whole run, ``evaluated``), ``accum``
(the epoch's running sums, so the epoch's train metrics come out as without the
stop), ``best_test_acc``, ``history`` (one record per finished epoch), ``config``
(the resolved config), ``rng`` / ``cuda_rng`` (generator states), ``version``.

Writing (:func:`write_atomic`, the one writer for every run file): a new temporary file
in the same folder, flushed and fsynced, renamed over the target, then the folder
fsynced, so a crash or a full disk never leaves half a file and never touches the
previous one; a target that is a symbolic link is refused (never written through).
Reading (:func:`load`) uses ``torch.load(weights_only=True)``, which refuses any object
but tensors and plain containers: a crafted file cannot run code. Before a run loads a
checkpoint, :func:`check_run_fields` checks the engine's entries and :func:`check_fits`
every tensor against the network built to receive it (dtype, shape, finiteness, keys).

Policy (:class:`CheckpointSaver`): which files (``last.pt``, ``best.pt``, ``step-<n>.pt``),
when, how many kept; nothing non-finite is ever written.
"""
from __future__ import annotations

import errno
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, StorageError
from ..kernels.cpu import ENGINES

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


def _run_of(path: Path) -> Path:
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def _storage_error(path: Path, err: OSError, what: str, of_run: bool = True) -> StorageError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        why = f"{os.strerror(err.errno).lower()} ({errno.errorcode[err.errno]})"
        hint = "free some space (or point hydra.run.dir at a disk with room)"
    else:
        why = os.strerror(err.errno) if err.errno else str(err)
        hint = "check that the folder exists and is writable"
    after = ""
    if of_run:  # a run's file: say how the run goes on
        run = _run_of(path)
        after = (f", then continue the run with resume={run}" if (run / "checkpoints" / LAST).is_file()
                 else "; no checkpoint of this run had been written, so it starts again from the beginning")
    return StorageError(f"could not write {what} {path}: {why}. The previous version of that file (if any) is intact; "
                        f"{hint}{after}.")


class _Recorded:
    """A file object that remembers the first OSError of a write (torch.save reports it as a C++ RuntimeError)."""

    def __init__(self, f: Any):
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def refuse_symlink(path: Path, what: str = "file") -> None:
    """Raise :class:`StorageError` if ``path`` is a symbolic link (a writer must never write through one)."""
    if os.path.islink(path):
        raise StorageError(
            f"could not write {what} {path}: it is a symbolic link (to {os.readlink(path)}), and snntrain never writes "
            f"through a link (it could overwrite a file outside the run). Remove the link, then run again."
        )


def write_atomic(path: Path, writer, what: str = "file", of_run: bool = True) -> None:
    """``writer(file_object)`` into a new temporary file in ``path``'s folder, fsync, rename over ``path``,
    fsync the folder. Never follows a symbolic link: a linked ``path`` is refused, and the temporary file
    is created exclusively (``O_EXCL``), so no link planted under its name is followed either. Every
    writer of snntrain's files uses this (checkpoints, ``metrics.json``, ``.hydra/*.yaml``, sweep
    summaries, export reports). A failure is a :class:`StorageError`; ``of_run``: its message says how
    to continue the run ``path`` belongs to."""
    path = Path(path)
    refuse_symlink(path, what)
    tmp: Path | None = None
    rec: _Recorded | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=TMP_SUFFIX)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as f:
            rec = _Recorded(f)
            writer(rec)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        refuse_symlink(path, what)  # a link put there while this was written
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise _storage_error(path, err, what, of_run) from None
    except RuntimeError as err:  # torch.save reports a failed write as a C++ error, e.g. "basic_ios::clear"
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        cause = rec.error if rec is not None and rec.error is not None else \
            OSError(0, f"the write failed ({' '.join(str(err).split())[:200]})")
        raise _storage_error(path, cause, what, of_run) from None


def write_text(path: Path, text: str, what: str = "file") -> None:
    """``text`` (UTF-8) into ``path`` with :func:`write_atomic`."""
    write_atomic(path, lambda f: f.write(text.encode()), what)


def append_line(path: Path, line: str, what: str = "file") -> None:
    """Append ``line`` (one ``write``, so concurrent appenders do not interleave) to ``path``, created if
    missing; a symbolic link at ``path`` is refused (``O_NOFOLLOW``), never written through."""
    path = Path(path)
    refuse_symlink(path, what)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError as err:
        if err.errno == errno.ELOOP:  # a link put there after the check
            refuse_symlink(path, what)
        raise _storage_error(path, err, what) from None


def save(payload: dict[str, Any], path: Path) -> None:
    """Save a checkpoint atomically (see :func:`write_atomic`)."""
    from . import faults

    def write(f: Any) -> None:
        torch.save(payload, f)
        faults.checkpoint_written(f)

    write_atomic(path, write, "checkpoint")


def link(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (a hard link, else a copy), atomically; never through a link."""
    refuse_symlink(target, "checkpoint")
    tmp = Path(tempfile.mktemp(dir=target.parent, prefix=target.name + ".", suffix=TMP_SUFFIX))
    try:
        try:
            os.link(source, tmp)  # fails if anything exists at tmp: nothing is followed
        except OSError as err:
            if err.errno == errno.EEXIST:
                raise
            shutil.copyfile(source, tmp, follow_symlinks=False)
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


# ---- validation against the run that will load it ------------------------------------------
def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(n) for n in t.shape) + "]"


def _kind(v: Any) -> str:
    return f"a tensor {str(v.dtype).replace('torch.', '')}{_shape(v)}" if isinstance(v, torch.Tensor) else \
        f"a {type(v).__name__}"


def _mismatch(got: Any, want: Any, name: str, exact: bool) -> str | None:
    """Why ``got`` (from a checkpoint) cannot stand where ``want`` (the built run's) is; None if it can."""
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{name} is {_kind(got)}, expected {_kind(want)}"
        if got.dtype != want.dtype or got.shape != want.shape:
            return f"{name} is {_kind(got)}, the network built from the config has {_kind(want)}"
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            return f"{name} holds non-finite values (NaN or infinity)"
        return None
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{name} is {_kind(got)}, expected a dict"
        tensors = bool(want) and all(isinstance(v, torch.Tensor) for v in want.values())
        if want and (exact or tensors):
            missing = [k for k in want if k not in got]
            extra = [k for k in got if k not in want] if tensors else []
            if missing:
                return f"{name}.{missing[0]} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            if extra:
                return f"{name}.{extra[0]} is not a part of the network built from the config" + (
                    f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        for k, v in got.items():
            why = _mismatch(v, want[k], f"{name}.{k}", exact) if k in want else _loose(v, f"{name}.{k}")
            if why:
                return why
        return None
    if isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"{name} is {_kind(got)}, expected a list"
        if want and len(got) != len(want):
            return f"{name} has {len(got)} entries, the run built from the config has {len(want)}"
        for i, v in enumerate(got):
            why = _mismatch(v, want[i], f"{name}.{i}", exact) if want else _loose(v, f"{name}.{i}")
            if why:
                return why
        return None
    if isinstance(want, bool) or want is None or isinstance(want, str):
        return None if want is None or type(got) is type(want) or got is None else \
            f"{name} is {_kind(got)}, expected a {type(want).__name__}"
    if isinstance(want, (int, float)):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return f"{name} is {_kind(got)}, expected a number"
        if isinstance(got, float) and not math.isfinite(got) and math.isfinite(want):
            return f"{name} is {got}, expected a finite number"
    return None


def _loose(got: Any, name: str) -> str | None:
    """Checks for an entry the built run has no counterpart of (e.g. optimizer moments before the first
    step): only finiteness of its tensors."""
    if isinstance(got, torch.Tensor):
        return None if not got.is_floating_point() or bool(torch.isfinite(got).all()) else \
            f"{name} holds non-finite values (NaN or infinity)"
    if isinstance(got, dict):
        return next((w for k, v in got.items() if (w := _loose(v, f"{name}.{k}"))), None)
    if isinstance(got, (list, tuple)):
        return next((w for i, v in enumerate(got) if (w := _loose(v, f"{name}.{i}"))), None)
    return None


def check_fits(ckpt: dict[str, Any], expected: dict[str, Any], key: str = "resume") -> None:
    """Refuse (one-paragraph :class:`ConfigError` naming the entry) a checkpoint whose entries do not fit
    ``expected``, the state of the run built to load it (``trainer.state_dict()``): every tensor present,
    of the same dtype and shape and finite; plain values of the same type; module state dicts with exactly
    the same keys."""
    for part, want in expected.items():
        why = _mismatch(ckpt[part], want, part, exact=False) if part in ckpt else f"{part} is missing"
        if why:
            raise ConfigError(
                f"{key}: {ckpt.get('path', 'the checkpoint')} does not fit the run built to load it: {why}. It was "
                f"written by another model or config, or it was damaged; point {key} at a checkpoint of this run "
                f"(or rebuild the network with the config that wrote it)."
            )


#: the run engine's own entries (:class:`~snntrain.training.state.RunState`) and the type each must have
_RUN_FIELDS: dict[str, Any] = {
    "epoch": 0, "position": {"epoch": 0, "batch": 0, "step": 0}, "history": [], "config": {"T": 0, "seed": 0},
    "rng": torch.zeros(0, dtype=torch.uint8),
}


def check_run_fields(ckpt: dict[str, Any], key: str = "resume") -> None:
    """The engine's entries of ``ckpt`` have the types it writes (a damaged or crafted file is refused by name)."""
    for part, want in _RUN_FIELDS.items():
        got = ckpt.get(part)
        why = _mismatch(got, want, part, exact=True) if not isinstance(want, torch.Tensor) else (
            None if isinstance(got, torch.Tensor) and got.dtype == torch.uint8 and got.dim() == 1 else
            f"{part} is {_kind(got)}, expected a uint8 vector (a generator state)")
        if why is None and part == "position" and any(isinstance(v, bool) or v < 0 for v in got.values()):
            why = f"position is {got}, expected counts >= 0"
        if why is None and part == "history" and not all(isinstance(h, dict) for h in got):
            why = "history holds an entry that is not a dict"
        if why:
            raise ConfigError(
                f"{key}: {ckpt.get('path', 'the checkpoint')} is damaged: {why}. Point {key} at another checkpoint of "
                f"the run (checkpoints/{BEST} or a step-*.pt) or start a new run."
            )
    engine = ckpt.get("cpu_neurons")
    if engine is not None and engine not in ENGINES:
        raise ConfigError(f"{key}: {ckpt['path']} is damaged: cpu_neurons is {engine!r}, expected one of "
                          f"{', '.join(ENGINES)} or null. Point {key} at another checkpoint of the run or start a new run.")
    best = ckpt.get("best_test_acc")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))):
        raise ConfigError(f"{key}: {ckpt['path']} is damaged: best_test_acc is {_kind(best)}, expected a number or "
                          f"null. Point {key} at another checkpoint of the run or start a new run.")


# ---- the saver: which files, when -----------------------------------------------------------
class CheckpointSaver:
    """The run's checkpoint files and their policy, in ``folder`` (``<run>/checkpoints``).

    * ``last.pt`` — :meth:`save_last` (every epoch end, and when a signal stops the run);
    * ``step-<n>.pt`` — :meth:`save_step` every ``every`` optimizer steps, the newest ``keep`` kept,
      ``last.pt`` then a hard link to the newest;
    * ``best.pt`` — :meth:`mark_best` links it to ``last.pt`` (the epoch with the best test accuracy);
      a run resumed into a new folder starts with the resumed run's (:meth:`adopt_best`).

    Every payload is checked first: a non-finite tensor or number is never written
    (:class:`NonFiniteState`). Ranks other than 0 (``write=False``) check and write nothing:
    building the payload is the collective part, done by the engine on every rank.
    """

    def __init__(self, folder: Path, keep: int, every: int | None, write: bool = True, saved_step: int = 0):
        self.folder, self.keep, self.every, self.write = Path(folder), keep, every, write
        #: the optimizer step of the newest checkpoint (the resumed one's at first)
        self.saved_step = saved_step

    @property
    def last(self) -> Path:
        return self.folder / LAST

    def due(self, step: int) -> bool:
        """Whether optimizer step ``step`` gets a step checkpoint."""
        return bool(self.every) and step % self.every == 0

    def _check(self, payload: dict[str, Any]) -> None:
        if not all_finite({k: v for k, v in payload.items() if k not in ("history", "config", "accum", "accum_ranks",
                                                                            "best_test_acc")}):
            raise NonFiniteState

    def save_last(self, payload: dict[str, Any]) -> None:
        self._check(payload)
        if self.write:
            save(payload, self.last)
        self.saved_step = payload["position"]["step"]

    def save_step(self, payload: dict[str, Any]) -> None:
        self._check(payload)
        step = payload["position"]["step"]
        if self.write:
            path = step_path(self.folder, step)
            save(payload, path)
            link(path, self.last)
            prune_steps(self.folder, self.keep)
        self.saved_step = step

    def mark_best(self) -> None:
        if self.write:
            link(self.last, self.folder / BEST)

    def adopt_best(self, resumed_path: str | Path) -> None:
        """A run resumed in a new folder starts with the best checkpoint of the run it continues."""
        source = Path(resumed_path).parent / BEST
        target = self.folder / BEST
        if self.write and source.is_file() and source.resolve() != target.resolve():
            self.folder.mkdir(parents=True, exist_ok=True)
            link(source, target)


class NonFiniteState(Exception):
    """A checkpoint payload held a non-finite tensor (the updates overflowed); nothing was written."""
