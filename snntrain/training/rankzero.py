"""Everything only rank 0 of a run does, in one object: the run loop calls it on every rank.

:class:`RankZero` owns the run directory (:class:`~snntrain.training.rundir.RunDir`: claim,
accept, release), the TensorBoard writer, ``metrics.json`` and the epoch's log line. On
rank 0 each call does its work; on the other ranks of a data-parallel run the same call
does nothing, so the loop reads the same on every rank. :meth:`RankZero.together` runs a
step on every rank and, if it refused on any rank (a :class:`ConfigError` or
:class:`RunError`), raises that refusal on every rank, so no rank waits for a collective
the others never reach. In a single-process run it is plain rank 0.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import ConfigError, RunError
from . import checkpoint, distributed
from .distributed import SINGLE, Dist
from .rundir import RunDir

log = logging.getLogger("snntrain")
R = TypeVar("R")


class RankZero:
    """Rank 0's run directory, TensorBoard writer, metrics file and log (no-ops on other ranks)."""

    def __init__(self, path: str | Path, resumed: dict[str, Any] | None, d: Dist = SINGLE):
        self.d = d
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"
        self.dir = RunDir(path, resumed) if d.main else None
        self.writer: Any = None

    @property
    def main(self) -> bool:
        return self.d.main

    def together(self, step: Callable[[], R]) -> R:
        """Run ``step()`` on every rank; if it refused on any rank, raise that refusal on every rank."""
        err, out = None, None
        try:
            out = step()
        except (ConfigError, RunError) as e:
            err = e
        if self.d.enabled:
            message = distributed.first_error(err, self.d)
            if message is not None and err is None:
                raise ConfigError(message)
        if err is not None:
            raise err
        return out  # type: ignore[return-value]

    # ---- the run directory -------------------------------------------------------------
    def claim(self) -> None:
        """Rank 0 claims the directory (see :mod:`~snntrain.training.rundir`); a refusal stops every rank."""
        self.together(lambda: self.dir.__enter__() if self.dir else None)

    def accept(self, files: dict[str, str] | None, before: Callable[[], None] = lambda: None) -> None:
        """``before()`` on every rank (a last check), then rank 0 accepts the directory and writes ``files``."""

        def step() -> None:
            before()
            if self.dir:
                self.dir.accept(files)

        self.together(step)

    def release(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.dir:
            self.dir.__exit__(None, None, None)

    # ---- TensorBoard -------------------------------------------------------------------
    def open_writer(self, purge_step: int) -> None:
        if self.main:
            from torch.utils.tensorboard import SummaryWriter  # imported late: slow, and only needed here

            self.writer = SummaryWriter(str(self.path / "tensorboard"), purge_step=purge_step)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def add_scalars(self, scalars: dict[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.add_scalar(tag, value, step)

    def add_text(self, tag: str, text: str, step: int) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def log_hparams(self, cfg: dict[str, Any], metrics: dict[str, Any], step: int) -> None:
        """The run's config and final metrics in TensorBoard's HParams dashboard (a sweep: one table)."""
        if self.writer is not None:
            from .dashboard import log_hparams

            log_hparams(self.writer, cfg, metrics, step)

    # ---- files and lines ---------------------------------------------------------------
    def write_metrics(self, text: str) -> None:
        if self.main:
            checkpoint.write_text(self.path / "metrics.json", text, "metrics file")

    def info(self, message: str) -> None:
        if self.main:
            log.info(message)
