"""Checkpoints are checked against the network they will load into, in resume, snntrain-eval and snntrain-export.

Each damaged checkpoint (NaN weights, another model's weights, a wrong value type, a missing
weight) is refused as one paragraph, exit 2, naming the entry; and the run's own state
(:class:`RunState`) round-trips through a checkpoint.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from snntrain import ConfigError
from snntrain.training import checkpoint, train
from snntrain.training.state import RunState

from .conftest import compose_cfg

FAST = ["trainer.epochs=1", "trainer.limit_batches=2", "trainer.progress=false", "model.hidden=[16]", "T=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished 1-epoch run, and one of another model (hidden [8])."""
    root = tmp_path_factory.mktemp("runs")
    train(compose_cfg(*FAST), root / "own")
    train(compose_cfg(*FAST[:-2], "model.hidden=[8]", "T=2"), root / "foreign")
    return root


def _ckpt(root, name="own"):
    return torch.load(root / name / "checkpoints" / "last.pt", weights_only=True)


def _nan(c):
    c["model"]["1.module.weight"][0, 0] = float("nan")
    return "model.1.module.weight", "non-finite"


def _foreign(c, root=None):
    c["model"] = _ckpt(root, "foreign")["model"]  # this run's config, another network's weights
    return "model.1.module.weight", "[8, 64]"


def _wrong_type(c):
    c["model"]["1.module.weight"] = c["model"]["1.module.weight"].tolist()
    return "model.1.module.weight", "a list"


def _missing(c):
    del c["model"]["1.module.bias"]
    return "model.1.module.bias", "missing"


def _bad_position(c):
    c["position"] = {"epoch": "one", "batch": 0, "step": 0}
    return "position.epoch", "a str"


DAMAGE = {"nan": _nan, "foreign": _foreign, "wrong_type": _wrong_type, "missing": _missing,
          "bad_position": _bad_position}


@pytest.fixture(scope="module")
def damaged(runs):
    """name -> (checkpoint file, the key the refusal must name, a word of its reason)."""
    out = {}
    for name, damage in DAMAGE.items():
        c = _ckpt(runs)
        key, why = damage(c, runs) if name == "foreign" else damage(c)
        path = runs / f"{name}.pt"
        torch.save(c, path)
        out[name] = (path, key, why)
    return out


def _one_paragraph(text: str) -> None:
    assert "Traceback" not in text and text.strip().count("\n") == 0, text


@pytest.mark.parametrize("name", list(DAMAGE))
def test_resume_refuses_by_name(damaged, tmp_path, name):
    path, key, why = damaged[name]
    with pytest.raises(ConfigError) as e:
        train(compose_cfg(*FAST, "trainer.epochs=2", f"resume={path}"), tmp_path / "run")
    assert key in str(e.value) and why in str(e.value) and str(path) in str(e.value)
    _one_paragraph(str(e.value))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", list(DAMAGE))
@pytest.mark.parametrize("command", ["evaluation", "export"])
def test_eval_and_export_refuse_by_name(damaged, tmp_path, capsys, name, command):
    import importlib

    path, key, why = damaged[name]
    main = importlib.import_module(f"snntrain.{command}").main
    args = [str(path)] + (["--out", str(tmp_path / "net.nir")] if command == "export" else [])
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and key in err and why in err, err
    _one_paragraph(err)
    assert not (tmp_path / "net.nir").exists()


def test_another_models_checkpoint_is_refused_by_its_config_key(runs, tmp_path):
    """resume= of a hidden [8] run into a hidden [16] run: the config key that differs is named."""
    with pytest.raises(ConfigError, match=r"model\.hidden: checkpoint \[8\], now \[16\]"):
        train(compose_cfg(*FAST, "trainer.epochs=2", f"resume={runs / 'foreign'}"), tmp_path / "run")


def test_the_command_line_refuses_a_nan_checkpoint_exit_2(damaged, tmp_path):
    path, key, _ = damaged["nan"]
    r = subprocess.run([sys.executable, "-m", "snntrain", *FAST, "trainer.epochs=2", f"resume={path}",
                        f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 2 and key in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_a_sound_checkpoint_passes_and_evaluates(runs):
    from snntrain.evaluation import evaluate_checkpoint

    saved = _ckpt(runs)
    assert evaluate_checkpoint(str(runs / "own"))["test_acc"] == saved["history"][-1]["test_acc"]


def test_run_state_round_trips_through_a_checkpoint(tmp_path):
    state = RunState(epoch=2, batch=3, step=11, history=[{"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": 0.6}],
                     best=0.6, skipped=1, accum={"sums": {"loss": torch.tensor(1.5)}, "n": 96, "train_s": 0.25})
    torch.manual_seed(4)
    entries = state.to_checkpoint(torch.device("cpu"))
    checkpoint.save({**entries, "model": {}, "config": {"T": 1, "seed": 0}}, tmp_path / "c.pt")
    back = RunState.from_checkpoint(checkpoint.load(str(tmp_path / "c.pt")))
    assert back.rng is not None and torch.equal(back.rng["rng"], entries["rng"])
    assert torch.equal(back.accum["sums"]["loss"], state.accum["sums"]["loss"])
    back.rng = None
    back.accum["sums"] = state.accum["sums"]
    assert back == state
    assert back.to_checkpoint(torch.device("cpu"))["position"] == {"epoch": 2, "batch": 3, "step": 11}
