"""`cells import|synth`, `locations synth|ingest` and a polygon preview, as a script drives
them: JSON out, rejects in their files, exit code 2 when a line was refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from fixtures_cli import Cli

from broadcaster.importer import seed_synthetic

CELLS = """cell_id,technology,lat,lon,azimuth,beam,range_m,coverage
P1,4G,48.8566,2.3522,0,360,800,
P2,4G,48.86,2.34,,,,"POLYGON((2.335 48.855, 2.345 48.855, 2.345 48.865, 2.335 48.855))"
BAD,6G,48.86,2.34,0,360,800,
SWAP,4G,2.3522,48.8566,0,360,800,
"""


@pytest.fixture
def seeded(db_dsn: str) -> str:
    async def seed() -> None:
        conn = await asyncpg.connect(db_dsn)
        await seed_synthetic(conn, 3000, seed=5)
        await conn.close()

    asyncio.run(seed())
    return db_dsn


PREVIEW = (
    "preview",
    "--area",
    "circle:48.8566,2.3522,0.5",
    "--template",
    "outage",
    "--mode",
    "present",
    "--freshness-hours",
    "1",
    "--visitor-language",
    "DE=es",
)


def test_cells_locations_and_a_polygon_preview(cli: Cli, seeded: str, tmp_path: Path) -> None:
    cells = tmp_path / "cells.csv"
    cells.write_text(CELLS, encoding="utf-8")
    imported = cli("cells", "import", str(cells), code=2)
    assert (imported["imported"], imported["rejected"]) == (2, 2)
    rejects = Path(imported["reject_file"]).read_text(encoding="utf-8")
    assert "technology '6G'" in rejects and "swapped" in rejects
    assert cli("cells", "synth", "--sites", "300")["cells"] >= 900
    updates = tmp_path / "updates.csv"
    written = cli("locations", "synth", str(updates), "--share", "0.5", "--visitors", "50")
    assert written["lines"] >= 1000
    seen = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    with updates.open("a", encoding="utf-8") as f:
        f.write(f"4915100000001,P1,{seen}\n33612345678,NOPE,{seen}\nbroken line\n")
    ingested = cli("locations", "ingest", str(updates), code=2)
    assert ingested["rejected"] == 2
    assert ingested["written"] == written["lines"] + 1
    preview = cli(*PREVIEW)
    presence = preview["presence"]
    assert presence["mode"] == "present" and presence["cells"] >= 1
    assert {"country": "DE", "language": "es", "numbers": 1} in presence["visitors_by_country"]
    assert ingested["pending"] == ingested["written"]
    # Compacted into the last-seen table: the same preview (one hour is a wide margin against
    # numbers ageing out of the window meanwhile: they were seen at least 5 minutes ago).
    compacted = cli("locations", "compact")
    assert compacted["moved"] == ingested["written"]
    assert compacted["visitors"] >= 1
    assert cli("locations", "compact")["moved"] == 0
    again = cli(*PREVIEW)
    assert again["presence"] == presence and again["recipients"] == preview["recipients"]
    bad = cli("preview", "--area", "circle:48.85,2.35,0", "--template", "outage", code=2)
    assert "radius" in bad  # the error, on stderr
