"""The run directory: one run owns it, and nothing is written there before the run is accepted.

Life of a run directory (see :class:`RunDir`):

1. **claim** (``__enter__``): refuse at once if the folder holds another run's checkpoints
   (unless this run resumes that very folder) or if another live process holds its lock
   file ``.snntrain.lock`` (an exclusive ``flock``, released by the kernel when the holder
   dies, even by SIGKILL). Nothing in the folder is changed by a refused run.
2. **accept** (:meth:`RunDir.accept`), once every component was built without error:
   stale ``*.tmp`` files of a killed run are removed, the files the caller passes (the
   command line's ``.hydra/config.yaml``, ``overrides.yaml``, ``hydra.yaml``) are written,
   and ``train.log`` starts.
3. **release** (``__exit__``): the lock is dropped. A run that failed before it was
   accepted takes back what it created (the lock file, and the folder itself if it is
   left empty), so a config error leaves no trace on disk.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

LOCK = ".snntrain.lock"
LOG_NAME = "train.log"
log = logging.getLogger("snntrain")

try:
    import fcntl
except ImportError:  # Windows: no flock; the checkpoint guard still applies
    fcntl = None  # type: ignore[assignment]


class RunDir:
    """Exclusive ownership of ``path`` for one run (a context manager; see the module doc)."""

    def __init__(self, path: str | Path, resumed: dict[str, Any] | None = None):
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"
        self.resumed = resumed
        self.accepted = False
        self._fd: int | None = None
        self._created: list[Path] = []
        self._log_handler: logging.Handler | None = None

    # ---- claim ------------------------------------------------------------------------
    def _holds_other_run(self) -> bool:
        from . import checkpoint

        if not (self.ckpt_dir / checkpoint.LAST).exists():
            return False
        own = self.resumed and Path(self.resumed["path"]).parent == self.ckpt_dir.resolve()
        return not own

    def _refuse_other_run(self) -> None:
        if self._holds_other_run():
            raise ConfigError(
                f"run directory {self.path} already holds checkpoints of an earlier run; they are left as they are. "
                f"Pick a new directory (hydra.run.dir=...) or continue that run with resume={self.path}."
            )

    def _lock(self, create: bool) -> None:
        lock = self.path / LOCK
        if lock.is_symlink():
            raise ConfigError(f"run directory {self.path}: its lock file {lock} is a symbolic link; snntrain never "
                              f"writes through a link. Remove it, then run again.")
        flags = os.O_RDWR | (os.O_CREAT if create else 0) | getattr(os, "O_NOFOLLOW", 0)
        self._fd = os.open(lock, flags, 0o644)
        if fcntl is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(self._fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            self._fd = None
            raise ConfigError(
                f"run directory {self.path} is in use by another snntrain run (process {owner}); nothing in it "
                f"was changed. Wait for that run to end, or pick a new directory (hydra.run.dir=...)."
            ) from None

    def __enter__(self) -> "RunDir":
        lock = self.path / LOCK
        if lock.exists() or lock.is_symlink():
            self._lock(create=False)  # a live run holds it: refuse, whatever else the folder holds
        self._refuse_other_run()  # before creating anything in the folder
        if self._fd is None:
            missing = []
            p = self.path
            while not p.exists():
                missing.append(p)
                p = p.parent
            self.path.mkdir(parents=True, exist_ok=True)
            self._created += reversed(missing)  # outermost first, so rollback removes the innermost first
            if not lock.exists():
                self._created.append(lock)
            try:
                self._lock(create=True)
            except ConfigError:
                self._created.clear()
                raise
            try:
                self._refuse_other_run()  # another run may have written checkpoints between the check and the lock
            except ConfigError:
                self.__exit__()
                raise
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)
        return self

    # ---- accept -----------------------------------------------------------------------
    def accept(self, files: dict[str, str] | None = None) -> None:
        """The run is valid: clean up after killed runs, write ``files`` (relative path -> text), start train.log."""
        from . import checkpoint

        checkpoint.remove_stale_temporaries(self.ckpt_dir)
        for rel, text in (files or {}).items():
            target = self.path / rel
            checkpoint.write_atomic(target, lambda f, t=text: f.write(t.encode()), "run file")
        checkpoint.refuse_symlink(self.path / LOG_NAME, "log file")
        handler = logging.FileHandler(self.path / LOG_NAME, encoding="utf-8")
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
        logging.getLogger("snntrain").addHandler(handler)
        if logging.getLogger("snntrain").getEffectiveLevel() > logging.INFO:
            logging.getLogger("snntrain").setLevel(logging.INFO)
        self._log_handler = handler
        self.accepted = True

    # ---- release ----------------------------------------------------------------------
    def __exit__(self, *exc: Any) -> None:
        if self._log_handler is not None:
            logging.getLogger("snntrain").removeHandler(self._log_handler)
            self._log_handler.close()
        if self._fd is not None:
            if not self.accepted:  # roll back: the run never started
                for p in reversed(self._created):
                    try:
                        p.unlink() if p.name == LOCK else p.rmdir()
                    except OSError:
                        pass
            os.close(self._fd)  # releases the flock
            self._fd = None


def remove_if_empty(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents while they are empty, never ``stop`` or above it."""
    path, stop = Path(path).resolve(), Path(stop).resolve()
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


def _elastic_file(run_id: str) -> Path:
    import hashlib
    import tempfile

    return Path(tempfile.gettempdir()) / "snntrain-elastic" / hashlib.sha256(run_id.encode()).hexdigest()[:32]


def remember_elastic(run_id: str, path: Path) -> None:
    """Record that torchrun's run ``run_id`` trains in ``path`` (rank 0, when the run is accepted)."""
    from . import checkpoint

    checkpoint.write_text(_elastic_file(run_id), str(Path(path).resolve()), "elastic run record")


def elastic_previous(run_id: str) -> Path | None:
    """The run directory torchrun's run ``run_id`` trained in before a restart, if one was recorded."""
    f = _elastic_file(run_id)
    if f.is_symlink() or not f.is_file():
        return None
    p = Path(f.read_text().strip())
    return p if p.is_dir() else None
