"""The benchmarks page shows exactly what ``benchmarks/results/`` holds: its CPU tables are rendered from the files."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import tables  # noqa: E402


def test_every_table_of_the_page_is_the_rendering_of_its_result_file():
    text = tables.PAGE.read_text()
    for name in tables.TABLES:
        assert tables.block(name).search(text), f"the page has no {name} table"
    assert text == tables.rendered(text), "run: python benchmarks/tables.py --write"


def test_a_number_typed_into_the_page_is_caught():
    text = tables.PAGE.read_text()
    m = tables.block("end_to_end").search(text)
    edited = text[:m.start(2)] + m.group(2).replace("| snntrain |", "| snntrain | 9", 1) + text[m.end(2):]
    assert edited != text and tables.rendered(edited) != edited
