"""The configuration reference (docs/configuration.md), generated from the settings themselves:
every key, its environment variable, its default and its meaning (the field's docstring), so the
document cannot drift from the code (a test compares the committed file with this output)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
from pathlib import Path
from typing import Any

from broadcaster.settings import ENVIRONMENT_VARIABLES, PROJECT_ROOT, Settings, SmscConfig

HEADER = """\
# Configuration reference

Generated from `broadcaster/settings.py` by `broadcaster config reference --output
docs/configuration.md`; do not edit by hand (a test fails when this file and the code differ).

Precedence: command-line flag > environment variable > TOML file (`--config` or
`BROADCASTER_CONFIG`) > default. An example file: `deploy/broadcaster.toml`. Secrets (the database
password, SMPP passwords) belong in the environment file (`deploy/systemd/broadcaster.env`), not in
the TOML file. Flags of single commands (`serve --port`...) are listed by `--help`, each with its
`BROADCASTER_*` variable.
"""

SMSC_HEADER = """\
## SMSCs

One `[[smsc]]` table per SMSC (site) in the TOML file, or `BROADCASTER_SMSC_URL` (comma-separated
`smpp://system_id:password@host:port?binds=2&tps=100`; the other keys as query parameters), which
replaces the file's tables.
"""

TOML_KEYS = {"database_url": "`[database] url`", "smscs": "`[[smsc]]`"}
URL_ADDRESS = {"host": "address", "port": "address", "system_id": "address", "password": "address"}


def field_docs(cls: type[Any]) -> dict[str, str]:
    """A dataclass's attribute docstrings (the string right under each field), as one line."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:  # pragma: no cover - every setting has a default
        return "(required)"
    if value is None or value == ():
        return "(none)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        if value.is_relative_to(PROJECT_ROOT):
            return f"`<installation>/{value.relative_to(PROJECT_ROOT)}`"
        if value.is_relative_to(Path.home()):
            return f"`~/{value.relative_to(Path.home())}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference() -> str:
    """The whole document."""
    environment = {name: var for var, name in ENVIRONMENT_VARIABLES.items()}
    environment["database_url"] = "DATABASE_URL"
    environment["smscs"] = "BROADCASTER_SMSC_URL"
    docs = field_docs(Settings)
    lines = [
        HEADER,
        "## Settings",
        "",
        "| key | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for f in dataclasses.fields(Settings):
        key = TOML_KEYS.get(f.name, f"`{f.name}`")
        var = f"`{environment[f.name]}`" if f.name in environment else "—"
        lines.append(f"| {key} | {var} | {_default(f)} | {_cell(docs.get(f.name, ''))} |")
    lines += ["", SMSC_HEADER, "| key | in the URL | default | meaning |", "|---|---|---|---|"]
    smsc_docs = field_docs(SmscConfig)
    for f in dataclasses.fields(SmscConfig):
        where = URL_ADDRESS.get(f.name, "query" if f.name != "name" else "— (smsc1, smsc2...)")
        lines.append(
            f"| `{f.name}` | {where} | {_default(f)} | {_cell(smsc_docs.get(f.name, ''))} |"
        )
    return "\n".join(lines) + "\n"


def undocumented() -> list[str]:
    """Fields without a docstring (a test requires none)."""
    missing = [
        f"Settings.{f.name}"
        for f in dataclasses.fields(Settings)
        if f.name not in field_docs(Settings)
    ]
    missing += [
        f"SmscConfig.{f.name}"
        for f in dataclasses.fields(SmscConfig)
        if f.name not in field_docs(SmscConfig)
    ]
    return missing
