"""Fuzz of the command line's front door: over 200 bad inputs, each one paragraph naming the key, no trace left.

Every case runs the function the ``snntrain`` command runs (:func:`snntrain.cli.run`, Hydra
included) in-process and checks: the exit status (2, or 4 for a run directory that cannot be
made), one line starting ``snntrain: error: <key>``, no traceback, none of Hydra's own text,
and the folder tree unchanged (nothing below the working folder, nor below a run directory
outside it). A sample of the cases runs through real ``snntrain`` / ``snntrain-eval``
processes, which covers Hydra's own entry (``@hydra.main``) and the console scripts.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from snntrain import cli, evaluation

GROUPS = cli.group_options()
BIG = "9" * 10_000
LONG = "x" * 300
BOMB = "{a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], " \
       "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]}"


def _group_cases() -> list[tuple[list[str], str, int]]:
    out = []
    for g, opts in GROUPS.items():
        first = opts[0]
        out += [([f"{g}=nope"], g, 2), ([f"{g}={first.upper()}X"], g, 2), ([f"{g}={first}x"], g, 2),
                ([f"{g}=../{first}"], g, 2), ([f"{g}=/etc/passwd"], g, 2), ([f"{g}="], g, 2),
                ([f"+{g}=nope"], g, 2), ([f"{g}=[a,b]"], g, 2)]
    return out


# (arguments, the key the message names first, exit status)
CASES: list[tuple[list[str], str, int]] = _group_cases() + [
    # the list
    (["norm=TEBN"], "norm", 2), (["model=VGG"], "model", 2), (["trainer.epoch=3"], "trainer.epoch", 2),
    (["neuron.beta=0.9"], "neuron.beta", 2), (["T=４"], "T", 2), (["T=4\u200b"], "T", 2), (["seed=1\n2"], "seed", 2),
    (["experiment=../train"], "experiment", 2),
    (["T=${T}"], "T", 2), (["T=${oc.env:UNSET_SNNTRAIN_VAR}"], "T", 2), (["seed=18446744073709551616"], "seed", 2),
    ([f"T={BIG}"], "T", 2), ([f"seed={BIG}"], "seed", 2), ([f"model.hidden=[{BIG}]"], "model.hidden", 2),
    ([f"optimizer.lr={BIG}"], "optimizer.lr", 2), (["~trainer.epochs"], "trainer.epochs", 2),
    ([f"resume={LONG}"], "resume", 2), (["resume="], "resume", 2), (["hydra.run.dir="], "hydra.run.dir", 2),
    (["trainer.gradient_clip_val=0"], "trainer.gradient_clip_val", 2),
    (["dataset.split_seed=-1"], "dataset.split_seed", 2),
    (["T=100000"], "trainer.memory_budget", 2), (["model.hidden=[100000,100000]"], "trainer.memory_budget", 2),
    (["model=vgg", "model.plan=[1000000]"], "trainer.memory_budget", 2),
    # top level
    (["T=0"], "T", 2), (["T=-1"], "T", 2), (["T=2.5"], "T", 2), (["T=abc"], "T", 2), (["T=inf"], "T", 2),
    (["T=nan"], "T", 2), (["T=true"], "T", 2), (["T=null"], "T", 2), (["T=[4]"], "T", 2), (["T=''"], "T", 2),
    (["T=' '"], "T", 2), (["~T"], "T", 2), (["T=9223372036854775808"], "T", 2), (["T=٤"], "T", 2),
    (["T=𝟒"], "T", 2), (["T\u200b=4"], "T", 2), (["seed=-1"], "seed", 2), (["seed=1.5"], "seed", 2),
    (["seed=x"], "seed", 2), (["seed=-18446744073709551616"], "seed", 2), (["~seed"], "seed", 2),
    (["device=tpu"], "device", 2), (["device="], "device", 2), (["device=cuda:0"], "device", 2),
    (["resume=/no/such/run"], "resume", 2), (["resume=12"], "resume", 2), (["optimized_metric="], "optimized_metric", 2),
    (["optimized_metric=nope"], "optimized_metric", 2), (["resume=${hydra:runtime.cwd}"], "resume", 2),
    # unknown keys, typos, aliases (Hydra's composition errors)
    (["epoch=3"], "epoch", 2), (["lr=0.1"], "lr", 2), (["trainer.lr=0.1"], "trainer.lr", 2),
    (["model.hiden=[64]"], "model.hiden", 2), (["T.x=3"], "T.x", 2), (["model.hidden.x=1"], "model.hidden.x", 2),
    (["+trainer.epochs=3"], "trainer.epochs", 2), (["surrogate.alphaa=2"], "surrogate.alphaa", 2),
    (["norm.eps=1"], "norm.eps", 2), (["encoder.gain=2"], "encoder.gain", 2), (["scheduler.warmup=1"], "scheduler.warmup", 2),
    (["loss.smoothing=0.1"], "loss.smoothing", 2), (["dataset.rooot=x"], "dataset.rooot", 2),
    (["optimizer.betas2=1"], "optimizer.betas2", 2), (["trainer.Epochs=3"], "trainer.Epochs", 2),
    (["Model.hidden=[3]"], "Model.hidden", 2), (["neuron.v_threshold=1"], "neuron.v_threshold", 2),
    (["neuron.reset_mechanism=zero"], "neuron.reset_mechanism", 2), (["trainer.max_epochs=3"], "trainer.max_epochs", 2),
    (["num_steps=8"], "num_steps", 2), (["trainer.batchsize=8"], "trainer.batchsize", 2),
    (["+foo=1"], "foo", 2), (["+trainer.epoch=3"], "trainer.epoch", 2), (["+neuron.beta=0.9"], "neuron.beta", 2),
    (["trainer=stdp", "trainer.unit=3"], "trainer.unit", 2), (["norm=bn", "norm.epsilon=1e-5"], "norm.epsilon", 2),
    (["hydra.run.dirr=x"], "hydra.run.dirr", 2), (["hydra.job.chdirr=true"], "hydra.job.chdirr", 2),
    # characters that look like something else
    (["trainer.epochs=3\r"], "trainer.epochs", 2), (["dataset.root=/data\x00x"], "dataset.root", 2),
    (["model.hidden=[６４]"], "model.hidden", 2), (["trainer.epochs=\u00a03"], "trainer.epochs", 2),
    (["dataset.root=/data/\u202eevil"], "dataset.root", 2), (["neuron.decay=0.5\u200d"], "neuron.decay", 2),
    (["optimizer.lr=０.１"], "optimizer.lr", 2), (["trainer.batch_size=6\ufeff4"], "trainer.batch_size", 2),
    (["trainer.epochs=3\t"], "trainer.epochs", 2), (["model.hidden=[64,\n64]"], "model.hidden", 2),
    # sizes
    *[([f"trainer.{k}=18446744073709551616"], f"trainer.{k}", 2) for k in
      ("epochs", "batch_size", "eval_batch_size", "limit_batches", "num_workers", "keep_checkpoints",
       "checkpoint_every_steps", "accumulate_grad_batches")],
    ([f"dataset.root={LONG}"], "dataset.root", 2), ([f"dataset.root=/a/{LONG}/b"], "dataset.root", 2),
    ([f"optimizer.lr=0.{'1' * 5000}"], "optimizer.lr", 2), ([f"+{LONG}=1"], "x" * 60, 2),
    # interpolations and deletions
    (["model.hidden=[${T}]"], "model.hidden", 2), (["optimizer.lr=${oc.env:HOME}"], "optimizer.lr", 2),
    (["trainer.epochs=${oc.decode:'1'}"], "trainer.epochs", 2), (["neuron.decay='${x}'"], "neuron.decay", 2),
    (["~model"], "model", 2), (["~neuron.decay"], "neuron.decay", 2), (["~norm"], "norm", 2),
    (["~trainer"], "trainer", 2),
    # empty values
    (["dataset.root="], "dataset.root", 2), (["neuron.reset="], "neuron.reset", 2), (["model.hidden=['']"], "model.hidden", 2),
    (["model.synapse="], "model.synapse", 2), (["trainer.precision="], "trainer.precision", 2),
    (["trainer.on_nonfinite=''"], "trainer.on_nonfinite", 2), (["hydra.job.name="], "hydra.job.name", 2),
    # sweep syntax without -m, and syntax errors
    (["norm=bn,tdbn"], "norm", 2), (["seed=range(3)"], "seed", 2), (["T=1,2"], "T", 2),
    (["model.hidden=choice([1],[2])"], "model.hidden", 2), (["T"], "T", 2), (["a b=1"], "a b", 2),
    (["model.hidden=[1,2"], "model.hidden", 2), (["trainer..epochs=3"], "trainer..epochs", 2), ([".T=3"], ".T", 2),
    (["T=)"], "T", 2), (["--bogus"], "unrecognized arguments", 2), (["--cfg", "nope"], "argument --cfg/-c", 2),
    # values refused once composed
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val", 2),
    (["trainer.memory_budget=abc"], "trainer.memory_budget", 2), (["trainer.memory_budget=0"], "trainer.memory_budget", 2),
    (["trainer.memory_budget=-1"], "trainer.memory_budget", 2), (["trainer.memory_budget=1KB"], "trainer.memory_budget", 2),
    (["trainer.epochs=0"], "trainer.epochs", 2), (["trainer.progress=maybe"], "trainer.progress", 2),
    (["optimizer.lr=inf"], "optimizer.lr", 2), (["neuron.decay=1.5"], "neuron.decay", 2),
    (["model.hidden=[]"], "model", 2), (["model.hidden=[0]"], "model.hidden", 2),
    (["model=vgg", "model.plan=[0]"], "model.plan", 2), (["trainer.tbptt_steps=0"], "trainer.tbptt_steps", 2),
    # sweeps (-m)
    (["-m", "norm=TEBN,bn"], "norm", 2), (["-m", "model=VGG"], "model", 2), (["-m", "hydra.sweep.dir="], "hydra.sweep.dir", 2),
    (["-m", "T=${T},1"], "T", 2),
]

# the run directory (exit 4, or 2 for a value that means nothing); {tmp} is the test's folder
RUN_DIRS: list[tuple[str, int]] = [
    ("hydra.run.dir=/proc/snntrain_fuzz/run", 4), ("hydra.run.dir=/dev/null", 4), ("hydra.run.dir={tmp}/afile", 4),
    ("hydra.run.dir={tmp}/afile/sub", 4), (f"hydra.run.dir={{tmp}}/out/{LONG}", 4), (f"hydra.run.dir={LONG}", 4),
    ("hydra.run.dir=/proc/self/snntrain", 4), ("hydra.run.dir=/dev/null/x", 4),
    ("hydra.run.dir={tmp}/out/${oc.env:UNSET_SNNTRAIN_VAR}", 2),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _check(text: str, key: str, prefix: str = "snntrain") -> None:
    message = text.strip()
    assert message.startswith(f"{prefix}: error: {key}"), message[:300]
    assert "\n" not in message, message  # one paragraph
    for boiler in ("Traceback", "HYDRA_FULL_ERROR", "Config search path", "provider=", "full_key"):
        assert boiler not in message, message


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A working folder (cwd) and a folder outside it for run directories; the file ``afile``."""
    cwd, outside = tmp_path / "cwd", tmp_path / "outside"
    cwd.mkdir()
    outside.mkdir()
    (tmp_path / "afile").write_text("keep me")
    monkeypatch.chdir(cwd)
    return tmp_path


def test_the_fuzz_list_is_long_enough():
    n = len(CASES) + len(RUN_DIRS) + len(EVAL_CASES)
    assert n >= 200, n
    assert len({tuple(a) for a, _, _ in CASES}) == len(CASES)
    assert set(GROUPS) >= {"model", "neuron", "surrogate", "norm", "dataset", "encoder", "optimizer", "scheduler",
                           "loss", "trainer", "experiment", "hparams_search"}


@pytest.mark.parametrize("args,key,code", CASES, ids=[" ".join(a)[:60] for a, _, _ in CASES])
def test_bad_input_is_one_paragraph_and_leaves_nothing(place, capsys, args, key, code):
    outside = place / "outside" / "deep" / "run"
    before = _tree(place)
    # half the cases run in outputs/<date>/<time> below the working folder, half in a folder outside it
    extra = [f"hydra.run.dir={outside}"] if len(" ".join(args)) % 2 and "-m" not in args else []
    fast = [] if "-m" in args else ["trainer.epochs=1", "trainer.limit_batches=1", "trainer.progress=false"]
    got = cli.run([*fast, *args, *extra])  # the case's own value of a key wins (the last override does)
    out = capsys.readouterr()
    assert got == code, out.err[-500:]
    _check(out.err + out.out, key)
    assert _tree(place) == before  # nothing created, nothing removed


@pytest.mark.parametrize("arg,code", RUN_DIRS, ids=[a[:50] for a, _ in RUN_DIRS])
def test_run_directory_failures_name_the_path(place, capsys, arg, code):
    arg = arg.replace("{tmp}", str(place))
    before = _tree(place)
    got = cli.run([arg, "trainer.epochs=1"])
    out = capsys.readouterr()
    assert got == code, out.err
    _check(out.err + out.out, "hydra.run.dir")
    path = arg.partition("=")[2]
    if code == 4:
        assert path[:40] in out.err or str(Path(path).parent)[:40] in out.err
    assert _tree(place) == before
    assert (place / "afile").read_text() == "keep me"


def test_a_read_only_parent_is_exit_4(place, capsys, monkeypatch):
    """A folder this user may not write (simulated: the tests may run as root, who writes everywhere)."""
    ro = place / "outside"
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == ro else real(p, mode, *a, **k))
    before = _tree(place)
    assert cli.run([f"hydra.run.dir={ro}/a/b", "trainer.epochs=1"]) == 4
    err = capsys.readouterr().err
    _check(err, "hydra.run.dir")
    assert str(ro) in err and "not writable" in err
    assert _tree(place) == before


def test_a_mkdir_that_fails_midway_removes_the_folders_it_made(place, capsys, monkeypatch):
    """Hydra creates ``a`` then fails on ``a/b``: the refusal takes ``a`` back (and only it)."""
    import pathlib

    real_mkdir = pathlib.Path.mkdir
    target = place / "outside" / "a" / "b"

    def mkdir(self, *a, **k):
        if self == target:
            real_mkdir(self.parent)
            raise OSError(28, "No space left on device", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    before = _tree(place)
    assert cli.run([f"hydra.run.dir={target}", "trainer.epochs=1"]) == 4
    err = capsys.readouterr().err
    _check(err, "hydra.run.dir")
    assert "ENOSPC" in err and str(target) in err
    assert _tree(place) == before


def test_a_refused_run_keeps_a_folder_that_existed(place, capsys):
    """Only what the run created is removed: an empty folder given as the run directory stays."""
    mine = place / "outside" / "mine"
    mine.mkdir()
    assert cli.run([f"hydra.run.dir={mine}", "T=0"]) == 2
    assert mine.is_dir()
    capsys.readouterr()


def test_suggestions(place, capsys):
    expect = {
        ("norm=TEBN",): "Did you mean norm=tebn?", ("model=VGG",): "Did you mean model=vgg?",
        ("trainer.epoch=3",): "Did you mean trainer.epochs?", ("trainer.Epochs=3",): "Did you mean trainer.epochs?",
        ("neuron.beta=0.9",): "lif's decay is β", ("neuron=plif", "neuron.beta=0.9"): "plif's decay is β",
        ("epoch=3",): "Did you mean trainer.epochs?", ("lr=0.1",): "Did you mean optimizer.lr?",
        ("T=４",): "Did you mean T=4?", ("T=4\u200b",): "Did you mean T=4?", ("optimizer=ADAMW",): "optimizer=adamw",
        ("neuron.v_threshold=1",): "Did you mean neuron.threshold?", ("norm=tebn.yaml",): "Did you mean norm=tebn?",
        ("+trainer.epochs=3",): "trainer.epochs=3", ("+neuron.beta=0.9",): "lif's decay is β",
        ("+neuron.thresh=2",): "Did you mean neuron.threshold?",
    }
    for args, hint in expect.items():
        assert cli.run([*args, "trainer.epochs=1"]) == 2
        err = capsys.readouterr().err
        assert hint in err, (args, err)
    assert cli.run(["norm=TEBN"]) == 2
    files = sorted(f.stem for f in (Path(__file__).parents[1] / "configs" / "norm").glob("*.yaml"))
    assert {"bn", "tebn", "none"} <= set(files)
    assert f"Valid choices: {', '.join(files)}." in capsys.readouterr().err


# ---- snntrain-eval -----------------------------------------------------------------------
EVAL_CASES: list[tuple[list[str], str]] = [
    (["T"], "T"), (["=3"], "=3"), (["T=４"], "T"), (["T=${T}"], "T"), (["T="], "T"), (["T=1\n2"], "T"),
    (["model.hidden=!!python/object/apply:os.system [ls]"], "model.hidden"), (["dataset.root=!!binary aGk="], "dataset.root"),
    ([f"dataset.root={BOMB}"], "dataset.root"), (["dataset.root=[&a x, *a]"], "dataset.root"),
    ([f"dataset.root={'x' * 5000}"], "dataset.root"), (["seed=18446744073709551616"], "seed"),
    (["model.hiden=[1]"], "model.hiden"), (["foo.bar=1"], "foo.bar"), (["T=0"], "T"), (["T=1000000"], "trainer.memory_budget"),
    (["model.hidden=[100000,100000]"], "trainer.memory_budget"), (["--checkpoint=middle"], "argument --checkpoint"),
    (["dataset.root: [x"], "dataset.root: [x"), (["T\u200b=4"], "T"), (["hydra/launcher=x"], "hydra/launcher"),
    (["trainer.gradient_clip_val=0"], "trainer.gradient_clip_val"), (["dataset.split_seed=-1"], "dataset.split_seed"),
    (["device=tpu"], "device"), (["T=[4"], "T"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "r"
    assert cli.run([f"hydra.run.dir={run}", "trainer.epochs=1", "trainer.limit_batches=1", "trainer.progress=false",
                    "trainer.log_images_every=null"]) == 0
    return run


@pytest.mark.parametrize("args,key", EVAL_CASES, ids=[" ".join(a)[:50] for a, _ in EVAL_CASES])
def test_eval_bad_arguments(finished_run, capsys, args, key):
    before = _tree(finished_run)
    with pytest.raises(SystemExit) as stop:
        evaluation.main([str(finished_run), *args])
    out = capsys.readouterr()
    assert stop.value.code == 2
    _check(out.err + out.out, key, prefix="snntrain-eval")
    assert _tree(finished_run) == before


@pytest.mark.parametrize("run", ["/no/such/run", "/dev/null", "{tmp}"])
def test_eval_bad_run_path(tmp_path, capsys, run):
    with pytest.raises(SystemExit) as stop:
        evaluation.main([run.replace("{tmp}", str(tmp_path))])
    assert stop.value.code == 2
    text = capsys.readouterr().err
    assert text.startswith("snntrain-eval: error: ") and "Traceback" not in text and "\n" not in text.strip()


def test_a_yaml_anchor_bomb_is_refused_without_expanding_it():
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(evaluation.ConfigError, match="anchors and aliases"):
        evaluation.parse_value("dataset.root", BOMB)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5_000_000  # 9**6 = 531441 strings if it were expanded


# ---- real processes -------------------------------------------------------------------------
PROCESS = [
    (["norm=TEBN"], "norm", 2, "norm=tebn"), (["model=VGG"], "model", 2, "model=vgg"),
    (["trainer.epoch=3"], "trainer.epoch", 2, "trainer.epochs"), (["neuron.beta=0.9"], "neuron.beta", 2, "β"),
    (["T=４"], "T", 2, "T=4"), (["T=4\u200b"], "T", 2, "U+200B"), (["seed=1\n2"], "seed", 2, "line break"),
    (["experiment=../train"], "experiment", 2, "path"), (["experiment=/etc/passwd"], "experiment", 2, "path"),
    (["T=${T}"], "T", 2, "interpolation"), (["T=${oc.env:UNSET_SNNTRAIN_VAR}"], "T", 2, "interpolation"),
    (["seed=18446744073709551616"], "seed", 2, "64-bit"), ([f"T={BIG}"], "T", 2, "characters"),
    (["~trainer.epochs"], "trainer.epochs", 2, "deleting"), ([f"resume={LONG}"], "resume", 2, "255"),
    (["resume="], "resume", 2, "empty"), (["hydra.run.dir="], "hydra.run.dir", 2, "empty"),
    (["trainer.gradient_clip_val=0"], "trainer.gradient_clip_val", 2, "null turns it off"),
    (["dataset.split_seed=-1"], "dataset.split_seed", 2, ">= 0"),
    (["hydra.run.dir=/proc/snntrain_fuzz/x"], "hydra.run.dir", 4, "/proc/snntrain_fuzz"),
    (["hydra.run.dir=/dev/null"], "hydra.run.dir", 4, "/dev/null"),
    (["hydra.run.dir={tmp}/afile"], "hydra.run.dir", 4, "afile"),
    ([f"hydra.run.dir={{tmp}}/out/{LONG}"], "hydra.run.dir", 4, "255"),
    (["hparams_search=nope"], "hparams_search", 2, "digits_optuna"), (["-m", "norm=TEBN,bn"], "norm", 2, "norm=tebn"),
    (["T=100000"], "trainer.memory_budget", 2, "budget"),
]


@pytest.mark.slow
def test_real_processes(tmp_path):
    """The same refusals through the installed console script: Hydra's own entry point included."""
    from concurrent.futures import ThreadPoolExecutor

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (tmp_path / "afile").write_text("keep me")
    before = _tree(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)

    def one(i_case):
        i, (args, *_) = i_case
        args = [a.replace("{tmp}", str(tmp_path)) for a in args]
        own = [] if any(a.startswith("hydra.") for a in args) else [f"hydra.{'sweep' if '-m' in args else 'run'}.dir="
                                                                     f"case{i}/outputs/run"]  # two at once, apart
        return subprocess.run([sys.executable, "-m", "snntrain", *args, *own, "trainer.epochs=1"], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, enumerate(PROCESS)))
    for (args, key, code, hint), r in zip(PROCESS, results):
        assert r.returncode == code, (args, r.stderr[-800:])
        _check(r.stderr + r.stdout, key)
        assert hint in r.stderr, (args, r.stderr)
    assert _tree(tmp_path) == before


@pytest.mark.slow
def test_real_eval_process_refuses_a_huge_T(finished_run):
    r = subprocess.run([sys.executable, "-c", "from snntrain.evaluation import main; main()", str(finished_run),
                        "T=1000000"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    _check(r.stderr, "trainer.memory_budget", prefix="snntrain-eval")
    assert "budget" in r.stderr and "T=1000000" in r.stderr


def test_a_run_directory_whose_lock_cannot_be_written_is_exit_4(place, capsys, monkeypatch):
    """An existing folder Hydra accepts but the run cannot write in (read-only; simulated: root writes anywhere)."""
    mine = place / "outside" / "ro"
    mine.mkdir()
    real_open = os.open

    def guarded(path, *a, **k):
        if str(path).startswith(str(mine)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", guarded)
    before = _tree(place)
    assert cli.run([f"hydra.run.dir={mine}", "trainer.epochs=1", "trainer.limit_batches=1"]) == 4
    err = capsys.readouterr().err
    _check(err, "hydra.run.dir")
    assert str(mine) in err and "EACCES" in err
    assert _tree(place) == before


def test_a_refused_run_in_an_interpolated_folder_outside_the_working_folder_leaves_nothing(place, capsys):
    """The run directory's last parts are known only once Hydra resolved them (``${now:...}``)."""
    before = _tree(place)
    assert cli.run([f"hydra.run.dir={place}/outside/a/${{now:%H-%M-%S}}/b", "T=0"]) == 2
    _check(capsys.readouterr().err, "T")
    assert _tree(place) == before
