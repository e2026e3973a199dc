"""Named queries: parsing, duplicates across files, and the error for a missing name."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.errors import StoreError
from broadcaster.store.queries import (
    QUERIES_DIR,
    Queries,
    UnknownQueryError,
    load_queries,
    parse_queries,
    queries,
)

TWO_QUERIES = """\
-- Header comments before the first query are allowed.

-- name: claim_chunk
-- Lease the next free chunk.
-- Second line of the description.
UPDATE broadcast_chunks
   SET leased_by = $2  -- a comment inside the query stays
 WHERE broadcast_id = $1;

-- name: count_chunks
SELECT count(*) FROM broadcast_chunks WHERE broadcast_id = $1;
"""


def test_parse_splits_on_name_lines_and_drops_descriptions() -> None:
    parsed = parse_queries(TWO_QUERIES)

    assert list(parsed) == ["claim_chunk", "count_chunks"]
    assert parsed["claim_chunk"] == (
        "UPDATE broadcast_chunks\n"
        "   SET leased_by = $2  -- a comment inside the query stays\n"
        " WHERE broadcast_id = $1;"
    )
    assert (
        parsed["count_chunks"] == "SELECT count(*) FROM broadcast_chunks WHERE broadcast_id = $1;"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n", "'a' is defined twice"),
        ("-- name: a\n-- only a description\n\n-- name: b\nSELECT 1;\n", "'a' is empty"),
        ("-- name: Bad-Name\nSELECT 1;\n", "'Bad-Name' is invalid"),
        ("-- name:\nSELECT 1;\n", "'' is invalid"),
        ("SELECT 0;\n-- name: a\nSELECT 1;\n", "SQL before the first"),
    ],
)
def test_parse_rejects_malformed_files(text: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as caught:
        parse_queries(text, source="broken.sql")

    assert "broken.sql" in str(caught.value)


def test_load_reads_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: one\nSELECT 1;\n", encoding="utf-8")
    (tmp_path / "b.sql").write_text("-- name: two\nSELECT 2;\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("-- name: ignored\nSELECT 3;\n", encoding="utf-8")

    loaded = load_queries(tmp_path)

    assert dict(loaded) == {"one": "SELECT 1;", "two": "SELECT 2;"}


def test_duplicate_names_across_files_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: same\nSELECT 1;\n", encoding="utf-8")
    (tmp_path / "b.sql").write_text("-- name: same\nSELECT 2;\n", encoding="utf-8")

    with pytest.raises(StoreError, match=r"'same' is defined in both a\.sql and b\.sql"):
        load_queries(tmp_path)


def test_missing_name_is_a_store_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: one\nSELECT 1;\n", encoding="utf-8")
    loaded = load_queries(tmp_path)

    with pytest.raises(StoreError, match="no query named 'claim_chunk'"):
        loaded["claim_chunk"]
    # Still a Mapping: `in` and `.get` behave as for a dict.
    assert "claim_chunk" not in loaded
    assert loaded.get("claim_chunk") is None
    assert issubclass(UnknownQueryError, KeyError)


def test_lazy_queries_load_on_first_use(tmp_path: Path) -> None:
    lazy = Queries(tmp_path)
    (tmp_path / "a.sql").write_text("-- name: one\nSELECT 1;\n", encoding="utf-8")

    assert "not loaded" in repr(lazy)
    assert lazy["one"] == "SELECT 1;"
    assert len(lazy) == 1


def test_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        load_queries(tmp_path / "nope")


def test_project_queries_load() -> None:
    assert queries.queries_dir == QUERIES_DIR
    assert queries["schema_version"].startswith("SELECT")
    assert dict(load_queries(QUERIES_DIR)) == dict(queries)
