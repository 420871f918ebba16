"""Sweeps: the summary files (mean ± std over seeds), the objective a run returns, Optuna's direction, stage tags."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from snntrain import ConfigError, build, sweep
from snntrain.models import make_factories
from snntrain.neurons import neuron_layers
from snntrain.training import build_trainer

from .conftest import compose_cfg


def _fake_sweep(tmp_path: Path) -> Path:
    """Two norms x two seeds (one job failed), with the metrics.json files the runs would write."""
    accs = {(0, "bn", 0): 0.90, (1, "bn", 1): 0.80, (2, "tdbn", 0): 0.95, (3, "tdbn", 1): None}
    for (num, norm, seed), acc in accs.items():
        run = tmp_path / f"{num}_norm={norm},seed={seed}"
        ok = acc is not None
        if ok:
            run.mkdir()
            history = [{"epoch": 1, "test_acc": acc - 0.2}, {"epoch": 2, "test_acc": acc}]
            (run / "metrics.json").write_text(json.dumps({"test_acc": acc, "best_test_acc": acc + 0.01,
                                                          "test_loss": 1 - acc, "train_time_s": 10.0 + num,
                                                          "history": history}))
        sweep.record_job(tmp_path, num, [f"norm={norm}", f"seed={seed}", "trainer.epochs=2", "trainer.progress=false"],
                         run, 0 if ok else 3, {"test_acc": acc} if ok else None, None if ok else "diverged")
    return tmp_path


def test_summary_groups_seeds_with_mean_and_sample_std(tmp_path):
    rows = sweep.collect(_fake_sweep(tmp_path))
    gs = {g["setting"]: g for g in sweep.groups(rows)}
    bn = gs[("norm=bn", "trainer.epochs=2")]
    mean, std, n = bn["test_acc"]
    assert (mean, n) == (pytest.approx(0.85), 2) and std == pytest.approx(0.0707107, rel=1e-5)  # sqrt(0.005)
    assert bn["train_time_s"][0] == pytest.approx(10.5)
    tdbn = gs[("norm=tdbn", "trainer.epochs=2")]
    assert tdbn["test_acc"] == (pytest.approx(0.95), 0.0, 1) and tdbn["failed"] == 1
    md = sweep.write_summary(tmp_path)
    assert "All jobs: `trainer.epochs=2`" in md and "| `norm=bn` | 2 | 0.8500 ± 0.0707 |" in md
    assert "**0.9500**" in md  # the best setting
    csv_lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("job,overrides,seed,status,test_acc") and len(csv_lines) == 5
    assert csv_lines[4].startswith("3,norm=tdbn seed=1 trainer.epochs=2,1,failed,")


def test_summary_command_over_an_existing_folder(tmp_path):
    _fake_sweep(tmp_path)
    out = subprocess.run([sys.executable, "-c", "from snntrain.sweep import summary_main; summary_main()", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "0.8500 ± 0.0707" in out.stdout
    bad = subprocess.run([sys.executable, "-c", "from snntrain.sweep import summary_main; summary_main()", str(tmp_path / "0_norm=bn,seed=0")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "has no jobs.jsonl" in bad.stderr and "Traceback" not in bad.stderr


def _colours(png: Path) -> set[tuple[int, int, int]]:
    from PIL import Image

    img = Image.open(png).convert("RGB")
    assert img.width >= 400 and img.height >= 400
    return {c for _, c in img.getcolors(maxcolors=1 << 20)}


def test_summary_figures_draw_every_setting(tmp_path):
    """summary.png and curves.png: one colour per setting (matplotlib's C0, C1), the figures redrawn from the data."""
    _fake_sweep(tmp_path)
    sweep.write_summary(tmp_path)
    c0, c1 = (31, 119, 180), (255, 127, 14)
    for name in ("summary.png", "curves.png"):
        assert {c0, c1} <= _colours(tmp_path / name)
    before = (tmp_path / "curves.png").read_bytes()
    rows = sweep.collect(tmp_path)
    assert rows[0]["history"] == [(1, pytest.approx(0.7)), (2, 0.9)]
    (tmp_path / "2_norm=tdbn,seed=0" / "metrics.json").write_text(json.dumps({"test_acc": 0.5, "history": [
        {"epoch": 1, "test_acc": 0.1}, {"epoch": 2, "test_acc": 0.5}]}))
    sweep.write_summary(tmp_path)
    assert (tmp_path / "curves.png").read_bytes() != before


def test_summary_never_writes_through_a_symlink(tmp_path):
    _fake_sweep(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}_outside.txt"
    outside.write_bytes(b"precious\n")
    (tmp_path / "summary.md").symlink_to(outside)
    out = subprocess.run([sys.executable, "-c", "from snntrain.sweep import summary_main; summary_main()", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 4 and "summary.md is a symbolic link" in out.stderr and "Traceback" not in out.stderr
    assert outside.read_bytes() == b"precious\n"
    assert not (tmp_path / "summary.csv").exists()  # refused before anything was written
    (tmp_path / "summary.md").unlink()
    sweep.write_summary(tmp_path)
    assert not (tmp_path / "summary.md").is_symlink() and outside.read_bytes() == b"precious\n"
    assert not list(tmp_path.glob(".summary*.tmp"))  # no temporary files left


def test_malformed_rows_are_skipped_with_a_warning_naming_them(tmp_path):
    _fake_sweep(tmp_path)
    with open(tmp_path / "jobs.jsonl", "a") as f:
        f.write('not json\n{"job": "x", "overrides": [], "status": "ok"}\n[1, 2]\n'
                '{"job": 7, "overrides": "norm=bn", "status": "ok"}\n{"job": 8, "overrides": [3], "status": "ok"}\n')
    (tmp_path / "0_norm=bn,seed=0" / "metrics.json").write_text("{broken")
    (tmp_path / "1_norm=bn,seed=1" / "metrics.json").write_text('["a list"]')
    (tmp_path / "2_norm=tdbn,seed=0" / "metrics.json").write_text('{"test_acc": "high", "history": [1, {"epoch": "x"}]}')
    out = subprocess.run([sys.executable, "-c", "from snntrain.sweep import summary_main; summary_main()", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    for line in (5, 6, 7, 8, 9):
        assert f"jobs.jsonl line {line} is not a job record" in out.stderr
    assert "0_norm=bn,seed=0/metrics.json cannot be read" in out.stderr
    assert "1_norm=bn,seed=1/metrics.json holds a list" in out.stderr
    assert "| `norm=bn` | 2 | **0.8500 ± 0.0707** |" in out.stdout  # both bn jobs kept, with jobs.jsonl's accuracy
    assert (tmp_path / "summary.png").is_file() and (tmp_path / "curves.png").is_file()


@pytest.mark.slow
def test_a_2x2_sweep_leaves_figures_and_shows_its_keys_first_in_hparams(tmp_path):
    """``snntrain -m norm=bn,tebn seed=0,1 trainer.epochs=2``: summary.png, curves.png; HParams lists norm.name, seed first."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = subprocess.run([sys.executable, "-m", "snntrain", "-m", "norm=bn,tebn", "seed=0,1", "trainer.epochs=2",
                          "trainer.limit_batches=4", "trainer.progress=false", f"hydra.sweep.dir={tmp_path}"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("summary.png", "curves.png"):
        assert len(_colours(tmp_path / name)) > 10
    assert "| `norm=tebn` | 2 |" in (tmp_path / "summary.md").read_text()
    for j in sweep.read_jobs(tmp_path):
        ev = EventAccumulator(str(Path(j["run_dir"]) / "tensorboard"), size_guidance={"tensors": 0})
        ev.Reload()
        content = ev.PluginTagToContent("hparams")
        exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
        # TensorBoard shows the differing hparams first (then by name)
        shown = sorted(exp.hparam_infos, key=lambda h: (not h.differs, h.name))
        assert [h.name for h in shown[:2]] == ["norm.name", "seed"] and not shown[2].differs
        domains = {h.name: [v for v in h.domain_discrete] for h in shown[:2]}
        assert domains == {"norm.name": ["bn", "tebn"], "seed": [0.0, 1.0]}
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
        assert start.group_name == ",".join(o for o in j["overrides"] if not o.startswith("trainer.progress"))


@pytest.mark.parametrize("direction, metric, refused", [("minimize", "test_acc", True), ("maximize", "test_acc", False),
                                                         ("maximize", "test_loss", True), ("minimize", "test_loss", False)])
def test_a_sweeper_optimising_the_wrong_way_is_refused(direction, metric, refused, capsys):
    cfg = OmegaConf.create({"optimized_metric": metric, "hydra": {"sweeper": {"direction": direction}}})
    if refused:
        with pytest.raises(SystemExit) as e:
            sweep.check_direction(cfg)
        assert e.value.code == 2 and f"hydra.sweeper.direction={'maximize' if direction == 'minimize' else 'minimize'}" in capsys.readouterr().err
    else:
        sweep.check_direction(cfg)


def test_optimized_metric_must_be_a_final_metric_of_the_trainer():
    with pytest.raises(ConfigError, match="optimized_metric: trainer=bptt reports no final metric 'accuracy'"):
        build_trainer(compose_cfg("optimized_metric=accuracy"))


@pytest.mark.parametrize("norm", ["none", "bn", "neunorm", "bntt"])
@pytest.mark.parametrize("neuron", ["lif", "alif", "synaptic"])
def test_stage_names_do_not_depend_on_norm_or_neuron(norm, neuron):
    nf, mf = make_factories({"name": neuron}, {"name": "atan"}, {"name": norm}, 2)
    model = build("model", "vgg", context={"in_shape": (1, 8, 8), "num_classes": 10, "T": 2, "neuron": nf, "norm": mf},
                  plan=[8, "M", 8, "M"], classifier=[16])
    assert list(neuron_layers(model)) == ["stage1", "stage2", "stage3"]


@pytest.mark.slow
def test_optuna_search_reports_the_most_accurate_trial_as_best(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    env = {**os.environ, "SNNTRAIN_CPU_KERNEL": "0"}
    cmd = [sys.executable, "-m", "snntrain", "-m", "hparams_search=digits_optuna", "dataset=digits",
           "hydra.sweeper.n_trials=4", "trainer.epochs=1", "trainer.limit_batches=4", f"hydra.sweep.dir={tmp_path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = sweep.read_jobs(tmp_path)
    assert len(jobs) == 4 and all(j["status"] == "ok" for j in jobs)
    accs = [j["test_acc"] for j in jobs]
    assert len(set(accs)) > 1  # the trials differ, so "best" means something
    best = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())["best_value"]
    assert best == pytest.approx(max(accs))
    for j in jobs:  # folders named by the trial's overrides
        run = Path(j["run_dir"])
        assert run.name.startswith(f"{j['job']}_") and "optimizer.lr=" in run.name
    assert (tmp_path / "summary.md").is_file()


def test_a_full_disk_during_the_summary_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno

    _fake_sweep(tmp_path)
    sweep.write_summary(tmp_path)
    before = (tmp_path / "summary.md").read_bytes()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(sweep.SummaryWriteError) as e:
        sweep.write_summary(tmp_path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    msg = str(e.value)
    assert "the sweep summary" in msg and "summary.csv" in msg and "no space left on device (ENOSPC)" in msg
    assert "resume=" not in msg and "starts again" not in msg and "free some space" in msg  # not a run: no resume advice
    assert (tmp_path / "summary.md").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
