"""CAP 1.2 parsing: the samples map onto broadcast requests; bombs and bad alerts are refused."""

from __future__ import annotations

import gc
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broadcaster import cap
from broadcaster.domain.requests import MAX_EXPIRY

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "cap"
NOW = datetime(2024, 6, 2, 12, 0, tzinfo=UTC)
LANGUAGES = ("fr", "en", "es", "de", "ar")


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def alert(
    *,
    status: str = "Actual",
    msg_type: str = "Alert",
    scope: str = "Public",
    infos: str | None = None,
    references: str = "",
    identifier: str = "ID-1",
) -> bytes:
    if infos is None:
        infos = info()
    refs = f"<references>{references}</references>" if references else ""
    return f"""<?xml version="1.0"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>s@example.org</sender>
  <sent>2024-06-02T14:30:00+02:00</sent><status>{status}</status><msgType>{msg_type}</msgType>
  <scope>{scope}</scope>{refs}{infos}
</alert>""".encode()


DEP = "<area><areaDesc>Zone</areaDesc><geocode><valueName>DEPARTEMENT</valueName><value>{}</value></geocode></area>"  # noqa: E501


def info(
    *,
    language: str = "fr-FR",
    instruction: str | None = "Appelez le 01 99 00 75 00.",
    areas: str = "<area><areaDesc>Paris</areaDesc><geocode><valueName>DEPARTEMENT</valueName>"
    "<value>75</value></geocode></area>",
    expires: str | None = None,
    extra: str = "",
) -> str:
    parts = [
        f"<language>{language}</language>",
        "<category>Infra</category><event>E</event><urgency>Immediate</urgency>",
        "<severity>Severe</severity><certainty>Observed</certainty>",
    ]
    if expires:
        parts.append(f"<expires>{expires}</expires>")
    parts.append(extra)
    if instruction is not None:
        parts.append(f"<instruction>{instruction}</instruction>")
    parts.append(areas)
    return "<info>" + "".join(parts) + "</info>"


def test_actual_alert_sample_becomes_a_live_request_with_one_text_per_language() -> None:
    message = cap.parse(sample("alert_actual.xml"))
    assert (message.status, message.msg_type, message.kind, message.template) == (
        "Actual",
        "Alert",
        "live",
        "cap",
    )
    assert message.sends
    assert message.areas == ("dep:75",)
    request, warnings = cap.to_request(message, languages=LANGUAGES, created_by="x", now=NOW)
    assert request.kind == "live"
    assert request.template == "cap"
    assert list(request.areas) == ["dep:75"]
    assert list(request.variables) == ["instruction.fr", "instruction.en"]
    assert request.variables["instruction.fr"].startswith("Les numéros 15, 17, 18 et 112")
    assert request.variables["instruction.en"].startswith("Emergency numbers")
    assert request.allow_language_fallback  # the alert's sender chose its languages
    # 2099 is far away: the expiry is clamped, and the clamp is reported.
    assert request.expires_in == MAX_EXPIRY
    assert any("more than 7 days" in w for w in warnings)


def test_exercise_goes_to_drills_with_the_exercise_template() -> None:
    message = cap.parse(sample("exercise.xml"))
    assert message.kind == "drill"
    assert message.template == "cap_exercise"
    assert message.areas == ("commune:75056",)
    request, _ = cap.to_request(message, languages=("fr", "en"), created_by="x", now=NOW)
    assert request.kind == "drill"


def test_update_and_cancel_carry_their_references() -> None:
    update = cap.parse(sample("update.xml"))
    assert update.msg_type == "Update"
    assert update.references == (
        cap.CapReference(
            "prefecture75@interieur.gouv.fr", "FR-75-2024-0001", "2024-06-02T14:30:00+02:00"
        ),
    )
    assert update.areas == ()  # keeps the areas of what it follows
    cancel = cap.parse(sample("cancel.xml"))
    assert cancel.msg_type == "Cancel"
    assert cancel.infos == ()
    assert cancel.references[0].identifier == "FR-75-2024-0001"


def test_test_status_is_validated_but_never_sent() -> None:
    message = cap.parse(sample("test_status.xml"))
    assert message.status == "Test"
    assert not message.sends


@pytest.mark.parametrize("name", ["bomb.xml", "xxe.xml"])
def test_entity_tricks_are_refused_before_expansion(name: str) -> None:
    with pytest.raises(cap.CapError) as caught:
        cap.parse(sample(name))
    assert caught.value.status == 400
    assert caught.value.code == "xml_refused"
    assert "DTD" in str(caught.value)


def test_a_plain_doctype_is_refused_too() -> None:
    raw = b'<?xml version="1.0"?><!DOCTYPE alert><alert/>'
    with pytest.raises(cap.CapError, match="DTD"):
        cap.parse(raw)


def test_malformed_xml_says_where() -> None:
    with pytest.raises(cap.CapError, match=r"not well-formed XML: .*line") as caught:
        cap.parse(sample("malformed.xml"))
    assert caught.value.status == 400


def _refusal(raw: bytes) -> str:
    """What parsing `raw` said, with the exception gone (nothing of it left reachable)."""
    try:
        cap.parse(raw)
    except cap.CapError as exc:
        return str(exc)
    raise AssertionError("parsed")


@pytest.mark.parametrize(
    "tail", [b"<", b"</wrong>", b'<!DOCTYPE x [<!ENTITY e "e">]>'], ids=["cut", "mismatch", "dtd"]
)
def test_a_refused_body_leaves_nothing_for_the_cyclic_collector(tail: bytes) -> None:
    # The parser's cycle with its handlers kept every element read before the error (4,000
    # objects here) until a full collection: hundreds of MB in `serve` under malformed bodies.
    body = f'<alert xmlns="{cap.NS}">'.encode() + b"<info><event>x</event></info>" * 2000 + tail
    gc.collect()
    assert "XML" in _refusal(body)
    assert gc.collect() < 200


def test_a_polygon_area_becomes_a_polygon_target() -> None:
    message = cap.parse(sample("polygon_only.xml"))
    assert message.areas == ("polygon:48.85,2.33 48.87,2.33 48.87,2.36 48.85,2.36 48.85,2.33",)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("<polygon>48.85,2.33 48.87,2.33 48.87,2.36 48.85,2.36</polygon>", "not closed"),
        ("<polygon>48.85,2.33 48.87,2.36 48.87,2.33 48.85,2.36 48.85,2.33</polygon>", "crosses"),
        ("<polygon>148.85,2.33 148.87,2.33 148.87,2.36 148.85,2.33</polygon>", "swapped"),
        ("<circle>48.85,2.35 0</circle>", "above 0"),
        ("<circle>48.85,2.35 900</circle>", "at most 500 km"),
        ("<circle>48.85 2.35</circle>", "LAT,LON,RADIUS_KM"),
    ],
)
def test_bad_cap_shapes_are_refused(shape: str, message: str) -> None:
    areas = f"<area><areaDesc>Zone</areaDesc>{shape}</area>"
    with pytest.raises(cap.CapError, match=message) as caught:
        cap.parse(alert(infos=info(areas=areas)))
    assert caught.value.status == 422


def test_a_circle_area_and_its_geocodes() -> None:
    areas = (
        "<area><areaDesc>Zone</areaDesc><circle>48.85,2.35 5</circle>"
        "<geocode><valueName>DEPARTEMENT</valueName><value>75</value></geocode></area>"
    )
    message = cap.parse(alert(infos=info(areas=areas)))
    assert message.areas == ("circle:48.85,2.35,5",)
    assert any("geocode(s) ignored" in w for w in message.warnings)


def test_wrong_namespace_names_the_expected_one() -> None:
    raw = sample("alert_actual.xml").replace(b"cap:1.2", b"cap:1.1")
    with pytest.raises(cap.CapError, match=r"CAP 1\.2"):
        cap.parse(raw)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (alert(status="Real"), "<status> 'Real' is not one of"),
        (alert(msg_type="Ack"), "msgType Ack carries nothing"),
        (alert(scope="Private"), "scope Private is not for the public"),
        (alert(msg_type="Update"), "needs <references>"),
        (alert(msg_type="Update", references="a,b"), "not sender,identifier,sent"),
        (alert(infos=""), "needs an <info>"),
        (alert(infos=info(areas="")), "has no <area>"),
        (alert(infos=info(instruction=None)), "has no text to send"),
        (alert(infos=info(instruction="x" * 600)), "limit is 500"),
        (alert(infos=info(language="français")), "RFC 3066"),
        (alert(identifier="has space"), "without spaces"),
        (
            alert(
                infos=info(
                    areas="<area><areaDesc>X</areaDesc><geocode><valueName>DEPARTEMENT"
                    "</valueName><value>999</value></geocode></area>"
                )
            ),
            "DEPARTEMENT '999' is not a valid code",
        ),
        (alert(infos=info(expires="tomorrow")), "is not a CAP date-time"),
        (b"", "empty"),
    ],
)
def test_unusable_alerts_say_what_to_fix(raw: bytes, fragment: str) -> None:
    with pytest.raises(cap.CapError, match=re.escape(fragment)):
        cap.parse(raw)


def test_geocode_names_map_to_area_kinds_and_unknown_ones_are_reported() -> None:
    areas = (
        "<area><areaDesc>A</areaDesc>"
        "<geocode><valueName>insee</valueName><value>92012</value></geocode>"
        "<geocode><valueName>REGION</valueName><value>11</value></geocode>"
        "<geocode><valueName>NUTS3</valueName><value>FR101</value></geocode>"
        "<geocode><valueName>Departement</valueName><value>2a</value></geocode>"
        "</area>"
    )
    message = cap.parse(alert(infos=info(areas=areas)))
    assert message.areas == ("commune:92012", "region:11", "dep:2A")
    assert any("NUTS3 ignored" in w for w in message.warnings)


def test_an_info_in_a_language_the_templates_lack_refuses_the_alert() -> None:
    """Dropping the Italian text while alerting its areas would send them French: refused."""
    infos = info(language="fr-FR", instruction="Bonjour") + info(
        language="it-IT", instruction="Ciao"
    )
    message = cap.parse(alert(infos=infos))
    with pytest.raises(cap.CapError, match=r"<info> #2 is in 'it', which the cap template"):
        cap.to_request(message, languages=LANGUAGES, created_by="x", now=NOW)


def test_infos_naming_different_areas_refuse_the_alert() -> None:
    """A Marseille text for 13 and a Paris text for 75: each would reach the other's areas."""
    marseille = info(instruction="MARSEILLE: évacuez le Vieux-Port", areas=DEP.format("13"))
    paris = info(instruction="PARIS: restez chez vous", areas=DEP.format("75"))
    message = cap.parse(alert(infos=marseille + paris))
    with pytest.raises(cap.CapError, match=r"<info> #2 \(fr\) targets dep:75 while <info> #1"):
        cap.to_request(message, languages=LANGUAGES, created_by="x", now=NOW)
    english = info(
        language="en", instruction="MARSEILLE: leave the Old Port", areas=DEP.format("75")
    )
    message = cap.parse(alert(infos=marseille + english))
    with pytest.raises(cap.CapError, match="send one alert per set of areas"):
        cap.to_request(message, languages=LANGUAGES, created_by="x", now=NOW)


def test_infos_in_several_languages_for_the_same_areas_are_honoured() -> None:
    fr = info(instruction="Appelez le 01 99 00 13 00.", areas=DEP.format("13"))
    en = info(language="en", instruction="Call 01 99 00 13 00.", areas=DEP.format("13"))
    bare = info(language="de", instruction="Rufen Sie 01 99 00 13 00 an.", areas="")
    message = cap.parse(alert(infos=fr + en + bare))
    request, _ = cap.to_request(message, languages=LANGUAGES, created_by="x", now=NOW)
    assert request.areas == ("dep:13",)
    assert request.variables == {
        "instruction.fr": "Appelez le 01 99 00 13 00.",
        "instruction.en": "Call 01 99 00 13 00.",
        "instruction.de": "Rufen Sie 01 99 00 13 00 an.",
    }


def test_main_text_is_french_else_the_first_language() -> None:
    infos = info(language="en-US", instruction="Hello") + info(language="de", instruction="Hallo")
    message = cap.parse(alert(infos=infos))
    request, _ = cap.to_request(message, languages=LANGUAGES, created_by="x", now=NOW)
    # The first language is the one planning gives the languages the alert lacks.
    assert list(request.variables.items()) == [
        ("instruction.en", "Hello"),
        ("instruction.de", "Hallo"),
    ]


def test_language_defaults_to_en_us_as_cap_says() -> None:
    infos = info(language="", instruction="Hello")
    message = cap.parse(alert(infos=infos.replace("<language></language>", "")))
    assert message.infos[0].language == "en"


def test_no_supported_language_is_refused() -> None:
    message = cap.parse(alert(infos=info(language="it-IT")))
    with pytest.raises(cap.CapError, match="no <info> is in a language we can send"):
        cap.to_request(message, languages=LANGUAGES, created_by="x", now=NOW)


def test_earliest_expiry_wins_and_the_past_is_refused() -> None:
    infos = info(expires="2024-06-02T15:00:00+02:00") + info(
        language="en", expires="2024-06-02T16:00:00+02:00"
    )
    message = cap.parse(alert(infos=infos))
    request, _ = cap.to_request(message, languages=LANGUAGES, created_by="x", now=NOW)
    assert request.expires_in == timedelta(hours=1)  # 15:00+02:00 is 13:00 UTC
    later = NOW + timedelta(hours=2)
    with pytest.raises(cap.CapError, match="expired"):
        cap.to_request(message, languages=LANGUAGES, created_by="x", now=later)


def test_no_expiry_means_the_default_with_a_warning() -> None:
    message = cap.parse(alert())
    request, warnings = cap.to_request(message, languages=LANGUAGES, created_by="x", now=NOW)
    assert request.expires_in == timedelta(hours=2)
    assert any("no <expires>" in w for w in warnings)


def test_whitespace_in_texts_is_collapsed() -> None:
    message = cap.parse(alert(infos=info(instruction="  Appelez\n\tle   15.  ")))
    assert message.infos[0].text == "Appelez le 15."


def test_the_body_hash_identifies_the_exact_content() -> None:
    one = cap.parse(alert())
    other = cap.parse(alert(infos=info(instruction="Autre texte.")))
    assert one.body_hash != other.body_hash
    assert cap.parse(alert()).body_hash == one.body_hash


def test_a_second_different_info_in_a_language_refuses_and_a_far_expiry_is_reported() -> None:
    infos = info(instruction="Premier", expires="2024-06-20T12:00:00Z") + info(instruction="Second")
    message = cap.parse(alert(infos=infos))
    with pytest.raises(cap.CapError, match="<info> #2 is a second 'fr' text, different"):
        cap.to_request(message, languages=LANGUAGES, created_by="x", now=NOW)
    same = info(instruction="Premier", expires="2024-06-20T12:00:00Z") + info(instruction="Premier")
    request, warnings = cap.to_request(
        cap.parse(alert(infos=same)), languages=LANGUAGES, created_by="x", now=NOW
    )
    assert request.variables == {"instruction.fr": "Premier"}
    assert request.expires_in == timedelta(days=7)
    assert warnings == [
        "<info> #2 repeats the 'fr' one (sent once)",
        "<expires> 2024-06-20T12:00:00+00:00 is more than 7 days away: the broadcast expires in "
        "7 days (stale guidance is dangerous)",
    ]


def test_an_area_without_shape_or_usable_geocode_says_the_fix() -> None:
    areas = (
        "<area><areaDesc>Zone</areaDesc>"
        "<geocode><valueName>NUTS3</valueName><value>FR101</value></geocode></area>"
    )
    with pytest.raises(cap.CapError) as caught:
        cap.parse(alert(infos=info(areas=areas)))
    assert str(caught.value) == (
        "<info> #1 <area> #1 (Zone) has no geocode we can target and no <polygon> or <circle>: "
        "add <geocode><valueName>DEPARTEMENT</valueName><value>75</value></geocode> "
        "(or INSEE for a commune, REGION for a region)"
    )
