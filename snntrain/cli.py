"""Command line: ``snntrain`` (Hydra) and ``snntrain-list`` (the component registry).

The Hydra entry is deliberately thin: it hands the composed config and the run
directory to :func:`snntrain.training.train` and turns user errors into a one-paragraph
message and exit status 2 (no traceback).
"""
from __future__ import annotations

import argparse
import re
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .errors import ConfigError


@hydra.main(version_base=None, config_path="pkg://snntrain.configs", config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    from .training import train

    run_dir = HydraConfig.get().runtime.output_dir
    try:
        return train(cfg, run_dir)["test_acc"]
    except ConfigError as err:
        print(f"snntrain: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            f"\nsnntrain: interrupted. {run_dir}/checkpoints/last.pt holds the last finished epoch; "
            f"continue with the same overrides plus resume={run_dir}",
            file=sys.stderr,
        )
        sys.exit(130)


def main() -> None:
    """Entry point of the ``snntrain`` command."""
    _hydra_main()


def _markdown(rst: str) -> str:
    """Docstring summary (reST) as a Markdown table cell: math in $...$, code in backticks."""
    text = re.sub(r":math:`([^`]*)`", r"$\1$", rst).replace("``", "`")
    return text.replace("|", "\\|")


def list_main(argv: list[str] | None = None) -> None:
    """Entry point of ``snntrain-list``: every kind, name and argument with its default."""
    from . import describe
    from .registry import KINDS

    parser = argparse.ArgumentParser(prog="snntrain-list", description=list_main.__doc__)
    parser.add_argument("kind", nargs="?", choices=list(KINDS), help="only this kind")
    parser.add_argument("--markdown", action="store_true", help="print the README's component table")
    args = parser.parse_args(argv)
    rows = describe(args.kind)
    if args.markdown:
        print("| kind | name | what it is | arguments (defaults) |")
        print("|---|---|---|---|")
        for r in rows:
            arg_text = ", ".join([f"`{k}` (required)" for k in r["required"]] + [f"`{k}={v!r}`" for k, v in r["args"].items()])
            summary = _markdown(r["summary"])
            print(f"| {r['kind']} | `{r['name']}` | {summary} | {arg_text} |")
        return
    for kind in [args.kind] if args.kind else list(KINDS):
        print(f"{kind}:")
        for r in (r for r in rows if r["kind"] == kind):
            arg_text = ", ".join([f"{k} (required)" for k in r["required"]] + [f"{k}={v!r}" for k, v in r["args"].items()])
            print(f"  {r['name']:<10} {r['summary']}")
            if arg_text:
                print(f"  {'':<10} args: {arg_text}")
