"""Writers of run files never follow a symbolic link: a linked target is refused and the file it points at is
left byte for byte as it was (checkpoints, metrics.json, train.log, the lock, jobs.jsonl, .hydra files)."""
from __future__ import annotations

import os

import pytest
import torch

from snntrain import ConfigError
from snntrain.errors import StorageError
from snntrain.training import checkpoint, train

from .conftest import compose_cfg

FAST = ["trainer.epochs=1", "trainer.limit_batches=2", "trainer.progress=false", "model.hidden=[16]", "T=2",
        "trainer.log_images_every=null"]


@pytest.fixture
def outside(tmp_path):
    target = tmp_path / "outside.txt"
    target.write_bytes(b"not yours\n")
    return target


def _plant(link, target):
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


@pytest.mark.parametrize("write", [
    lambda p: checkpoint.write_text(p, "x"),
    lambda p: checkpoint.save({"model": {}}, p),
    lambda p: checkpoint.append_line(p, "x\n"),
    lambda p: checkpoint.link(p.parent / "source.pt", p),
])
def test_every_writer_refuses_a_linked_target(tmp_path, outside, write):
    (tmp_path / "run").mkdir()
    torch.save({}, tmp_path / "run" / "source.pt")
    _plant(tmp_path / "run" / "file", outside)
    with pytest.raises(StorageError, match="symbolic link") as e:
        write(tmp_path / "run" / "file")
    assert e.value.exit_code == 4 and "\n" not in str(e.value)
    assert outside.read_bytes() == b"not yours\n" and os.path.islink(tmp_path / "run" / "file")
    assert not list((tmp_path / "run").glob("*.tmp"))


@pytest.mark.parametrize("name", ["metrics.json", "train.log", "checkpoints/best.pt", ".hydra/config.yaml"])
def test_a_run_does_not_write_through_a_planted_link(tmp_path, outside, name):
    run = tmp_path / "run"
    _plant(run / name, outside)
    with pytest.raises(StorageError, match="symbolic link"):
        train(compose_cfg(*FAST), run, run_files={".hydra/config.yaml": "cfg\n"})
    assert outside.read_bytes() == b"not yours\n"


def test_a_linked_lock_file_is_refused(tmp_path, outside):
    _plant(tmp_path / "run" / ".snntrain.lock", outside)
    with pytest.raises(ConfigError, match="symbolic link"):
        train(compose_cfg(*FAST), tmp_path / "run")
    assert outside.read_bytes() == b"not yours\n"


def test_sweep_records_are_not_appended_through_a_link(tmp_path, outside):
    from snntrain.sweep import JOBS, record_job

    _plant(tmp_path / JOBS, outside)
    with pytest.raises(StorageError, match="symbolic link"):
        record_job(tmp_path, 0, ["seed=1"], tmp_path / "0", 0, {"test_acc": 0.5}, None)
    assert outside.read_bytes() == b"not yours\n"
