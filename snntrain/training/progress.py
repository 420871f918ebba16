"""A rich progress bar for one epoch; silent when the output is not a terminal."""
from __future__ import annotations

import sys
import time
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class EpochProgress:
    """Bar with batches done, elapsed time, throughput and a status text.

    The status callable is evaluated at most ~5 times a second, so reading losses off
    the device does not stall every step.
    """

    def __init__(self, title: str, total: int, enabled: bool = True):
        console = Console(file=sys.stderr)
        self.enabled = enabled and console.is_terminal
        self.total, self.done, self._last = total, 0, 0.0
        if self.enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[status]}"), console=console, transient=True,
            )
            self.task = self.progress.add_task(title, total=total, status="")

    def __enter__(self) -> "EpochProgress":
        if self.enabled:
            self.progress.start()
        return self

    def advance(self, status: Callable[[], str]) -> None:
        self.done += 1
        if not self.enabled:
            return
        now = time.perf_counter()
        fields = {}
        if now - self._last > 0.2 or self.done == self.total:
            fields["status"], self._last = status(), now
        self.progress.update(self.task, advance=1, **fields)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.stop()
