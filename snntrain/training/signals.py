"""SIGINT and SIGTERM end a run at the next step boundary, with a checkpoint of that step.

Slurm, Kubernetes and ``kill`` send SIGTERM; Ctrl-C sends SIGINT. Inside
:class:`StopSignals` either one only sets :attr:`StopSignals.received`; the run engine
looks at it after every step, saves a checkpoint of that exact position and stops with
exit status 128 + the signal number (130 for SIGINT, 143 for SIGTERM). A second Ctrl-C
stops at once (``KeyboardInterrupt``), keeping the last checkpoint written.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class StopSignals:
    """Context manager that turns SIGINT/SIGTERM into a flag (only in the main thread)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.received = signum
        print(f"\nsnntrain: {signal.Signals(signum).name} received; saving a checkpoint after the current step "
              f"(Ctrl-C again stops at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""
