"""The data commands as an operator drives them: `subscribers import|synth`, `areas`,
`areas vars`, `areas set-var` and `preview`, their `--json` output parsed, their refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_cli import Cli

from broadcaster.cli import main


def test_import_reports_rows_modes_and_rejects(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "subs.csv"
    source.write_text(
        "msisdn,departement,commune,cell_id,lang,test_group\n"
        "33612345678,75,75056,C1,fr,0\n"
        "33612345679,13,13055,C2,en,1\n"
        "0612345678,75,,,fr,0\n",
        encoding="utf-8",
    )
    out = cli("subscribers", "import", str(source), code=2)
    assert out["imported"] == 2
    assert out["rejected"] == 1
    assert out["mode"] == "bulk"
    assert out["inserted"] == 2
    reject_file = Path(out["reject_file"])
    # 0612345678 is the subscriber of line 2, written as a national number.
    assert reject_file.read_text(encoding="utf-8") == (
        'line,reason,row\n4,msisdn 33612345678 appears earlier in the file,"0612345678,75,,,fr,0"\n'
    )
    source.write_text(
        "msisdn,departement,lang\n33612345678,75,es\n33612345680,92,fr\n", encoding="utf-8"
    )
    out = cli("subscribers", "import", str(source), "--reject-file", str(tmp_path / "r.csv"))
    assert {k: out[k] for k in ("rows", "inserted", "updated", "unchanged", "mode")} == {
        "rows": 2,
        "inserted": 1,
        "updated": 1,
        "unchanged": 0,
        "mode": "upsert",
    }
    assert out["reject_file"] is None
    assert out["rows_per_s"] > 0


def _as_a_person(cli: Cli, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `broadcaster ARGS` without --json: the exit code, and stdout + stderr as shown."""
    capsys.readouterr()
    code = main(["--database-url", cli.dsn, "--log-level", "warning", *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_import_says_which_rows_it_refused_and_why(
    cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18, items 9 and 14: a language that does not exist and numbers that are not (or
    not certainly) mobiles are refused by line, with the reason; the rest is imported."""
    source = tmp_path / "subs.csv"
    source.write_text(
        "msisdn,departement,lang\n"
        "612345678,75,fr\n"
        "33612345679,75,xx\n"
        "+330612345682,75,en\n"
        "687791234,75,fr\n"
        "0112345678,75,fr\n",
        encoding="utf-8",
    )
    code, shown = _as_a_person(cli, capsys, "subscribers", "import", str(source))
    assert code == 2
    assert "imported 2 subscribers (2 new, 0 changed, 0 unchanged; bulk load)" in shown
    rejects = tmp_path / "subs.csv.rejects.csv"
    assert f"rejected 3 (see {rejects})" in shown
    assert f"error: 3 row(s) rejected; reasons with line numbers in {rejects}" in shown
    assert rejects.read_text(encoding="utf-8").splitlines() == [
        "line,reason,row",
        "3,\"language 'xx' is not a two-letter ISO 639-1 language code (fr, en, ar, ...)\","
        '"33612345679,75,xx"',
        "5,\"msisdn '687791234' is ambiguous: +687791234 or +33687791234; write it with + and "
        'its country code, or as a national number with its leading 0","687791234,75,fr"',
        "6,\"msisdn '0112345678' reads as +33112345678, a fixed-line number, not a mobile one\","
        '"0112345678,75,fr"',
    ]
    assert next(a for a in cli("areas")["areas"] if a["code"] == "75")["subscribers"] == 2


def test_import_of_a_file_that_is_not_utf8_imports_nothing_and_says_so(
    cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18, item 16: all or nothing, and a byte order mark is no part of the header."""
    source = tmp_path / "subs.csv"
    source.write_bytes(b"\xef\xbb\xbfmsisdn,departement,lang\r\n33612345678,75,fr\r\n")
    code, shown = _as_a_person(cli, capsys, "subscribers", "import", str(source))
    assert (code, "rejected 0") == (0, shown.strip()[-len("rejected 0") :])
    source.write_bytes(
        b"msisdn,departement,lang\n33612345679,75,fr\n33612345680,75,\xe9s\n33612345681,92,fr\n"
    )
    code, shown = _as_a_person(cli, capsys, "subscribers", "import", str(source))
    assert code == 2
    assert shown == (
        f"error: {source} is not UTF-8 text: line 3 has the byte(s) e9; nothing was imported. "
        "Save it as UTF-8 (CSV UTF-8 in a spreadsheet) and import it again\n"
    )
    assert sum(a["subscribers"] for a in cli("areas")["areas"]) == 1


def test_import_with_a_bad_header_says_nothing_was_imported_and_what_a_header_names(
    cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "subs.csv"
    source.write_text("msisdn,departement,language\n33612345678,75,fr\n", encoding="utf-8")
    code, shown = _as_a_person(cli, capsys, "subscribers", "import", str(source))
    assert code == 2
    assert shown == (
        f"error: {source}: header lacks column(s) lang (a header names msisdn, departement, "
        "lang, optionally commune, cell_id, test_group): no row was read; nothing was imported\n"
    )
    assert sum(a["subscribers"] for a in cli("areas")["areas"]) == 0


def test_synth_then_areas_at_every_level(cli: Cli) -> None:
    out = cli("subscribers", "synth", "4000", "--seed", "3")
    assert (out["added"], out["mode"], out["rows"]) == (4000, "bulk", 4000)
    deps = cli("areas")["areas"]
    assert len(deps) == 101
    assert sum(a["subscribers"] for a in deps) == 4000
    assert {"code", "name", "region_code", "region_name", "subscribers", "test_group"} <= set(
        deps[0]
    )
    assert all(a["test_group"] >= 1 for a in deps if a["subscribers"])
    regions = cli("areas", "--regions")["regions"]
    assert len(regions) == 18
    assert sum(r["subscribers"] for r in regions) == 4000
    assert sum(r["departements"] for r in regions) == 101
    inside = cli("areas", "--departement", "59")
    assert inside["departement"] == "59"
    paris = next(a for a in deps if a["code"] == "59")["subscribers"]
    assert sum(c["subscribers"] for c in inside["communes"]) == paris
    assert sum(c["subscribers"] for c in inside["cells"]) == paris
    assert all(c["code"].startswith("C59") for c in inside["cells"])
    err = cli("areas", "--departement", "99", code=2)
    assert "unknown département '99'" in err
    out = cli("subscribers", "synth", "100")
    assert (out["added"], out["mode"]) == (100, "upsert")
    assert sum(a["subscribers"] for a in cli("areas")["areas"]) == 4100


def test_set_var_validates_records_and_lists(cli: Cli, db_dsn: str) -> None:
    before = cli("areas", "vars", "75")["variables"]
    assert {v["name"] for v in before} >= {"fallback_number", "prefecture"}
    out = cli("areas", "set-var", "75", "fallback_number", "01 99 00 75 99", "--actor", "alice")
    assert out["changed"] is True
    assert out["old"] == "01 99 00 75 00"
    assert out["new"] == "01 99 00 75 99"
    assert isinstance(out["audit_id"], int)
    again = cli("areas", "set-var", "75", "fallback_number", "01 99 00 75 99")
    assert (again["changed"], again["audit_id"]) == (False, None)
    listed = {v["name"]: v["value"] for v in cli("areas", "vars", "75")["variables"]}
    assert listed["fallback_number"] == "01 99 00 75 99"
    assert len(cli("areas", "vars")["variables"]) > 300
    history = cli("areas", "vars", "75", "--history")["history"]
    assert history[0] | {"at": None} == {
        "id": out["audit_id"],
        "at": None,
        "actor": "alice",
        "departement": "75",
        "name": "fallback_number",
        "old": "01 99 00 75 00",
        "new": "01 99 00 75 99",
    }
    warned = cli("areas", "set-var", "13", "prefecture", "Marseille – Bouches-du-Rhône")
    assert any("UCS-2" in w for w in warned["warnings"])
    refusals = [
        (("99", "prefecture", "X"), "unknown département '99'"),
        (("75", "fallback_number", "call 17"), "not a phone number: use 10 digits"),
        (("75", "falback_number", "01 99 00 75 00"), "no template reads a variable"),
        (("75", "prefecture", "Paris\u0007"), "control or invisible characters (U+0007)"),
        (("75", "prefecture", "P" * 161), "the limit is 160"),
        (("75", "Prefecture", "Paris"), "is invalid"),
    ]
    for args, message in refusals:
        assert message in cli("areas", "set-var", *args, code=2)
    assert len(cli("areas", "vars", "--history")["history"]) == 2


def test_preview_json_with_cells_exclusions_and_the_pool_eta(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("subscribers", "synth", "20000", "--seed", "2")
    cells = tmp_path / "cells.txt"
    cells.write_text("# the cells around the incident\nC13001, C13002\nC13003\n", encoding="utf-8")
    monkeypatch.setenv("BROADCASTER_SMSC_URL", "smpp://bc:pw@127.0.0.1:2775?binds=4&tps=50")
    preview = cli(
        "preview",
        "--area",
        "region:11",
        "--exclude",
        "dep:92",
        "--exclude",
        "commune:75001",
        "--cells-from",
        str(cells),
        "--template",
        "outage",
        "--var",
        "details=Restez chez vous.",
    )
    deps = {g["departement"] for g in preview["groups"]}
    assert deps == {"13", "75", "77", "78", "91", "93", "94", "95"}
    assert preview["recipients"] == sum(g["recipients"] for g in preview["groups"])
    assert preview["eta_seconds"] == pytest.approx(preview["parts"] / 200)
    assert all("Restez chez vous." in g["text"] for g in preview["groups"] if g["language"] == "fr")
    err = cli(
        "preview",
        "--area",
        "dep:75",
        "--template",
        "outage",
        "--var",
        "details=" + "Consignes en mairie. " * 8,
        "--max-parts",
        "1",
        code=2,
    )
    assert "the limit is 1: shorten the variables, use --gsm-safe, or raise --max-parts" in err
    assert "no subscriber is in cell 'nope'" in cli(
        "preview", "--area", "cell:nope", "--template", "outage", code=2
    )
