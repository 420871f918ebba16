"""The progress display's ETAs: hand-computed estimates, the bar's text, and the epoch log line."""
from __future__ import annotations

import logging
import re

import pytest

from snntrain.training import progress
from snntrain.training.progress import EpochProgress, clock, epochs_left, etas


def test_etas_by_hand():
    # 4 of 10 batches in 10 s: 2.5 s a batch, 6 left -> 15 s; two more epochs of 25 s (projected) -> 65 s
    assert etas(10.0, 4, 10, 2) == pytest.approx((15.0, 65.0))
    # finished epochs took 30 s and 40 s (evaluation included): the run's ETA uses their mean, 35 s
    assert etas(10.0, 4, 10, 2, [30.0, 40.0]) == pytest.approx((15.0, 85.0))
    assert etas(10.0, 10, 10, 0) == pytest.approx((0.0, 0.0))
    assert etas(0.0, 0, 10, 3) is None
    assert epochs_left(3, [10.0, 20.0]) == pytest.approx(45.0) and epochs_left(0, []) == 0.0
    assert clock(3725.4) == "1:02:05" and clock(59.6) == "0:01:00"


def test_bar_text_follows_the_clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    with EpochProgress("epoch 1/3", total=8, enabled=False, epochs_after=2, epoch_seconds=[]) as bar:
        assert bar.eta_text() == ""
        for _ in range(2):
            bar.advance(lambda: "")
        now[0] += 6.0  # 3 s a batch: 6 batches left -> 18 s; two more epochs of 24 s -> 66 s
        assert bar.eta_text() == "eta 0:00:18 (run 0:01:06)"
    last = EpochProgress("epoch 3/3", total=8, enabled=False, epochs_after=0)
    with last:
        last.advance(lambda: "")
        assert re.fullmatch(r"eta \d:\d\d:\d\d", last.eta_text())  # the last epoch: no run ETA


def test_epoch_log_lines_carry_the_runs_eta(tmp_path, caplog):
    from snntrain.training import train

    from .conftest import compose_cfg

    with caplog.at_level(logging.INFO, logger="snntrain"):
        train(compose_cfg("trainer.epochs=3", "trainer.limit_batches=2", "trainer.progress=false"), tmp_path)
    lines = [r.getMessage() for r in caplog.records if re.match(r"epoch \d/3 ", r.getMessage())]
    assert len(lines) == 3
    assert all(re.search(r"  eta \d:\d\d:\d\d$", line) for line in lines[:2]) and "eta" not in lines[2]
