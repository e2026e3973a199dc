"""The import contracts of the package: what may import what (read from the source, not run).

- only the store speaks SQL: no module outside `broadcaster.store` imports the named queries;
- the protocol codec, the planning and the domain are pure: no asyncio, no database, no network;
- the layers go one way (base < pure < I/O < engine < commands < HTTP < interfaces < entry
  points): a lower layer never imports a higher one;
- interfaces translate and never call each other: the API and the console share `broadcaster.http`
  only, and the SMPP session does not know the pool that drives it.

Each rule is checked on every module, at every import (function-level and TYPE_CHECKING ones
too), and each has a test showing it catches a violation.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "broadcaster"

LAYERS: tuple[tuple[str, ...], ...] = (
    # 0: what everything may use
    ("broadcaster", "broadcaster.errors", "broadcaster.settings", "broadcaster.logs"),
    # 1: pure: the domain's words, text, targeting and planning, the protocol's codec and policy
    (
        "broadcaster.domain",
        "broadcaster.text",
        "broadcaster.targeting",
        "broadcaster.planning",
        "broadcaster.cap",
        "broadcaster.subscribers",
        "broadcaster.smpp.codec",
        "broadcaster.smpp.constants",
        "broadcaster.smpp.receipts",
        "broadcaster.smpp.pacing",
        "broadcaster.smpp.policy",
        "broadcaster.smpp.connection",
        "broadcaster.smpp.affinity",
        "broadcaster.drills.cron",
        "broadcaster.drills.policy",
        "broadcaster.drills.report",
        "broadcaster.drills.html",
        "broadcaster.drills.text",
        "broadcaster.afteraction",
        "broadcaster.drills.config",
        "broadcaster.drills.clock",
        "broadcaster.http.ratelimit",
    ),
    # 2: I/O at the edges: the SMPP session and pool, the store, the mock SMSC, webhooks
    (
        "broadcaster.smpp",
        "broadcaster.store",
        "broadcaster.mocksmsc",
        "broadcaster.drills.alarm",
        "broadcaster.importer",
    ),
    # 3: the engine
    ("broadcaster.engine", "broadcaster.drills.local"),
    # 4: the use cases
    ("broadcaster.commands", "broadcaster.drills.runs", "broadcaster.drills.schedules"),
    # 5: what the HTTP interfaces share
    ("broadcaster.http",),
    # 6: the interfaces
    ("broadcaster.api", "broadcaster.web", "broadcaster.drills.scheduler"),
    # 7: the entry points and the composition root
    ("broadcaster.serve", "broadcaster.demo", "broadcaster.cli", "broadcaster.__main__"),
)

PURE = LAYERS[1]
IMPURE_MODULES = frozenset(
    {"asyncio", "asyncpg", "aiohttp", "socket", "selectors", "subprocess", "urllib.request"}
)
PURE_EXCEPTIONS = {
    # a clock that sleeps is what the scheduler's tests replace: its asyncio.sleep is the point
    "broadcaster.drills.clock": {"asyncio"},
}
INTERFACES = ("broadcaster.api", "broadcaster.web", "broadcaster.drills.scheduler")
QUERIES = "broadcaster.store.queries"
FORBIDDEN_PAIRS = (
    # (importer prefix, imported prefix, why)
    ("broadcaster.smpp.session", "broadcaster.smpp.pool", "the session talks to its owner"),
    ("broadcaster.mocksmsc", "broadcaster.cli", "the mock is a library; the CLI wraps it"),
)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(
    source: str, module: str, is_package: bool, modules: frozenset[str] = frozenset()
) -> Iterator[tuple[str, int]]:
    """Every module a source imports, by absolute name: `from x import y` is `x.y` when that is
    one of `modules`, else `x` (a name defined in x)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                yield (name if name in modules else base), node.lineno


def scan(root: Path) -> list[Import]:
    paths = sorted(root.rglob("*.py"))
    modules = frozenset(module_name(path, root) for path in paths)
    found: list[Import] = []
    for path in paths:
        module = module_name(path, root)
        source = path.read_text(encoding="utf-8")
        for imported, line in imports_of(source, module, path.name == "__init__.py", modules):
            found.append(Import(module, imported, line))
    return found


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    """The layer of the longest prefix naming the module (None: not a broadcaster module)."""
    best: tuple[int, int] | None = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if within(module, prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), level)
    return None if best is None else best[1]


def interface_of(module: str) -> str | None:
    return next((i for i in INTERFACES if within(module, i)), None)


def violations(found: list[Import]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"sql": [], "pure": [], "layers": [], "interfaces": [], "pairs": []}
    for imp in found:
        src, dst = imp.importer, imp.imported
        if within(dst, QUERIES) and not within(src, "broadcaster.store"):
            out["sql"].append(str(imp))
        if any(within(src, p) for p in PURE):
            top = dst.split(".")[0]
            allowed = PURE_EXCEPTIONS.get(src, set())
            if any(within(dst, m) for m in IMPURE_MODULES) and top not in allowed:
                out["pure"].append(str(imp))
        low, high = layer_of(src), layer_of(dst)
        if low is not None and high is not None and high > low:
            out["layers"].append(f"{imp} (layer {low} imports layer {high})")
        mine, theirs = interface_of(src), interface_of(dst)
        if mine and theirs and mine != theirs:
            out["interfaces"].append(str(imp))
        for importer, imported, why in FORBIDDEN_PAIRS:
            if within(src, importer) and within(dst, imported):
                out["pairs"].append(f"{imp}: {why}")
    return out


@pytest.fixture(scope="module")
def package_violations() -> dict[str, list[str]]:
    return violations(scan(PACKAGE))


def test_every_module_has_a_layer() -> None:
    modules = {module_name(p, PACKAGE) for p in PACKAGE.rglob("*.py")}
    assert modules, "no module found"
    assert [m for m in sorted(modules) if layer_of(m) is None] == []


@pytest.mark.parametrize("rule", ["sql", "pure", "layers", "interfaces", "pairs"])
def test_the_package_keeps_its_contracts(
    package_violations: dict[str, list[str]], rule: str
) -> None:
    assert package_violations[rule] == []


# -- each rule catches what it is for (a tree of fake modules) --------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    root = tmp_path / "broadcaster"
    for name, source in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(source, encoding="utf-8")
    return scan(root)


@pytest.mark.parametrize(
    ("files", "rule"),
    [
        ({"api/handler.py": "from broadcaster.store.queries import queries\n"}, "sql"),
        (
            {
                "store/queries.py": "",
                "engine/run.py": "def f():\n    from broadcaster.store import queries\n",
            },
            "sql",
        ),
        ({"smpp/codec.py": "import asyncio\n"}, "pure"),
        ({"planning.py": "import asyncpg\n"}, "pure"),
        ({"store/x.py": "from broadcaster.commands import broadcasts\n"}, "layers"),
        ({"domain/states.py": "from ..engine import runner\n"}, "layers"),
        ({"web/page.py": "from broadcaster.api import broadcasts\n"}, "interfaces"),
        ({"api/x.py": "from broadcaster.web.gateway import invoke\n"}, "interfaces"),
        ({"smpp/session.py": "from broadcaster.smpp.pool import SmppPool\n"}, "pairs"),
    ],
)
def test_a_violation_is_caught(tmp_path: Path, files: dict[str, str], rule: str) -> None:
    assert violations(_tree(tmp_path, files))[rule]


def test_allowed_imports_pass(tmp_path: Path) -> None:
    found = _tree(
        tmp_path,
        {
            "store/x.py": "from broadcaster.store.queries import queries\n",
            "commands/y.py": "from broadcaster.store import broadcasts\nimport asyncio\n",
            "web/z.py": "from broadcaster.http.context import SERVICES\n",
        },
    )
    assert all(v == [] for v in violations(found).values())
