"""CAP 1.2 (OASIS Common Alerting Protocol) messages, parsed safely into broadcast requests (pure).

Parsing uses defusedxml with DTDs forbidden: an XML bomb (entity expansion), an external entity
or any `<!DOCTYPE>` is refused before anything is expanded or fetched.

How a CAP message maps onto a broadcast:
- `status` Actual: a live broadcast to the public (template `cap`); Exercise: a drill, to the
  test group only, with the exercise marker (template `cap_exercise`); Test, Draft and System:
  validated and previewed, never sent.
- `msgType` Alert creates a broadcast; Update creates one that follows the broadcast created by
  the newest message it `<references>` (which is stopped); Cancel cancels the referenced
  broadcasts and their follow-ups. Ack and Error are refused (nothing to broadcast).
- Each `<info>` is a (language, text, areas) unit, honoured exactly or the alert is refused:
  its `instruction` (else `description`, else `headline`) is the text sent to subscribers of
  that language; subscribers whose language the alert does not carry get the text of the
  French info (else the first one). An `<info>` in a language the templates do not have, two
  `<info>` in one language that differ, or `<info>` blocks naming different areas (one text per
  language for one set of areas is what a broadcast carries here) refuse the alert: dropping a
  text or sending it to another info's areas would send the wrong words to the wrong place.
  An `<info>` without `<area>` shares the areas of the others.
- `<area><geocode>` values become areas, by `valueName` (case-insensitive):
  INSEE / INSEE_COMMUNE / COMMUNE -> commune (5-character INSEE code),
  DEPARTEMENT / DEP / INSEE_DEPARTEMENT -> département (75, 2A, 971),
  REGION / INSEE_REGION -> region (INSEE region code).
  `<polygon>` (WGS84 `lat,lon` pairs, a closed ring) and `<circle>` (`lat,lon radius_km`)
  become `polygon:` and `circle:` targets, checked as every other way in checks them (closed,
  not crossing itself, coordinates in range, radius in (0, 500] km); they reach the numbers
  present in the cells they meet. An `<area>` that draws a shape is that shape: its geocodes are
  ignored (with a warning) rather than widening it to whole départements. An `<area>` with
  neither a shape nor one of these geocodes is refused. An Update without areas keeps the areas
  of the broadcast it follows.
- The earliest `<info><expires>` is the broadcast's hard expiry (default: 2 hours, at most 7
  days); an alert already expired is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import defusedxml
import defusedxml.ElementTree as SafeET

from broadcaster.domain.requests import DEFAULT_EXPIRY, MAX_EXPIRY, BroadcastRequest
from broadcaster.domain.shapes import parse_circle, parse_polygon
from broadcaster.errors import InputError

NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"
STATUSES: Final = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES: Final = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES: Final = ("Public", "Restricted", "Private")
URGENCY: Final = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITY: Final = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTY: Final = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
CATEGORIES: Final = (
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
)
GEOCODE_KINDS: Final = {
    "INSEE": "commune",
    "INSEE_COMMUNE": "commune",
    "COMMUNE": "commune",
    "DEPARTEMENT": "dep",
    "DEP": "dep",
    "INSEE_DEPARTEMENT": "dep",
    "REGION": "region",
    "INSEE_REGION": "region",
}
GEOCODE_SHAPES: Final = {
    "commune": re.compile(r"^(97[1-6]\d{2}|2[AB]\d{3}|\d{5})$"),
    "dep": re.compile(r"^(\d{2}|2[AB]|97[1-6])$"),
    "region": re.compile(r"^\d{2}$"),
}
CAP_TEMPLATE: Final = "cap"
CAP_EXERCISE_TEMPLATE: Final = "cap_exercise"
TEXT_VARIABLE: Final = "instruction"
IDENTIFIER: Final = re.compile(r"^[^\s,<&]{1,200}$")
SENT: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")
MAX_TEXT: Final = 500


class CapError(InputError):
    """The CAP message was refused; nothing was sent."""

    def __init__(self, message: str, *, status: int = 422, code: str = "invalid_cap") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class CapReference:
    sender: str
    identifier: str
    sent: str


@dataclass(frozen=True)
class CapInfo:
    language: str
    """Two-letter code (`fr-FR` -> `fr`)."""
    text: str
    event: str
    headline: str | None
    expires: datetime | None
    areas: tuple[str, ...]


@dataclass(frozen=True)
class CapMessage:
    identifier: str
    sender: str
    sent: str
    sent_at: datetime
    status: str
    msg_type: str
    scope: str
    references: tuple[CapReference, ...]
    infos: tuple[CapInfo, ...]
    body_hash: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def sends(self) -> bool:
        """Actual and Exercise messages are acted upon; Test, Draft and System never."""
        return self.status in ("Actual", "Exercise")

    @property
    def kind(self) -> str:
        """Exercise is a drill; Test, Draft and System are previewed as the live send they
        would be if Actual."""
        return "drill" if self.status == "Exercise" else "live"

    @property
    def template(self) -> str:
        return CAP_TEMPLATE if self.kind == "live" else CAP_EXERCISE_TEMPLATE

    @property
    def areas(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for info in self.infos for a in info.areas))

    @property
    def expires(self) -> datetime | None:
        times = [i.expires for i in self.infos if i.expires is not None]
        return min(times) if times else None


def parse(raw: bytes) -> CapMessage:
    """Parse and check a CAP 1.2 alert; CapError (400 malformed/refused, 422 unusable)."""
    root = _alert_element(raw)
    identifier = _required(root, "identifier")
    sender = _required(root, "sender")
    for name, value in (("identifier", identifier), ("sender", sender)):
        if not IDENTIFIER.match(value):
            raise CapError(f"<{name}> {value!r} must be 1-200 characters without spaces, , < &")
    sent = _required(root, "sent")
    sent_at = _datetime("sent", sent)
    status = _enum(root, "status", STATUSES)
    msg_type = _enum(root, "msgType", MSG_TYPES)
    scope = _enum(root, "scope", SCOPES)
    _check_purpose(status, msg_type, scope)
    references = _references(_text(root, "references"))
    if msg_type in ("Update", "Cancel") and not references:
        raise CapError(f"a {msg_type} needs <references> (sender,identifier,sent of the alert)")
    warnings: list[str] = []
    infos = tuple(_info(el, i, warnings) for i, el in enumerate(root.findall(f"{{{NS}}}info")))
    _check_content(msg_type, infos)
    return CapMessage(
        identifier=identifier,
        sender=sender,
        sent=sent,
        sent_at=sent_at,
        status=status,
        msg_type=msg_type,
        scope=scope,
        references=references,
        infos=infos,
        body_hash=hashlib.sha256(raw).hexdigest(),
        warnings=tuple(warnings),
    )


def _alert_element(raw: bytes) -> ET.Element:
    """The <alert> element of a body, parsed safely; CapError (400) for anything else."""
    if not raw.strip():
        raise CapError("the body is empty: send a CAP 1.2 <alert> document", status=400)
    try:
        root = _parse_safely(raw)
    except (defusedxml.DTDForbidden, defusedxml.EntitiesForbidden) as exc:
        raise CapError(
            f"XML refused: {type(exc).__name__}: DTDs and entity declarations are not accepted "
            "in CAP messages (they allow entity-expansion bombs and external fetches)",
            status=400,
            code="xml_refused",
        ) from None
    except (defusedxml.ExternalReferenceForbidden, defusedxml.NotSupportedError) as exc:
        raise CapError(
            f"XML refused: {type(exc).__name__}: external references are not accepted",
            status=400,
            code="xml_refused",
        ) from None
    except ET.ParseError as exc:
        raise CapError(
            f"the body is not well-formed XML: {exc}", status=400, code="malformed_xml"
        ) from None
    except (ValueError, UnicodeError) as exc:
        raise CapError(
            f"the body is not readable XML: {exc}", status=400, code="malformed_xml"
        ) from None
    if root.tag != f"{{{NS}}}alert":
        raise CapError(
            f"the root element is {_local(root.tag)!r} in namespace {_ns(root.tag)!r}: expected "
            f'<alert xmlns="{NS}"> (CAP 1.2)',
            status=400,
        )
    return root


def _parse_safely(raw: bytes) -> ET.Element:
    """`defusedxml.ElementTree.fromstring` (no DTD, entity or external reference), its parser
    taken apart whatever happens. That pure-Python parser hands expat its own bound methods: a
    reference cycle only `close()` breaks. A body that failed to parse left the cycle, and every
    element read before the error, to the cyclic collector (4,000 objects for a 2,000-element
    body; in a process that collects its older generations rarely, gc_policy.py, hundreds of
    MB under a stream of malformed bodies)."""
    parser = SafeET.DefusedXMLParser(
        target=ET.TreeBuilder(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(raw)
        root: ET.Element = parser.close()
        return root
    finally:
        for attribute in ("parser", "_parser", "target", "_target"):
            with contextlib.suppress(AttributeError):
                delattr(parser, attribute)


def _check_purpose(status: str, msg_type: str, scope: str) -> None:
    """Refuse what carries nothing to broadcast, and live alerts not for the public."""
    if msg_type in ("Ack", "Error"):
        raise CapError(
            f"msgType {msg_type} carries nothing to broadcast: send Alert, Update or Cancel"
        )
    if status == "Actual" and scope != "Public":
        raise CapError(
            f"scope {scope} is not for the public: only scope Public alerts are broadcast"
        )


def _check_content(msg_type: str, infos: Sequence[CapInfo]) -> None:
    """An Alert or Update needs a text; an Alert needs an area too."""
    if msg_type in ("Alert", "Update") and not infos:
        raise CapError(f"an {msg_type} needs an <info> with the text to send")
    if msg_type == "Alert" and not any(info.areas for info in infos):
        raise CapError(
            "the alert has no <area>: add <area><geocode> with a DEPARTEMENT, INSEE or REGION code"
        )


def to_request(
    message: CapMessage,
    *,
    languages: Sequence[str],
    created_by: str,
    now: datetime | None = None,
    default_language: str = "fr",
    parent_id: int | None = None,
) -> tuple[BroadcastRequest, list[str]]:
    """The broadcast an Alert or Update asks for, and warnings (ignored languages, ...).

    `languages` are those of the CAP template (the catalogue's `cap` or `cap_exercise`).
    """
    now = now or datetime.now(UTC)
    warnings: list[str] = []
    texts = _texts(message, languages, warnings)
    request = BroadcastRequest(
        areas=message.areas,
        template=message.template,
        variables=_variables(texts, default_language),
        kind=message.kind,
        expires_in=_expires_in(message.expires, now, warnings),
        created_by=created_by,
        parent_id=parent_id,
        allow_language_fallback=True,
    )
    return request, warnings


def _variables(texts: dict[str, str], default_language: str) -> dict[str, str]:
    """One `instruction.<lang>` per language the alert carries, the default language's first:
    planning gives a language without its own text that one, else the first, and the preview
    flags it. The alert's sender chose its languages, so that needs no operator's flag
    (the request allows the language fallback)."""
    ordered = sorted(texts, key=lambda lang: lang != default_language)
    return {f"{TEXT_VARIABLE}.{lang}": texts[lang] for lang in ordered}


def _texts(message: CapMessage, languages: Sequence[str], warnings: list[str]) -> dict[str, str]:
    """The text to send per language: every <info> honoured exactly, or CapError."""
    if not any(info.language in languages for info in message.infos):
        raise CapError(
            f"no <info> is in a language we can send ({', '.join(languages)}): "
            "set <language> to e.g. fr-FR"
        )
    _same_areas(message.infos)
    texts: dict[str, str] = {}
    for n, info in enumerate(message.infos, 1):
        if info.language not in languages:
            raise CapError(
                f"<info> #{n} is in {info.language!r}, which the {message.template} template "
                f"does not have ({', '.join(languages)}): its text would be lost while its "
                "areas are alerted; translate it into one of them or leave it out"
            )
        known = texts.get(info.language)
        if known is not None and known != info.text:
            raise CapError(
                f"<info> #{n} is a second {info.language!r} text, different from the first: "
                "one text per language is sent; send one alert per text"
            )
        if known is not None:
            warnings.append(f"<info> #{n} repeats the {info.language!r} one (sent once)")
        texts[info.language] = info.text
    return texts


def _same_areas(infos: Sequence[CapInfo]) -> None:
    """Every <info> that names areas names the same ones (a broadcast here sends one text per
    language to one set of areas)."""
    named = [(n, info) for n, info in enumerate(infos, 1) if info.areas]
    for n, info in named[1:]:
        first_n, first = named[0]
        if set(info.areas) != set(first.areas):
            raise CapError(
                f"<info> #{n} ({info.language}) targets {', '.join(info.areas)} while <info> "
                f"#{first_n} ({first.language}) targets {', '.join(first.areas)}: each text "
                "would reach the other's areas; send one alert per set of areas"
            )


def _expires_in(expires: datetime | None, now: datetime, warnings: list[str]) -> timedelta:
    """How long the broadcast may run: until the alert's <expires>, at most MAX_EXPIRY."""
    if expires is None:
        warnings.append(f"no <expires>: the broadcast expires in {DEFAULT_EXPIRY}")
        return DEFAULT_EXPIRY
    if expires <= now:
        raise CapError(f"the alert expired at {expires.isoformat()}: nothing to send")
    if expires - now > MAX_EXPIRY:
        warnings.append(
            f"<expires> {expires.isoformat()} is more than {MAX_EXPIRY.days} days away: "
            f"the broadcast expires in {MAX_EXPIRY.days} days (stale guidance is dangerous)"
        )
        return MAX_EXPIRY
    return expires - now


# -- helpers ---------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _ns(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _text(parent: ET.Element, name: str) -> str | None:
    el = parent.find(f"{{{NS}}}{name}")
    if el is None or el.text is None:
        return None
    text = " ".join(el.text.split())
    return text or None


def _required(parent: ET.Element, name: str, where: str = "<alert>") -> str:
    value = _text(parent, name)
    if value is None:
        raise CapError(f"{where} has no <{name}> (required by CAP 1.2)")
    return value


def _enum(parent: ET.Element, name: str, allowed: Sequence[str], where: str = "<alert>") -> str:
    value = _required(parent, name, where)
    if value not in allowed:
        raise CapError(f"{where} <{name}> {value!r} is not one of {', '.join(allowed)}")
    return value


def _datetime(name: str, value: str) -> datetime:
    if not SENT.match(value):
        raise CapError(f"<{name}> {value!r} is not a CAP date-time like 2024-06-02T14:30:00+02:00")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CapError(f"<{name}> {value!r} is not a valid date-time") from None


def _references(text: str | None) -> tuple[CapReference, ...]:
    if text is None:
        return ()
    out = []
    for triple in text.split():
        parts = triple.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapError(
                f"<references> entry {triple!r} is not sender,identifier,sent (space-separated "
                "triples)"
            )
        out.append(CapReference(*parts))
    return tuple(out)


def _info(el: ET.Element, index: int, warnings: list[str]) -> CapInfo:
    where = f"<info> #{index + 1}"
    language = _language(el, where)
    _check_categories(el, where)
    event = _required(el, "event", where)
    _enum(el, "urgency", URGENCY, where)
    _enum(el, "severity", SEVERITY, where)
    _enum(el, "certainty", CERTAINTY, where)
    headline = _text(el, "headline")
    text = _info_text(el, where, headline)
    expires_text = _text(el, "expires")
    expires = _datetime("expires", expires_text) if expires_text is not None else None
    areas: list[str] = []
    for n, area in enumerate(el.findall(f"{{{NS}}}area")):
        areas.extend(_area(area, f"{where} <area> #{n + 1}", warnings))
    return CapInfo(language, text, event, headline, expires, tuple(areas))


def _language(el: ET.Element, where: str) -> str:
    """The two-letter language of an <info> (`fr-FR` -> `fr`; CAP's default is en-US)."""
    language_tag = _text(el, "language") or "en-US"
    language = language_tag.split("-")[0].lower()
    if not re.match(r"^[a-z]{2}$", language):
        raise CapError(f"{where} <language> {language_tag!r} is not an RFC 3066 tag like fr-FR")
    return language


def _check_categories(el: ET.Element, where: str) -> None:
    categories = [" ".join((c.text or "").split()) for c in el.findall(f"{{{NS}}}category")]
    if not categories:
        raise CapError(f"{where} has no <category> (required by CAP 1.2)")
    for category in categories:
        if category not in CATEGORIES:
            raise CapError(f"{where} <category> {category!r} is not one of {', '.join(CATEGORIES)}")


def _info_text(el: ET.Element, where: str, headline: str | None) -> str:
    """The text to send: the <instruction>, else the <description>, else the headline."""
    text = _text(el, "instruction") or _text(el, "description") or headline
    if text is None:
        raise CapError(f"{where} has no text to send: give it an <instruction>")
    if len(text) > MAX_TEXT:
        raise CapError(
            f"{where} text is {len(text)} characters; the limit is {MAX_TEXT}: "
            "shorten the <instruction>"
        )
    return text


def _area(el: ET.Element, where: str, warnings: list[str]) -> list[str]:
    described = _text(el, "areaDesc")
    if described is None:
        raise CapError(f"{where} has no <areaDesc> (required by CAP 1.2)")
    shapes = _shapes(el, f"{where} ({described})")
    if shapes:
        codes = el.findall(f"{{{NS}}}geocode")
        if codes:
            warnings.append(
                f"{where} ({described}): its polygon/circle define it; {len(codes)} geocode(s) "
                "ignored"
            )
        return shapes
    found: list[str] = []
    ignored: list[str] = []
    for geocode in el.findall(f"{{{NS}}}geocode"):
        name, area = _geocode(geocode, f"{where} ({described})")
        if area is None:
            ignored.append(name or "(no valueName)")
        else:
            found.append(area)
    if ignored:
        warnings.append(f"{where} ({described}): geocodes {', '.join(ignored)} ignored")
    if not found:
        raise _untargetable(el, f"{where} ({described})")
    return found


def _shapes(el: ET.Element, where: str) -> list[str]:
    """The area's polygons and circles as targets, each checked (CapError saying what is wrong)."""
    out: list[str] = []
    for tag, kind in (("polygon", "polygon"), ("circle", "circle")):
        for shape in el.findall(f"{{{NS}}}{tag}"):
            text = " ".join((shape.text or "").split())
            try:
                if kind == "circle":
                    centre, _, radius = text.rpartition(" ")
                    parse_circle(f"{centre},{radius}")
                    out.append(f"circle:{centre},{radius}")
                else:
                    parse_polygon(text)
                    out.append(f"polygon:{text}")
            except InputError as exc:
                raise CapError(f"{where}: <{tag}> {exc}") from None
    return out


def _geocode(geocode: ET.Element, where: str) -> tuple[str, str | None]:
    """A geocode's valueName, and the area it names (None: a kind we do not target)."""
    name = (_text(geocode, "valueName") or "").upper()
    value = (_text(geocode, "value") or "").upper()
    kind = GEOCODE_KINDS.get(name)
    if kind is None:
        return name, None
    if not GEOCODE_SHAPES[kind].match(value):
        raise CapError(f"{where}: geocode {name} {value!r} is not a valid code")
    return name, f"{kind}:{value}"


def _untargetable(el: ET.Element, where: str) -> CapError:
    """The error for an <area> with neither a shape nor a geocode we can target."""
    return CapError(
        f"{where} has no geocode we can target and no <polygon> or <circle>"
        ": add <geocode><valueName>DEPARTEMENT</valueName><value>75</value></geocode> "
        "(or INSEE for a commune, REGION for a region)"
    )
