"""sltt, ottt and trainer.recompute=stage in two gloo processes equal one process with the same global batch."""
from __future__ import annotations

import pytest

from .test_distributed import FAST, max_diff, run_ddp, run_single

pytestmark = pytest.mark.slow

JOBS = {
    "sltt": [*FAST, "trainer=sltt", "norm=tdbn", "trainer.sync_norm=true"],
    "ottt": [*FAST, "trainer=ottt", "norm=bn", "trainer.sync_norm=true"],
    "recompute": [*FAST, "norm=bn", "trainer.sync_norm=true", "trainer.recompute=stage"],
}


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp_online")
    return run_ddp(JOBS, root)


@pytest.mark.parametrize("name", list(JOBS))
def test_two_processes_equal_one(ddp, tmp_path, name):
    one = run_single(JOBS[name], tmp_path / "one")
    assert ddp[name]["position"]["step"] == one["position"]["step"] == 6
    assert max_diff(ddp[name]["model"], one["model"]) <= 1e-5
