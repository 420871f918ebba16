"""Sphinx configuration of snntrain's documentation (``sphinx-build -W docs docs/_build``).

Sphinx because the components' docstrings are reStructuredText with ``:math:`` equations, which
Sphinx renders as written; MyST reads the Markdown pages. The component reference is generated
from the registry when the build starts (:func:`write_components`).
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

project = "snntrain"
author = "the snntrain authors"
extensions = ["myst_parser", "sphinx.ext.mathjax"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
html_theme = "furo"
html_title = "snntrain"
suppress_warnings = ["myst.xref_missing"]  # Markdown links to source files of the repository, not pages

KIND_TITLES = {
    "neuron": "Neurons", "surrogate": "Surrogate gradients", "norm": "Normalization", "layer": "Layers",
    "model": "Models", "dataset": "Datasets", "encoder": "Encoders", "loss": "Losses", "optimizer": "Optimizers",
    "scheduler": "Learning-rate schedules", "trainer": "Trainers",
}


def _doc(obj, seen: set) -> str:
    """The component's docstring; where that is one line, followed by its module's (the equations and the paper)
    the first time a component of that module is shown."""
    doc = inspect.cleandoc(inspect.getdoc(obj) or "")
    name = getattr(obj, "__module__", "")
    module = sys.modules.get(name)
    more = inspect.cleandoc(module.__doc__ or "") if module is not None and name not in seen else ""
    if "\n" not in doc.strip() and more and not more.startswith(doc[:40]):
        seen.add(name)
        doc = f"{doc}\n\n{more}" if doc else more
    return doc


def components_rst() -> str:
    """The component reference: every registered component with its docstring (equations) and arguments."""
    from snntrain.registry import KINDS, describe, entry

    rows = describe()
    seen: set = set()
    out = [
        "Component reference", "===================", "",
        "Every component the configs can name, generated from the registry (``snntrain-list`` prints the same "
        "names and defaults). Set an argument with ``<group>.<argument>=<value>``, e.g. ``neuron.decay=0.9``.", "",
    ]
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        title = KIND_TITLES.get(kind, kind)
        out += [title, "-" * len(title), ""]
        for r in mine:
            head = f"``{r['name']}``"
            out += [head, "~" * len(head), ""]
            doc = _doc(entry(kind, r["name"]).obj, seen)
            out += [doc, ""] if doc else []
            args = [f"``{k}`` (required)" for k in r["required"]] + [f"``{k}={v!r}``" for k, v in r["args"].items()]
            if args:
                out += ["Arguments (defaults): " + ", ".join(args), ""]
    return "\n".join(out) + "\n"


def write_components(app=None) -> None:
    target = DOCS / "reference" / "components.rst"
    text = components_rst()
    if not target.is_file() or target.read_text() != text:
        target.write_text(text)


def setup(app):
    app.connect("builder-inited", write_components)
