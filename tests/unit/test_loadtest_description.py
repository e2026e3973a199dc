"""A load test's `--help` describes it in its docstring's whole first paragraph."""

from __future__ import annotations

import loadtest.e2e_receipts
import loadtest.national
from loadtest.common import description


def test_the_first_paragraph_on_one_line() -> None:
    doc = "The first line,\ncontinued here.\n\n    python -m it\n\nMore.\n"
    assert description(doc) == "The first line, continued here."
    assert description(None) == ""


def test_a_script_stops_at_the_end_of_a_sentence_not_of_a_line() -> None:
    for module in (loadtest.e2e_receipts, loadtest.national):
        text = description(module.__doc__)
        assert text.endswith(("?", ".")), text
        assert "\n" not in text
