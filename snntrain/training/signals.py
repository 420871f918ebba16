"""SIGINT, SIGTERM and SIGHUP end a run at the next step boundary, with a checkpoint of that step.

Slurm, Kubernetes and ``kill`` send SIGTERM; Ctrl-C sends SIGINT; a closed terminal or ssh
connection sends SIGHUP. Inside :class:`StopSignals` each one only sets
:attr:`StopSignals.received`; the run engine looks at it after every step, saves a
checkpoint of that exact position and stops with exit status 128 + the signal number
(130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP). A signal during the last epoch's
evaluation lets the run finish. A second SIGTERM or SIGHUP changes nothing (the save in
progress completes); a second Ctrl-C stops at once (``KeyboardInterrupt``), keeping the
last checkpoint written.

With ``hold=True`` (the command line, which exits right after the run), a run stopped by a
signal keeps ignoring SIGTERM and SIGHUP after the block, so its message and exit status
come through; otherwise the previous handlers are restored.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class StopSignals:
    """Context manager that turns SIGINT/SIGTERM/SIGHUP into a flag (only in the main thread)."""

    SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)

    def __init__(self, hold: bool = False) -> None:
        self.received: int | None = None
        self.hold = hold
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # the second Ctrl-C: stop now
            return  # a second SIGTERM/SIGHUP: the stop is under way
        self.received = signum
        try:
            print(f"\nsnntrain: {signal.Signals(signum).name} received; saving a checkpoint after the current step "
                  f"(Ctrl-C again stops at once)", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # SIGHUP: the terminal may be gone
            pass

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            held = self.hold and self.received is not None and s != signal.SIGINT
            signal.signal(s, signal.SIG_IGN if held else handler)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""
