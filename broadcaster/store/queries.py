"""Named queries: the SQL lives in `sql/queries/*.sql`, Python refers to it by name.

A file holds blocks, each starting with a `-- name: some_query` line, optionally followed by
`-- ` comment lines that describe it; the SQL runs up to the next `-- name:` line:

    -- name: claim_chunk
    -- Lease the next chunk of a broadcast that nobody holds.
    UPDATE broadcast_chunks SET ...

Callers write `queries["claim_chunk"]`. The files are read once, on first use; a missing name
raises `StoreError` naming it, and two blocks with one name (in any files) are an error.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from broadcaster.errors import StoreError
from broadcaster.settings import PROJECT_ROOT

QUERIES_DIR = PROJECT_ROOT / "sql" / "queries"
NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>\S*)\s*$")
VALID_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class UnknownQueryError(StoreError, KeyError):
    """No query has that name: add a `-- name:` block to a file in sql/queries or fix the name."""

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError would quote the message


class Queries(Mapping[str, str]):
    """A read-only name -> SQL mapping whose files are loaded once, on first lookup."""

    def __init__(self, queries_dir: Path, *, _loaded: Mapping[str, str] | None = None) -> None:
        self.queries_dir = queries_dir
        self._queries: dict[str, str] | None = dict(_loaded) if _loaded is not None else None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        queries = self._queries
        if queries is None:
            with self._lock:
                if self._queries is None:
                    self._queries = _read_dir(self.queries_dir)
                queries = self._queries
        return queries

    def __getitem__(self, name: str) -> str:
        try:
            return self._load()[name]
        except KeyError:
            raise UnknownQueryError(
                f"no query named {name!r} in {self.queries_dir}/*.sql: "
                f"add a `-- name: {name}` block or fix the name"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        state = "not loaded" if self._queries is None else f"{len(self._queries)} queries"
        return f"Queries({str(self.queries_dir)!r}, {state})"


def load_queries(queries_dir: Path) -> Queries:
    """Read every `*.sql` file of a directory now (errors surface here, not at first use)."""
    return Queries(queries_dir, _loaded=_read_dir(queries_dir))


def parse_queries(text: str, source: str = "<string>") -> dict[str, str]:
    """Split one file's text into its named queries."""
    queries: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []

    def finish() -> None:
        if name is None:
            stray = [line for line in body if line.strip() and not line.lstrip().startswith("--")]
            if stray:
                raise StoreError(f"{source}: SQL before the first `-- name:` line: {stray[0]!r}")
            return
        sql = _strip_description(body)
        if not sql:
            raise StoreError(f"{source}: query {name!r} is empty")
        if name in queries:
            raise StoreError(f"{source}: query {name!r} is defined twice")
        queries[name] = sql

    for line in text.splitlines():
        match = NAME_LINE.match(line)
        if match is None:
            body.append(line)
            continue
        finish()
        name, body = match["name"], []
        if not VALID_NAME.match(name):
            raise StoreError(
                f"{source}: query name {name!r} is invalid: use lower_case_with_underscores"
            )
    finish()
    return queries


def _strip_description(lines: list[str]) -> str:
    """Drop the `-- ` comment lines that follow the name line; keep comments inside the SQL."""
    start = 0
    while start < len(lines) and (not lines[start].strip() or lines[start].startswith("--")):
        start += 1
    return "\n".join(lines[start:]).strip()


def _read_dir(queries_dir: Path) -> dict[str, str]:
    if not queries_dir.is_dir():
        raise StoreError(f"queries directory {queries_dir} does not exist")
    queries: dict[str, str] = {}
    source_of: dict[str, Path] = {}
    for path in sorted(queries_dir.glob("*.sql")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"cannot read query file {path}: {exc}") from exc
        for name, sql in parse_queries(text, source=str(path)).items():
            if name in queries:
                raise StoreError(
                    f"query {name!r} is defined in both {source_of[name].name} and {path.name} "
                    f"({queries_dir}): rename one"
                )
            queries[name] = sql
            source_of[name] = path
    return queries


queries = Queries(QUERIES_DIR)
"""The application's queries, from the `sql/queries` directory beside the package."""
