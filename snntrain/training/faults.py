"""Fault injection for the tests of the run engine, set by environment variables (off by default).

Real-process tests need faults at exact moments a test cannot time from outside:

=================================  ==================================================================
``SNNTRAIN_TEST_TRACE=<file>``      append ``<rank> <epoch> <batch> <step>`` for every training batch run
``SNNTRAIN_TEST_KILL_IN_WRITE=<n>``  SIGKILL this process inside its n-th checkpoint write (1-based),
                                     after the temporary file holds the data, before the rename
``SNNTRAIN_TEST_KILL_AT=<r>:<s>``    rank ``r`` SIGKILLs itself after optimizer step ``s``, once per
                                     run directory (a marker file there: a restarted worker goes on)
``SNNTRAIN_TEST_SIGNAL_IN_EVAL=<n>`` send this process signal ``<n>`` (e.g. ``SIGTERM``) as the final
                                     evaluation starts
=================================  ==================================================================

Nothing here runs unless its variable is set; reading them costs one ``os.environ`` look-up each.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

_writes = 0


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def batch_done(rank: int, epoch: int, batch: int, step: int, run_dir: Path) -> None:
    """After every training batch (``batch``: batches done in the epoch, ``step``: optimizer steps)."""
    trace = os.environ.get("SNNTRAIN_TEST_TRACE")
    if trace:
        with open(trace, "a") as f:
            f.write(f"{rank} {epoch} {batch} {step}\n")
    kill = os.environ.get("SNNTRAIN_TEST_KILL_AT")
    if kill:
        r, s = (int(v) for v in kill.split(":"))
        marker = Path(run_dir) / f".test-killed-{r}"
        if rank == r and step == s and not marker.exists():
            marker.touch()
            _kill()


def checkpoint_written(f) -> None:
    """Inside a checkpoint write, after the data and before the rename."""
    global _writes
    n = os.environ.get("SNNTRAIN_TEST_KILL_IN_WRITE")
    if n:
        _writes += 1
        if _writes == int(n):
            f.flush()
            os.fsync(f.fileno())
            _kill()


def final_evaluation() -> None:
    """As the last epoch's evaluation starts."""
    name = os.environ.get("SNNTRAIN_TEST_SIGNAL_IN_EVAL")
    if name:
        os.kill(os.getpid(), getattr(signal, name))
