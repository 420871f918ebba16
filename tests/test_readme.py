"""The README's and the docs' examples are current: their Python blocks run, with the values their comments
show, and each `snntrain ...` command line in their shell blocks composes and validates."""
from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: the README and every Markdown page of the documentation site
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def blocks(lang: str, page: Path = README) -> list[str]:
    text = page.read_text()
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


def test_readme_is_short_and_has_a_python_block():
    assert len(README.read_text().splitlines()) <= 150
    assert blocks("python"), "the README lost its Python example"


def test_readme_setup_commands_are_what_ci_runs():
    """The README's test command is exactly the one .ci/run runs."""
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(ci) == 1 and ci[0] + "\n" in blocks("bash"), "README and .ci/run disagree on the test command"


#: a child process per block: a block may register components, which must not leak into other tests
_RUNNER = r"""
import ast, json, sys
segments, name = json.loads(sys.stdin.read())
ns = {}
for code, expr, want in segments:
    exec(compile(code, name, "exec"), ns)
    if expr is not None:
        want = ast.literal_eval(want)
        got = eval(expr, ns)
        if got != want:
            print(f"{name} says {expr} is {want!r}; it is {got!r}", file=sys.stderr)
            sys.exit(1)
"""

PY_BLOCKS = [(page, i) for page in PAGES for i in range(len(blocks("python", page)))]


@pytest.mark.slow
@pytest.mark.parametrize("page,index", PY_BLOCKS, ids=[f"{_name(p)}#{i}" for p, i in PY_BLOCKS])
def test_python_block_runs_and_shows_true_values(page, index, tmp_path):
    segments, pending = [], []
    for line in blocks("python", page)[index].splitlines() + [""]:
        want = _expected(line)
        if want is None:
            pending.append(line)
            continue
        segments.append(["\n".join(pending), want[0], repr(want[1])])
        pending = []
    segments.append(["\n".join(pending), None, None])
    assert any(s[1] for s in segments), "a block with no checked value"
    out = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps([segments, f"{_name(page)} block {index}"]),
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


def _commands() -> list[tuple[str, list[str]]]:
    out = []
    for page in PAGES:
        for block in blocks("bash", page):
            for line in block.splitlines():
                line = line.split(" #")[0].strip()
                for part in line.split("&&"):
                    words = shlex.split(part.strip())
                    if words[:1] == ["snntrain"]:
                        out.append((_name(page), words[1:]))
        for span in re.findall(r"`(snntrain [^`]+)`", page.read_text()):  # inline examples in the prose
            if not re.search(r"<|\.\.\.|\[|--", span):  # placeholders and Hydra's own flags are not runnable
                out.append((_name(page), shlex.split(span)[1:]))
    return out


COMMANDS = _commands()


@pytest.mark.parametrize("page,args", COMMANDS, ids=[f"{p}: {' '.join(a) or '(default)'}" for p, a in COMMANDS])
def test_shell_examples_compose_and_validate(page, args):
    from snntrain.cli import compose
    from snntrain.training.config import validate
    from snntrain.training.engine import as_dict

    overrides = [a for a in args if a != "-m"]
    if "-m" in args:  # a sweep: each job is one value of each swept key
        overrides = [o.split(",")[0] if "=" in o else o for o in overrides]
    validate(as_dict(compose(*overrides)))
