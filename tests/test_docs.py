"""The documentation site builds with Sphinx, warnings as errors, and its component reference covers the registry."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"),
                          str(tmp_path / "html")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    index = (tmp_path / "html" / "index.html").read_text()
    for page in ("guide/getting-started", "tutorials/compare-norms", "tutorials/export", "reference/components"):
        assert f"{page}.html" in index
    for md in sorted((ROOT / "docs").glob("*.md")):  # every top-level page (other topics) is in the navigation
        assert f"{md.stem}.html" in index, f"docs/{md.name} is not in the site's navigation"
    components = (tmp_path / "html" / "reference" / "components.html").read_text()
    assert "\\(H_t = V_{reset} + \\beta" in components or "\\beta" in components  # equations rendered by MathJax


def test_component_reference_lists_every_component():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import conf
    finally:
        sys.path.remove(str(ROOT / "docs"))
    import snntrain

    text = conf.components_rst()
    for row in snntrain.describe():
        assert f"``{row['name']}``\n" in text
    assert "decay=0.5 (β, unless tau is set" in text  # effective defaults as snntrain-list shows them
    assert ".. math::" in text  # the docstrings' equations, for Sphinx to render
