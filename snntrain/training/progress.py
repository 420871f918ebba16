"""Progress of a run: a rich bar per epoch with ETAs for the epoch and for the whole run.

The bar is drawn only on a terminal; the per-epoch log line (see the engine) carries the
run's ETA too, for logs and batch jobs. Estimates (:func:`etas`):

- epoch ETA: the epoch's elapsed time per batch so far times the batches left in it;
- run ETA: the epoch ETA plus the epochs after this one times the mean wall time of the
  epochs this process has finished (training, evaluation and checkpoints: everything an
  epoch costs); before any has finished, this epoch's projected training time stands in.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def etas(elapsed: float, done: int, total: int, epochs_after: int,
         epoch_seconds: Sequence[float] = ()) -> tuple[float, float] | None:
    """``(epoch ETA, run ETA)`` in seconds after ``done`` of ``total`` batches in ``elapsed`` seconds,
    with ``epochs_after`` epochs still to come; None before the first batch."""
    if done <= 0:
        return None
    per_batch = elapsed / done
    epoch_left = per_batch * max(total - done, 0)
    return epoch_left, epoch_left + epochs_left(epochs_after, epoch_seconds or [per_batch * total])


def epochs_left(epochs: int, epoch_seconds: Sequence[float]) -> float:
    """Seconds for ``epochs`` more epochs at the mean of ``epoch_seconds`` (the finished epochs' wall times)."""
    return epochs * sum(epoch_seconds) / len(epoch_seconds) if epochs else 0.0


def clock(seconds: float) -> str:
    """``h:mm:ss``, as rich prints times."""
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class EpochProgress:
    """Bar with batches done, elapsed time, the epoch's and the run's ETA, and a status text.

    The status callable is evaluated at most ~5 times a second, so reading losses off
    the device does not stall every step.
    """

    def __init__(self, title: str, total: int, enabled: bool = True, epochs_after: int = 0,
                 epoch_seconds: Sequence[float] = ()):
        console = Console(file=sys.stderr)
        self.enabled = enabled and console.is_terminal
        self.total, self.done, self._last = total, 0, 0.0
        self.epochs_after, self.epoch_seconds = epochs_after, list(epoch_seconds)
        self._t0 = time.perf_counter()
        if self.enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[eta]}"), TextColumn("{task.fields[status]}"),
                console=console, transient=True,
            )
            self.task = self.progress.add_task(title, total=total, status="", eta="")

    def __enter__(self) -> "EpochProgress":
        self._t0 = time.perf_counter()
        if self.enabled:
            self.progress.start()
        return self

    def eta_text(self) -> str:
        """``eta 0:00:12 (run 0:03:40)``, or "" before the first batch."""
        e = etas(time.perf_counter() - self._t0, self.done, self.total, self.epochs_after, self.epoch_seconds)
        if e is None:
            return ""
        return f"eta {clock(e[0])}" + (f" (run {clock(e[1])})" if self.epochs_after else "")

    def advance(self, status: Callable[[], str]) -> None:
        self.done += 1
        if not self.enabled:
            return
        now = time.perf_counter()
        fields = {}
        if now - self._last > 0.2 or self.done == self.total:
            fields["status"], fields["eta"], self._last = status(), self.eta_text(), now
        self.progress.update(self.task, advance=1, **fields)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.stop()
