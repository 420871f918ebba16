"""Data-parallel training (2 gloo processes on CPU) against one process with the same global batch."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

FAST = ["trainer.epochs=2", "trainer.limit_batches=3", "trainer.batch_size=64", "trainer.progress=false",
        "optimizer=sgd", "optimizer.lr=0.1", "optimizer.weight_decay=0", "seed=3", "trainer.log_images_every=null"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, jobs: list[tuple[list[str], str]]) -> None:
    """One rank: each job's run, one after the other, in one process group (one spawn for many runs)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from snntrain.training import distributed, train
    from tests.conftest import compose_cfg

    from snntrain import ConfigError

    try:
        for overrides, run_dir in jobs:
            try:
                train(compose_cfg(*overrides), run_dir)
            except ConfigError as err:  # a refusal is a result too: recorded, and the next job runs
                if rank == 0:
                    Path(run_dir + ".refused").write_text(str(err))
    finally:
        distributed.shutdown(distributed.from_env())


def run_ddp(jobs: dict[str, list[str]], root: Path, world: int = 2) -> dict[str, dict]:
    """Each job (name -> overrides) trained by ``world`` processes; name -> its last checkpoint."""
    spec = [(overrides, str(root / name)) for name, overrides in jobs.items()]
    torch.multiprocessing.spawn(_worker, args=(world, _free_port(), spec), nprocs=world)
    return {name: torch.load(root / name / "checkpoints" / "last.pt", weights_only=True) for name in jobs
            if not (root / f"{name}.refused").exists()}


def run_single(overrides: list[str], run_dir: Path) -> dict:
    """One process, one thread like each worker: the thread count alone changes float summation order, and
    a spiking network trained with SGD at lr 0.1 amplifies that to ~4e-5 in 6 steps (measured)."""
    from snntrain.training import train

    from .conftest import compose_cfg

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(compose_cfg(*overrides), run_dir)
    finally:
        torch.set_num_threads(threads)
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


NORMS = ["none", "bn", "bntt", "tdbn", "tebn"]
STATS = NORMS[1:]  # the norms with batch statistics
JOBS = {
    **{norm: [*FAST, f"norm={norm}", "trainer.sync_norm=true"] for norm in NORMS},
    **{f"unsynced_{norm}": [*FAST, f"norm={norm}", "trainer.sync_norm=false"] for norm in STATS},
    "tbptt": [*FAST, "norm=bntt", "trainer.sync_norm=true", "trainer.tbptt_steps=2"],
    "one_epoch": [*FAST, "norm=bn", "trainer.sync_norm=true", "trainer.epochs=1"],
    "indivisible": [*FAST, "norm=bn", "trainer.sync_norm=true", "trainer.batch_size=63"],
}


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """Every two-process run of this module, in one spawn (each process imports torch once, not once a test);
    ``from_one`` continues a one-process checkpoint of epoch 1 in two processes."""
    root = tmp_path_factory.mktemp("ddp")
    synced = [*FAST, "norm=bn", "trainer.sync_norm=true"]
    run_single([*synced, "trainer.epochs=1"], root / "single_one_epoch")
    return root, run_ddp({**JOBS, "from_one": [*synced, f"resume={root / 'single_one_epoch'}"]}, root)


@pytest.mark.parametrize("norm", NORMS)
def test_two_processes_equal_one_with_the_same_global_batch(ddp, tmp_path, norm):
    root, runs = ddp
    two = runs[norm]
    one = run_single(JOBS[norm], tmp_path / "one")
    assert two["position"]["step"] == one["position"]["step"] == 6
    assert not any(k.startswith("module.") for k in two["model"])  # the unwrapped model
    assert max_diff(two["model"], one["model"]) <= 1e-5  # weights and BN running statistics
    assert two["history"][-1]["test_acc"] == pytest.approx(one["history"][-1]["test_acc"], abs=1e-9)
    assert two["history"][-1]["train_loss"] == pytest.approx(one["history"][-1]["train_loss"], rel=1e-5)
    assert two["world_size"] == 2 and len(two["rng_ranks"]) == 2
    files = sorted(p.name for p in (root / norm / "tensorboard").iterdir())
    assert len(files) == 1  # one event file: rank 0 alone writes


def test_truncated_bptt_in_two_processes_equals_one(ddp, tmp_path):
    """Chunks with DDP: gradients all-reduced once, after the last chunk's backward."""
    assert max_diff(ddp[1]["tbptt"]["model"], run_single(JOBS["tbptt"], tmp_path / "one")["model"]) <= 1e-5


@pytest.mark.parametrize("norm", STATS)
def test_without_sync_norm_batch_statistics_are_per_process(ddp, tmp_path, norm):
    """The check above can fail: an unsynchronised norm (each process its half-batch) gives other weights."""
    one = run_single(JOBS[f"unsynced_{norm}"], tmp_path / "one")
    assert max_diff(ddp[1][f"unsynced_{norm}"]["model"], one["model"]) > 1e-4


def test_a_checkpoint_of_two_processes_resumes_in_one(ddp, tmp_path, monkeypatch):
    """2 -> 1: the second epoch in one process ends where the uninterrupted runs end, training only that epoch."""
    from .test_engine import count_steps

    overrides = [*FAST, "norm=bn", "trainer.sync_norm=true"]
    with count_steps(monkeypatch) as calls:
        one = run_single([*overrides, f"resume={ddp[0] / 'one_epoch'}"], tmp_path / "resumed")
    assert calls == [(1, 0), (1, 1), (1, 2)]  # epoch 2's three batches, nothing of epoch 1 again
    assert one["epoch"] == 2 and one["position"]["step"] == 6
    assert max_diff(one["model"], ddp[1]["bn"]["model"]) <= 1e-5  # the uninterrupted two-process run
    assert max_diff(one["model"], run_single(overrides, tmp_path / "full")["model"]) <= 1e-5
    assert max_diff(one["model"], ddp[1]["one_epoch"]["model"]) > 1e-4  # it did train on from epoch 1


def test_a_checkpoint_of_one_process_resumes_in_two(ddp):
    """1 -> 2: the uninterrupted two-process run's weights; the history keeps the one-process epoch."""
    two, full = ddp[1]["from_one"], ddp[1]["bn"]
    assert two["position"]["step"] == 6 and two["world_size"] == 2 and len(two["history"]) == 2
    assert max_diff(two["model"], full["model"]) <= 1e-5
    first = torch.load(ddp[0] / "single_one_epoch" / "checkpoints" / "last.pt", weights_only=True)
    assert two["history"][0] == first["history"][0]  # epoch 1 was not trained again
    assert max_diff(two["model"], first["model"]) > 1e-4


def test_a_global_batch_that_does_not_split_is_refused(ddp):
    text = (ddp[0] / "indivisible.refused").read_text()
    assert "trainer.batch_size" in text and "63" in text and "multiple of 2" in text
    assert not (ddp[0] / "indivisible").exists()


def _torchrun(*args: str, cwd: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
            "-m", "snntrain", *args]


def test_torchrun_one_directory_and_sigterm_resume_is_bitwise(tmp_path):
    import signal
    import subprocess
    import time

    from .test_engine import assert_same_state

    run = ["trainer.epochs=3", "trainer.limit_batches=10", "trainer.progress=false", "trainer.checkpoint_every_steps=1",
           "encoder=rate", "model.dropout=0.2", "norm=bn", "trainer.sync_norm=true", "T=8",
           "trainer.log_images_every=null"]
    full = subprocess.run(_torchrun(*run, cwd=tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]
    runs = [p for p in (tmp_path / "outputs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1  # one run directory, although each process's Hydra made its own time stamp
    full_dir = runs[0]
    assert len(list((full_dir / "tensorboard").iterdir())) == 1
    log = (full_dir / "train.log").read_text()
    assert [line.split("] ")[1].split()[1] for line in log.splitlines() if "] epoch " in line] == ["1/3", "2/3", "3/3"]

    cut = tmp_path / "cut"
    proc = subprocess.Popen(_torchrun(*run, f"hydra.run.dir={cut}", cwd=tmp_path), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(list((cut / "checkpoints").glob("step-*.pt"))) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    while not list((cut / "checkpoints").glob("step-00000001[2-9].pt")) and proc.poll() is None:
        time.sleep(0.005)  # mid-epoch 2
    proc.send_signal(signal.SIGTERM)  # torchrun forwards it to both workers
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    position = torch.load(cut / "checkpoints" / "last.pt", weights_only=True)["position"]
    assert 0 < position["step"] < 30 and "stopped by SIGTERM" in err
    trace = tmp_path / "trace"
    resumed = subprocess.run(_torchrun(*run, f"resume={cut}", f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path),
                             cwd=tmp_path, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "SNNTRAIN_TEST_TRACE": str(trace)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = [[int(v) for v in line.split()] for line in trace.read_text().splitlines()]
    for rank in (0, 1):  # each rank trained only the steps after the checkpoint
        assert [r[3] for r in rows if r[0] == rank] == list(range(position["step"] + 1, 31))
    assert_same_state(torch.load(full_dir / "checkpoints" / "last.pt", weights_only=True),
                      torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True))


def test_each_torchrun_attempt_meets_under_its_own_prefix_of_the_agent_store(monkeypatch):
    """torchrun keeps one store across restarts; keys a dead attempt wrote must not be read by the next."""
    import torch.distributed as td

    from snntrain.training.distributed import Dist, _attempt_store

    agent = td.TCPStore("127.0.0.1", 0, 2, is_master=True, wait_for_workers=False)
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(agent.port))
    keys = {}
    for attempt in ("0", "1"):
        monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", attempt)
        _attempt_store(Dist(0, 2)).set("rank_1", f"address of attempt {attempt}")
        key = f"snntrain/attempt-{attempt}/rank_1"
        keys[attempt] = agent.get(key).decode() if agent.check([key]) else None
    assert keys == {"0": "address of attempt 0", "1": "address of attempt 1"}
    assert not agent.check(["rank_1"])  # nothing written outside the attempt's prefix
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")
    assert _attempt_store(Dist(0, 2)) is None  # torch's env:// where no agent serves a store
