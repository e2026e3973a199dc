"""Preview of a multi-area, multilingual target: every group rendered, UCS-2 flagged, the part
count equal to what the mock SMSC receives; bad input refused before anything is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.commands.context import Context
from broadcaster.commands.planning import make_plan, plan_as_json
from broadcaster.commands.sending import execute
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.domain.variables import VariableSpec
from broadcaster.errors import InputError, TemplateError, UnknownAreaError
from broadcaster.importer import import_csv
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import Settings, SmscConfig
from broadcaster.smpp.pool import contracted_capacity
from broadcaster.store.areas import set_area_variable
from broadcaster.store.database import create_pool

# Twenty départements across six regions; three languages; one prefecture typed with an en
# dash (outside GSM 03.38), so that the French and English texts of département 59 go UCS-2.
TESTER = Caller(name="test", role="admin", interface="cli")
PREFECTURE = {"prefecture": VariableSpec("prefecture")}
DEPS = [
    "01", "02", "06", "13", "14", "21", "2A", "31", "33", "34",
    "35", "44", "59", "67", "69", "75", "76", "92", "971", "974",
]  # fmt: skip
LANGS = ("fr", "en", "ar")
AREAS = [f"dep:{d}" for d in DEPS]


@pytest.fixture
async def base(db_dsn: str, db_conn: asyncpg.Connection, tmp_path: Path) -> None:
    lines = ["msisdn,departement,lang,test_group"]
    n = 0
    for dep in DEPS:
        for lang in LANGS:
            for _ in range(4):
                n += 1
                lines.append(f"3361{n:07d},{dep},{lang},{int(n % 9 == 0)}")
    source = tmp_path / "subscribers.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = await import_csv(Settings(database_url=db_dsn), source, None)
    assert result.imported == 240
    change = await set_area_variable(
        db_conn, "59", "prefecture", "Lille – Nord", caller=TESTER, variables=PREFECTURE
    )
    assert change.warnings  # told at once that it will cost UCS-2


async def test_preview_renders_every_group_and_flags_ucs2(
    db_dsn: str, db_conn: asyncpg.Connection, base: None
) -> None:
    smscs = (SmscConfig(name="a", tps=100, binds=2), SmscConfig(name="b", tps=50, binds=1))
    settings = Settings(database_url=db_dsn, smscs=smscs)
    plan = await make_plan(
        db_conn, settings, BroadcastRequest(areas=AREAS, template="outage", variables={})
    )
    preview = plan_as_json(plan, contracted_capacity(settings.smscs))
    groups = {(g["departement"], g["language"]): g for g in preview["groups"]}
    assert set(groups) == {(d, lang) for d in DEPS for lang in LANGS}
    variables = {
        r["departement"]: r["value"]
        for r in await db_conn.fetch(
            "SELECT departement, value FROM area_variables WHERE name = 'fallback_number'"
        )
    }
    for (dep, lang), g in groups.items():
        assert g["recipients"] == 4
        assert variables[dep] in g["text"], "each département gets its own fallback number"
        ucs2 = lang == "ar" or dep == "59"
        assert g["encoding"] == ("ucs2" if ucs2 else "gsm7"), (dep, lang)
        assert g["parts_per_message"] >= 1
    assert preview["recipients"] == 240
    assert preview["parts"] == sum(4 * g["parts_per_message"] for g in groups.values())
    # The ETA is the parts at the configured pool's contracted rate (100*2 + 50*1 parts/s).
    assert preview["eta_seconds"] == pytest.approx(preview["parts"] / 250)
    flagged = [w for w in preview["warnings"] if "UCS-2" in w]
    assert {w.split(":")[0] for w in flagged} == {"59/fr", "59/en"}
    assert all("'–'" in w and "--gsm-safe" in w for w in flagged)
    # --gsm-safe transliterates the dash and takes 59 back to GSM 03.38.
    safe = await make_plan(
        db_conn,
        settings,
        BroadcastRequest(areas=AREAS, template="outage", variables={}, gsm_safe=True),
    )
    assert all(g.message.encoding == "gsm7" for g in safe.groups if g.language != "ar")
    assert safe.parts <= plan.parts


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=2, max_size=6)
    yield pool
    await pool.close()


async def test_part_count_equals_what_the_mock_smsc_receives(
    db_dsn: str, db: asyncpg.Pool, base: None, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=3))
    settings = Settings(database_url=db_dsn, smscs=(smsc,), chunk_size=50, max_parts=6)
    request = BroadcastRequest(
        areas=AREAS,
        template="outage",
        variables={"details": "Rendez-vous en mairie. " * 5},
        allow_language_fallback=True,  # the French details go into every language's text
    )
    plan, report = await execute(Context(db=db, settings=settings), TESTER, (smsc,), request)
    assert report["state"] == "completed"
    assert any(g.message.part_count > 1 for g in plan.groups), "some texts are concatenated"
    assert mock.record.parts_received == plan.parts == report["parts"]
    assert mock.record.incomplete() == 0
    received = mock.record.messages
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT msisdn, departement, lang FROM subscribers")
    for r in rows:
        text = plan.groups[plan.language_of[(r["departement"], r["lang"])]].text
        assert received[str(r["msisdn"])] == [text]


INJECTIONS = [
    "{{ 7*7 }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% for x in range(99999999) %}x{% endfor %}",
    "{{ config }}{{ self._TemplateReference__context }}",
]


@pytest.mark.parametrize("payload", INJECTIONS)
async def test_injection_payload_in_a_value_comes_out_as_inert_text(
    db_dsn: str, db_conn: asyncpg.Connection, base: None, payload: str
) -> None:
    settings = Settings(database_url=db_dsn, max_parts=10)
    plan = await make_plan(
        db_conn,
        settings,
        BroadcastRequest(areas=["dep:75"], template="outage", variables={"details": payload}),
    )
    for group in plan.groups:
        assert payload in group.text
        assert "49" not in group.text
        assert "class" not in group.text.replace(payload, "")


async def test_injection_payload_in_an_area_variable_is_inert(
    db_dsn: str, db_conn: asyncpg.Connection, base: None
) -> None:
    await set_area_variable(
        db_conn, "75", "prefecture", "{{ 6*7 }}", caller=TESTER, variables=PREFECTURE
    )
    plan = await make_plan(
        db_conn,
        Settings(database_url=db_dsn),
        BroadcastRequest(areas=["dep:75"], template="outage", variables={}),
    )
    assert all("{{ 6*7 }}" in g.text and "42" not in g.text for g in plan.groups)


BAD_INPUT = [
    ({"areas": ["dep:99"]}, UnknownAreaError, r"unknown département '99'; run `broadcaster areas`"),
    ({"areas": ["region:42"]}, UnknownAreaError, r"unknown region '42'"),
    ({"areas": ["cell:C75999"]}, UnknownAreaError, r"no subscriber is in cell 'C75999'"),
    ({"areas": ["city:Paris"]}, UnknownAreaError, r"not understood; use region:CODE"),
    (
        {"template": "update"},
        TemplateError,
        r"needs instruction: pass --var instruction=\.\.\. or set it per area",
    ),
    ({"template": "nope"}, TemplateError, r"unknown template 'nope'; known templates:"),
    (
        {"variables": {"secret": "x"}},
        TemplateError,
        r"has no variable 'secret'; it takes details, fallback_number, prefecture",
    ),
    (
        {"variables": {"details": "Consignes détaillées en mairie. " * 12}},
        InputError,
        r"needs \d+ parts .* the limit is 3: shorten the variables, use --gsm-safe, or raise "
        r"--max-parts",
    ),
    (
        {"variables": {"details": "x" * 200}, "max_parts": 1},
        InputError,
        r"the limit is 1",
    ),
    ({"max_parts": 0}, InputError, r"at least 1"),
    (
        {"areas": ["dep:75"], "exclude": ["dep:75"]},
        InputError,
        r"the exclusions remove every area of the target",
    ),
]


@pytest.mark.parametrize(("change", "error", "message"), BAD_INPUT)
async def test_bad_input_fails_before_anything_is_stored(
    db_dsn: str,
    db_conn: asyncpg.Connection,
    base: None,
    change: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    fields: dict[str, object] = {"areas": AREAS, "template": "outage", "variables": {}}
    fields.update(change)
    request = BroadcastRequest(**fields)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        await make_plan(db_conn, Settings(database_url=db_dsn), request)
    assert await db_conn.fetchval("SELECT count(*) FROM broadcasts") == 0
    assert await db_conn.fetchval("SELECT count(*) FROM broadcast_chunks") == 0
