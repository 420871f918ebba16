"""Command line: ``snntrain`` (Hydra) and ``snntrain-list`` (the component registry).

The Hydra entry is deliberately thin: it hands the composed config, the run directory
and Hydra's own record of the run (``.hydra/*.yaml``, written only once the run is
accepted) to :func:`execute`, a plain function that calls
:func:`snntrain.training.train` and turns every user-facing error into one paragraph
on stderr and an exit status (see :mod:`snntrain.errors`). A run that fails before it
starts leaves no run directory behind. Under ``-m`` a failing job is recorded as failed
(``<sweep dir>/jobs.jsonl``) and the sweep goes on; the summary at the end lists it
and the command exits 1.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError, PathError, RunError

_FRONT: Any = None  # the front door's plan of the current command (snntrain.overrides.Front)


def path_error(err: OSError, key: str = "hydra.run.dir") -> PathError:
    """A file-system failure around the run directory as one paragraph (exit 4) naming the path."""
    import errno as errno_names

    code = errno_names.errorcode.get(err.errno or 0, "")
    where = err.filename or "the run directory"
    return PathError(f"{key}: {where} cannot be created or written: {err.strerror or err}"
                     f"{f' ({code})' if code else ''}. Pick a folder on a writable disk that this user may write "
                     f"({key}=<folder>); nothing was written.")


def _stop() -> Path:
    """Where removing a refused run's empty folders stops: the deepest folder of its path that existed before."""
    return _FRONT.anchor if _FRONT is not None else Path.cwd()


def execute(cfg: DictConfig | dict[str, Any], run_dir: str | Path, *, files: dict[str, str] | None = None,
            command: list[str] | None = None) -> tuple[int, dict[str, Any] | None, str | None]:
    """Run ``snntrain`` on ``cfg`` in ``run_dir``: ``(exit status, metrics or None, error message or None)``.

    Errors are printed as one paragraph (no traceback). A run that never started
    removes ``run_dir`` (and the parents this run created) again if they are left empty.
    """
    from omegaconf.errors import OmegaConfBaseException

    from .training.rundir import remove_if_empty
    from .training.schema import precheck

    run_dir = Path(run_dir)
    try:
        try:
            plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        except OmegaConfBaseException as err:  # an interpolation in a config file that does not resolve
            key = getattr(err, "full_key", None) or "config"
            raise ConfigError(f"{key}: {str(err).splitlines()[0]}. Fix the value in its config file.") from None
        precheck(plain)  # the mistakes that need no component are refused before torch is imported
        from .training import budget, train

        with budget.enforcing("train"):  # a run estimated over the memory available is refused before it starts
            metrics = train(cfg, run_dir, run_files=files, command=command)
    except ConfigError as err:
        message, code = f"snntrain: error: {err}", err.exit_code
    except RunError as err:
        message, code = f"snntrain: {err}", err.exit_code
    except OSError as err:  # the run directory (or a file in it) could not be made: a file-system failure
        err2 = path_error(err)
        message, code = f"snntrain: error: {err2}", err2.exit_code
    except KeyboardInterrupt:
        message, code = ("snntrain: stopped at once (second Ctrl-C); the run's checkpoints/last.pt is the last "
                         "checkpoint written, if any."), 130
    else:
        if metrics.get("status") == "already finished":  # the engine said so; nothing was written
            remove_if_empty(run_dir, _stop())
        return 0, metrics, None
    from .training.distributed import from_env

    if from_env().main:  # under torchrun every process has the error; one prints it
        print(message, file=sys.stderr, flush=True)
    remove_if_empty(run_dir, _stop())
    return code, None, message


def _hydra_files(cfg: DictConfig) -> dict[str, str]:
    hc = HydraConfig.get()
    return {
        ".hydra/config.yaml": OmegaConf.to_yaml(cfg),
        ".hydra/hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hc})),
        ".hydra/overrides.yaml": OmegaConf.to_yaml(OmegaConf.create(list(hc.overrides.task))),
    }


@hydra.main(version_base=None, config_path="pkg://snntrain.configs", config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    from . import sweep
    from .training import distributed
    from .training.rundir import remove_if_empty

    if _FRONT is not None:
        _FRONT.started = True
    hc = HydraConfig.get()
    run_dir, overrides = Path(hc.runtime.output_dir), list(hc.overrides.task)
    d = distributed.from_env()
    if d.enabled:  # torchrun: every process uses rank 0's run directory
        try:
            d, _ = distributed.setup(str(cfg.get("device", "auto")))
        except ConfigError as err:
            print(f"snntrain: error: {err}", file=sys.stderr)
            remove_if_empty(run_dir, _stop())
            sys.exit(err.exit_code)
        chosen = Path(distributed.broadcast_object(str(run_dir), d))
        if chosen != run_dir:
            remove_if_empty(run_dir, _stop())
            run_dir = chosen
    code, metrics, error = execute(cfg, run_dir, files=_hydra_files(cfg), command=overrides)
    distributed.shutdown(d, clean=code == 0)
    if hc.mode == RunMode.MULTIRUN:
        if d.main:
            sweep.record_job(Path(hc.sweep.dir), hc.job.num, overrides, run_dir, code, metrics, error)
        if code in (130, 143):  # the user stopped the sweep
            sys.exit(code)
        return objective(cfg, metrics)  # nan: Optuna marks the trial failed
    if code:
        sys.exit(code)
    return objective(cfg, metrics)


def compose(*overrides: str) -> DictConfig:
    """The config ``snntrain <overrides>`` runs with, composed by Hydra from ``configs/`` (no run directory).

    ``snntrain.compose("model=vgg", "norm=tebn", "trainer.epochs=1")``; a bad override raises
    :class:`~snntrain.errors.ConfigError` with Hydra's message.
    """
    from hydra import compose as hydra_compose, initialize_config_module
    from hydra.errors import HydraException

    try:
        with initialize_config_module(config_module="snntrain.configs", version_base=None):
            return hydra_compose(config_name="train", overrides=list(overrides))
    except HydraException as err:
        raise ConfigError(str(err)) from None


def objective(cfg: DictConfig, metrics: dict | None) -> float:
    """The run's ``optimized_metric`` (what a sweeper such as Optuna optimises); nan if the run failed."""
    value = (metrics or {}).get(str(cfg.get("optimized_metric", "test_acc")))
    return float(value) if isinstance(value, (int, float)) else float("nan")


def group_options(root: Path | None = None) -> dict[str, list[str]]:
    """Every config group under ``configs/`` (Hydra's own ``hydra/*`` left out) and its options, sorted."""
    if root is None:
        from importlib.resources import files

        root = Path(str(files("snntrain.configs")))
    return {d.name: sorted(f.stem for f in d.glob("*.yaml"))
            for d in sorted(root.iterdir()) if d.is_dir() and d.name != "hydra" and any(d.glob("*.yaml"))}


def help_text() -> str:
    """``snntrain --help``: the template of ``hydra.help`` in ``train.yaml``, its groups listed from the files.

    The same text Hydra's help would print, without Hydra composing every group 116 times to
    list their options (1.5 s): the options are the ``.yaml`` files of each group's folder.
    """
    import textwrap
    from importlib.resources import files

    root = Path(str(files("snntrain.configs")))
    help_cfg = OmegaConf.load(root / "train.yaml").hydra.help
    groups = "".join(textwrap.fill(f"{group}: {', '.join(options)}", 110, subsequent_indent="    ",
                                   break_on_hyphens=False) + "\n" for group, options in group_options(root).items())
    return str(help_cfg.template).replace("$APP_CONFIG_GROUPS", groups)


def _asks_for_help(argv: list[str]) -> bool:
    """``--help`` about the packaged configs (with ``--config-dir`` or a search path, Hydra's own help lists
    the user's options too)."""
    others = ("--hydra-help", "--config-dir", "-cd", "--config-path", "-cp")
    return (any(a in ("--help", "-h") for a in argv) and not any(a.split("=")[0] in others for a in argv)
            and not any(a.startswith("hydra.searchpath") for a in argv))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``snntrain`` command (``argv``: the arguments after ``snntrain``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if _asks_for_help(argv):
        print(help_text())
        return
    code = run(argv)
    if code:
        sys.exit(code)


def run(argv: list[str]) -> int:
    """``snntrain <argv>``: its exit status; every refusal printed as one paragraph on stderr.

    The front door (:func:`snntrain.overrides.check`) refuses bad overrides before Hydra
    reads them; Hydra then runs with ``HYDRA_FULL_ERROR=1`` so that its own errors reach
    this function as exceptions, explained by :func:`snntrain.overrides.explain` (exit 2;
    a run directory that cannot be made: exit 4). A refused run removes the folders it
    created. ``HYDRA_FULL_ERROR=1`` set by the user shows Hydra's own error instead.
    """
    global _FRONT
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from . import overrides, sweep
    from .resume_args import with_run_overrides

    argv = with_run_overrides(argv)  # `snntrain resume=<dir>` alone: the run's own overrides
    try:
        front = overrides.check(argv)
    except ConfigError as err:
        print(f"snntrain: error: {err}", file=sys.stderr)
        return err.exit_code
    except SystemExit as stop:  # argparse: a bad flag, with its usage line
        return stop.code if isinstance(stop.code, int) else 2
    import os

    user_full_error = os.environ.get("HYDRA_FULL_ERROR")
    saved_argv, code = sys.argv, 0
    os.environ["HYDRA_FULL_ERROR"] = "1"
    sys.argv = [saved_argv[0] if saved_argv else "snntrain", *argv]
    _FRONT = front
    sweep.FAILED_JOBS.clear()
    try:
        _hydra_main()
        code = 1 if sweep.FAILED_JOBS else 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except OSError as err:  # Hydra could not create the run directory
        key = "hydra.sweep.dir" if front.multirun else "hydra.run.dir"
        print(f"snntrain: error: {path_error(err, key)}", file=sys.stderr)
        code = 4
    except Exception as err:  # noqa: BLE001 - Hydra's composition raises ValueError, KeyError, ... too
        if user_full_error == "1" or front.started and not isinstance(err, (HydraException, OmegaConfBaseException)):
            raise
        print(f"snntrain: error: {overrides.explain(front, err)}", file=sys.stderr)
        code = 2
    finally:
        sys.argv = saved_argv
        if user_full_error is None:
            del os.environ["HYDRA_FULL_ERROR"]
        else:
            os.environ["HYDRA_FULL_ERROR"] = user_full_error
        if code:
            front.clean()
        _FRONT = None
    return code


def _markdown(rst: str) -> str:
    """Docstring summary (reST) as a Markdown table cell: math in $...$, code in backticks."""
    text = re.sub(r":math:`([^`]*)`", r"$\1$", rst).replace("``", "`")
    return text.replace("|", "\\|")


_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "eta": "η",
    "theta": "θ", "Theta": "Θ", "lambda": "λ", "mu": "μ", "sigma": "σ", "tau": "τ", "phi": "φ", "pi": "π",
    "Delta": "Δ", "sum": "Σ", "prod": "Π", "cdot": "·", "times": "×", "le": "≤", "leq": "≤", "ge": "≥",
    "geq": "≥", "ne": "≠", "approx": "≈", "infty": "∞", "leftarrow": "←", "rightarrow": "→", "to": "→",
    "partial": "∂", "nabla": "∇", "in": "∈", "lVert": "‖", "rVert": "‖", "Vert": "‖", "odot": "⊙",
}


def _group(x: str) -> str:
    """``x`` as one operand: bare if it is one symbol, number or parenthesised group, else in parentheses."""
    return x if re.fullmatch(r"\\?\w+|\([^()]*\)", x) else f"({x})"


def _fraction(m: re.Match) -> str:
    a, b = _group(m[1]), _group(m[2])
    return f"({a}/{b})" if a == m[1] and b == m[2] else f"{a}/{b}"  # (pi/2) alpha x, not pi/2 alpha x


def plain_math(text: str) -> str:
    """reST with ``:math:`` LaTeX as plain terminal text: Greek letters and symbols, fractions as (a)/(b)."""

    def one(tex: str) -> str:
        tex = re.sub(r"([_^])\{([^{}\s]*)\}", r"\1\2", tex)  # x_{t,b} -> x_t,b
        tex = re.sub(r"([_^])\{([^{}]*)\}", r"\1(\2)", tex)  # x^{a + b} -> x^(a + b)
        tex = re.sub(r"\\[dt]?frac(\w)(\w)", r"(\1/\2)", tex)  # \frac1T -> (1/T)
        for _ in range(4):  # nested \frac / \sqrt, innermost first
            tex = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", _fraction, tex)
            tex = re.sub(r"\\sqrt\{([^{}]*)\}", r"√(\1)", tex)
            tex = re.sub(r"\\(?:mathrm|text|mathbf|operatorname)\{([^{}]*)\}", r"\1", tex)
        tex = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)(?=[()\[\]|.])", "", tex)
        tex = re.sub(r"\\([A-Za-z]+)", lambda m: _SYMBOLS.get(m.group(1), m.group(1)), tex)
        tex = tex.replace("\\,", " ").replace("\\;", " ").replace("\\ ", " ").replace("\\!", "")
        tex = re.sub(r"[{}]", "", tex)
        return re.sub(r"\s+", " ", tex).strip()

    text = re.sub(r":math:`([^`]*)`", lambda m: one(m.group(1)), text)
    return text.replace("``", "")


def component_rows(kind: str | None = None) -> list[dict[str, Any]]:
    """:func:`snntrain.describe` rows with each default as its ``repr`` (``args``), from a cache when it is fresh.

    Describing the components means importing them, torch included (3-4 s). The rows are
    cached in ``$XDG_CACHE_HOME/snntrain`` (``~/.cache/snntrain``) under a key made of every
    source file's path, size and modification time and torch's version, so a changed
    component or another torch is described afresh; the first ``snntrain-list`` pays once.
    """
    import hashlib
    import json
    import os
    from importlib.metadata import PackageNotFoundError, version

    pkg = Path(__file__).resolve().parent
    key = hashlib.sha1()
    for f in sorted(pkg.rglob("*.py")):
        st = f.stat()
        key.update(f"{f.relative_to(pkg)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    try:
        key.update(version("torch").encode())
    except PackageNotFoundError:
        pass
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "snntrain"
    cache = folder / f"components-{key.hexdigest()[:16]}.json"
    try:
        rows = json.loads(cache.read_text())
    except (OSError, ValueError):
        from . import describe

        rows = [{**r, "args": {k: repr(v) for k, v in r["args"].items()}} for r in describe()]
        try:  # best effort: a read-only home only costs the next call the import
            folder.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
            tmp.write_text(json.dumps(rows))
            os.replace(tmp, cache)
            for old in folder.glob("components-*.json"):  # descriptions of sources that changed since
                if old != cache:
                    old.unlink(missing_ok=True)
        except OSError:
            pass
    return [r for r in rows if kind is None or r["kind"] == kind]


def list_main(argv: list[str] | None = None) -> None:
    """Entry point of ``snntrain-list``: every kind, name and argument with its default."""
    from .registry import KINDS

    parser = argparse.ArgumentParser(prog="snntrain-list", description=list_main.__doc__)
    parser.add_argument("kind", nargs="?", choices=list(KINDS), help="only this kind")
    parser.add_argument("--markdown", action="store_true", help="print the README's component table")
    args = parser.parse_args(argv)
    rows = component_rows(args.kind)
    if args.markdown:
        print("| kind | name | what it is | arguments (defaults) |")
        print("|---|---|---|---|")
        for r in rows:
            arg_text = ", ".join([f"`{k}` (required)" for k in r["required"]] + [f"`{k}={v}`" for k, v in r["args"].items()])
            summary = _markdown(r["summary"])
            print(f"| {r['kind']} | `{r['name']}` | {summary} | {arg_text} |")
        return
    import shutil
    import textwrap

    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 140))
    for kind in [args.kind] if args.kind else list(KINDS):
        print(f"{kind}:")
        mine = [r for r in rows if r["kind"] == kind]
        name_w = max((len(r["name"]) for r in mine), default=0) + 2
        indent = " " * (2 + name_w)
        for r in mine:
            arg_text = ", ".join([f"{k} (required)" for k in r["required"]] + [f"{k}={v}" for k, v in r["args"].items()])
            print(textwrap.fill(plain_math(r["summary"]), width, initial_indent=f"  {r['name']:<{name_w}}",
                                subsequent_indent=indent))
            if arg_text:
                print(textwrap.fill(f"args: {arg_text}", width, initial_indent=indent, subsequent_indent=indent + "      "))
