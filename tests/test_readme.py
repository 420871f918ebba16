"""The README's examples are current: its Python blocks run, with the values their comments show,
and each `snntrain ...` command line in its shell blocks composes and validates."""
from __future__ import annotations

import ast
import re
import shlex
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(lang: str) -> list[str]:
    text = README.read_text()
    return [textwrap.dedent(b) for b in re.findall(rf"^ *```{lang}\n(.*?)^ *```", text, flags=re.M | re.S)]


def _expected(line: str):
    """``expr  # <literal>`` -> (expr, literal); None for other lines."""
    code, sep, comment = line.partition("  #")
    if not sep or "=" in code.split("(")[0] or not code.strip():
        return None
    try:
        ast.parse(code.strip(), mode="eval")
        return code.strip(), ast.literal_eval(comment.strip())
    except (SyntaxError, ValueError):
        return None


def test_readme_has_python_blocks():
    assert blocks("python"), "the README lost its Python example"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_block_runs_and_shows_true_values(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    checked, pending = 0, []
    for line in blocks("python")[index].splitlines() + [""]:
        want = _expected(line)
        if want is None:
            pending.append(line)
            continue
        exec(compile("\n".join(pending), f"README block {index}", "exec"), namespace)
        pending = []
        got = eval(want[0], namespace)
        assert got == want[1], f"README says {want[0]} is {want[1]!r}; it is {got!r}"
        checked += 1
    exec(compile("\n".join(pending), f"README block {index}", "exec"), namespace)
    assert checked, "a block with no checked value"


def _commands() -> list[list[str]]:
    out = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part.strip())
                if words[:1] == ["snntrain"]:
                    out.append(words[1:])
    for span in re.findall(r"`(snntrain [^`]+)`", README.read_text()):  # inline examples in the prose
        if not re.search(r"<|\.\.\.|\[|--", span):  # placeholders and Hydra's own flags are not runnable
            out.append(shlex.split(span)[1:])
    return out


@pytest.mark.parametrize("args", _commands(), ids=lambda a: " ".join(a) or "(default)")
def test_shell_examples_compose_and_validate(args):
    from snntrain.cli import compose
    from snntrain.training.config import validate
    from snntrain.training.engine import as_dict

    overrides = [a for a in args if a != "-m"]
    if "-m" in args:  # a sweep: each job is one value of each swept key
        overrides = [o.split(",")[0] if "=" in o else o for o in overrides]
    validate(as_dict(compose(*overrides)))
