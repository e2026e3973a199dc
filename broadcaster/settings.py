"""Settings as frozen dataclasses, built from the environment and an optional TOML file.

Precedence: command-line flag > `BROADCASTER_*` / `DATABASE_URL` environment > TOML file > default.
SMSC endpoints come from `[[smsc]]` tables in the TOML file or from `BROADCASTER_SMSC_URL`
(comma-separated `smpp://system_id:password@host:port?binds=2&tps=100&window=64`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from broadcaster.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BindMode = Literal["transmitter", "transceiver", "receiver"]
BIND_MODES: tuple[str, ...] = ("transmitter", "transceiver", "receiver")
ReceiptIds = Literal["auto", "same", "decimal", "hex"]
RECEIPT_IDS: tuple[str, ...] = ("auto", "same", "decimal", "hex")


@dataclass(frozen=True)
class SmscConfig:
    """One SMSC (site): where to bind, how many binds, and what the operator allows per bind."""

    name: str = "smsc"
    """The SMSC's name in logs, metrics (`smsc` label) and reports."""
    host: str = "127.0.0.1"
    """Host name or address of the SMSC."""
    port: int = 2775
    """TCP port of the SMSC's SMPP service."""
    system_id: str = "broadcaster"
    """SMPP system_id (the account) the binds authenticate with."""
    password: str = ""
    """SMPP password (at most 8 characters in SMPP 3.4); keep it in the environment file."""
    system_type: str = ""
    """SMPP system_type, if the operator asks for one."""
    bind_mode: BindMode = "transceiver"
    """`transceiver` (submits and receipts on one bind), `transmitter` (no receipts, unless
    `receivers` adds receive-only binds) or `receiver` (every bind of this SMSC only receives
    receipts; nothing is sent through it)."""
    binds: int = 2
    """Binds (TCP connections) opened to this SMSC by each worker."""
    receivers: int = 0
    """Receiver binds opened beside the `binds` (for an account split into send-only and
    receive-only binds: `bind_mode=transmitter&receivers=1`)."""
    tps: float = 0.0
    """Parts per second allowed per bind; 0 means no limit (a mock SMSC, a lab)."""
    window: int = 64
    """Submits outstanding without a response, per bind."""
    weight: int = 1
    """Share of the traffic this SMSC gets relative to the other SMSCs."""
    source_addr: str = "ALERTE"
    """Sender shown on phones (alphanumeric with source_ton 5)."""
    source_ton: int = 5
    """Type of number of the sender: 5 alphanumeric, 1 international."""
    source_npi: int = 0
    """Numbering plan of the sender: 0 unknown, 1 ISDN (E.164)."""
    registered_delivery: int = 1
    """1: ask the SMSC for delivery receipts (needed for delivery figures and drill verdicts)."""
    enquire_link_s: float = 30.0
    """Seconds without traffic from the SMSC before a keep-alive enquire_link is sent."""
    response_timeout_s: float = 5.0
    """Seconds to wait for a bind_resp, a submit_sm_resp or an enquire_link_resp. A part not
    answered in time is sent again (a possible duplicate); a bind silent that long is dropped."""
    retry_statuses: str = "0x08,0x45,0x64"
    """command_status values that mean a transient fault: the part is sent again, up to
    `retry_limit` times (ESME_RSYSERR, ESME_RSUBMITFAIL, ESME_RX_T_APPN by default; hex or
    decimal, comma-separated, "" for none). Throttling and queue-full (0x58, 0x14) always slow
    down and retry; any other status fails the part at once (an invalid destination...)."""
    retry_limit: int = 2
    """Times a part answered with one of `retry_statuses` is sent again before it fails."""
    receipt_ids: ReceiptIds = "auto"
    """How this SMSC's receipts write the id its submit_sm_resp gave: `same`, `decimal` (the
    response in hex, the receipt in decimal), `hex` (the reverse), or `auto`: found out from the
    first receipts that match, and logged (`receipt_id_form_detected`)."""

    def __post_init__(self) -> None:
        if self.bind_mode not in BIND_MODES:
            raise ConfigError(
                f"smsc {self.name!r}: bind_mode must be one of {', '.join(BIND_MODES)}, "
                f"not {self.bind_mode!r}"
            )
        if self.retry_limit < 0:
            raise ConfigError(f"smsc {self.name!r}: retry_limit must be 0 or more")
        self.retry_status_set  # noqa: B018  (validated now, not at the first error)
        if self.receivers < 0:
            raise ConfigError(f"smsc {self.name!r}: receivers must be 0 or more")
        for name in ("port", "binds", "window", "weight"):
            if getattr(self, name) < 1:
                raise ConfigError(f"smsc {self.name!r}: {name} must be at least 1")
        for name in ("enquire_link_s", "response_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"smsc {self.name!r}: {name} must be positive (seconds)")
        if self.tps < 0:
            raise ConfigError(f"smsc {self.name!r}: tps must be 0 (no limit) or positive")
        if not self.host:
            raise ConfigError(f"smsc {self.name!r}: host is empty")
        if self.receipt_ids not in RECEIPT_IDS:
            raise ConfigError(
                f"smsc {self.name!r}: receipt_ids must be one of {', '.join(RECEIPT_IDS)}, "
                f"not {self.receipt_ids!r}"
            )

    @functools.cached_property
    def retry_status_set(self) -> frozenset[int]:
        """`retry_statuses` as numbers."""
        codes: set[int] = set()
        for item in self.retry_statuses.replace(" ", "").split(","):
            if not item:
                continue
            try:
                code = int(item, 0)
            except ValueError:
                code = -1
            if not 0 < code <= 0xFFFFFFFF:
                raise ConfigError(
                    f"smsc {self.name!r}: retry_statuses: {item!r} is not a command_status"
                    " (write 0x08 or 8)"
                )
            codes.add(code)
        return frozenset(codes)

    @property
    def transmit_binds(self) -> int:
        """Binds that send parts (0 for a receive-only SMSC)."""
        return 0 if self.bind_mode == "receiver" else self.binds

    @property
    def receive_binds(self) -> int:
        """Binds that get receipts: transceivers and receivers."""
        return (self.binds if self.bind_mode != "transmitter" else 0) + self.receivers

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> SmscConfig:
        """Parse `smpp://system_id:password@host:port?binds=2&tps=100&window=64`."""
        parts = urlsplit(url.strip())
        if parts.scheme != "smpp" or not parts.hostname:
            raise ConfigError(
                f"SMSC URL {url!r} is not of the form smpp://system_id:password@host:port"
            )
        values: dict[str, Any] = {
            "name": name or f"{parts.hostname}:{parts.port or 2775}",
            "host": parts.hostname,
            "port": parts.port or 2775,
        }
        if parts.username:
            values["system_id"] = unquote(parts.username)
        if parts.password is not None:
            values["password"] = unquote(parts.password)
        values.update(_url_parameters(url, parts.query))
        return cls(**values)


_URL_PARTS = ("host", "port", "system_id", "password")
"""SmscConfig fields an SMSC URL gives in its address, never as query parameters."""


def _url_parameters(url: str, query: str) -> dict[str, Any]:
    """The SmscConfig fields an SMSC URL's query sets, coerced to their types."""
    types = _field_types(SmscConfig)
    values: dict[str, Any] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        if key not in types or key in _URL_PARTS:
            raise ConfigError(f"SMSC URL {url!r}: unknown parameter {key!r}")
        values[key] = _coerce(key, raw, types[key])
    return values


@dataclass(frozen=True)
class Settings:
    """Everything a broadcaster process needs to know; see README for each setting."""

    database_url: str | None = None
    """PostgreSQL URL (`[database] url` in the file, `DATABASE_URL` in the environment); every
    command but `demo` needs one."""
    smscs: tuple[SmscConfig, ...] = ()
    """The SMSCs (`[[smsc]]` tables, or `BROADCASTER_SMSC_URL`): see the SMSC section."""
    templates_dir: Path = PROJECT_ROOT / "templates"
    """Directory of the message templates (one per scenario and language)."""
    sql_dir: Path = PROJECT_ROOT / "sql"
    """Directory of the migrations and named queries (the installed package's own)."""
    log_json: bool = False
    """JSON log lines on stderr (for journald and log shippers) instead of text."""
    log_level: str = "info"
    """debug, info, warning or error."""
    gc_tuned: bool = True
    """Python's garbage collector set for sending (what starting made frozen, the young collected
    every 50,000 allocations: broadcaster/gc_policy.py): less CPU, cycles freed later (keep some
    hundred MB of headroom); false keeps CPython's defaults."""
    max_parts: int = 3
    """A message longer than this many parts is refused at preview time."""
    chunk_size: int = 5000
    """Recipients per work chunk (the unit of leasing between engine processes)."""
    default_language: str = "fr"
    """Language of a département without its own default, and of a missing translation."""
    home_country: str = "FR"
    """The country (ISO 3166 code) whose national numbers an import reads: with FR, 0612345678
    and 612345678 (a spreadsheet's leftover) are +33 6 12 34 56 78."""
    data_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "broadcaster")
    """Directory for the files the program keeps for itself; `/var/lib/broadcaster` under the
    systemd units (deploy/systemd)."""
    api_approval_threshold: int = 0
    """A live broadcast with more recipients than this waits for a second person's approval
    (HTTP API); 0: every live broadcast does. Drills never do."""
    api_max_body_bytes: int = 256 * 1024
    """Largest request body the HTTP API reads (JSON or CAP XML); larger ones get 413."""
    api_rate_per_second: float = 5.0
    """Requests per second each API token may sustain (token bucket)..."""
    api_rate_burst: int = 30
    """...and how many it may send at once above that rate."""
    retention_outcomes_days: int = 90
    """Days the per-recipient outcomes (deliveries) of finished broadcasts are kept; older months
    are dropped whole (partitions). The broadcast, its counts and its report stay. 0: kept."""
    retention_receipts_days: int = 90
    """Days delivery receipts are kept (dropped by month, like the outcomes). 0: kept."""
    retention_audit_days: int = 1825
    """Days the audit log is kept (the longest: 5 years by default; at least 365). 0: kept."""
    retention_locations_hours: int = 48
    """Hours where-seen records (subscribers' location updates) are kept: hours, not months,
    as the most sensitive data. 0: kept."""
    retention_interval_s: float = 3600.0
    """Seconds between two purges by `broadcaster serve` (0: serve never purges; run
    `broadcaster db purge` from a timer instead)."""
    locations_compact_interval_s: float = 10.0
    """Seconds between two compactions by `broadcaster serve`: location updates are appended
    (ingest runs at COPY speed) and selection reads the pending ones too, at a cost that grows
    with them (0.5-2 s a million for a département here); compaction folds them into the
    last-seen table. 0: serve never compacts (run `broadcaster locations compact`)."""
    display_timezone: str = ""
    """The zone times are shown to people in (IANA name, e.g. Europe/Paris); empty: each
    broadcast's area's own zone (overseas départements have theirs). JSON stays in UTC."""
    map_tiles_url: str = ""
    """A tile server the console's map draws under the outlines (https, with {z}, {x} and {y},
    e.g. https://tiles.example.net/{z}/{x}/{y}.png; it is added to the pages' img-src);
    empty: outlines only, nothing fetched from another server."""
    map_tiles_attribution: str = ""
    """The tile server's attribution, shown on the map (its licence usually requires it)."""

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, config_file: Path | None = None
    ) -> Settings:
        """Build settings from a TOML file (if any) overlaid with the environment."""
        env = os.environ if env is None else env
        if config_file is None and env.get("BROADCASTER_CONFIG"):
            config_file = Path(env["BROADCASTER_CONFIG"])
        values, smscs = _read_toml(config_file) if config_file is not None else ({}, [])
        values.update(_from_environment(env))
        if "home_country" in values:  # fr is FR, as ISO 3166 writes it
            values["home_country"] = str(values["home_country"]).strip().upper()
        if env.get("BROADCASTER_SMSC_URL"):
            smscs = [
                SmscConfig.from_url(url, name=f"smsc{i + 1}")
                for i, url in enumerate(env["BROADCASTER_SMSC_URL"].split(","))
                if url.strip()
            ]
        settings = cls(**values, smscs=tuple(smscs))
        _check_ranges(settings)
        return settings


ENVIRONMENT_VARIABLES: dict[str, str] = {
    "BROADCASTER_LOG_JSON": "log_json",
    "BROADCASTER_LOG_LEVEL": "log_level",
    "BROADCASTER_GC_TUNED": "gc_tuned",
    "BROADCASTER_MAX_PARTS": "max_parts",
    "BROADCASTER_CHUNK_SIZE": "chunk_size",
    "BROADCASTER_TEMPLATES_DIR": "templates_dir",
    "BROADCASTER_DEFAULT_LANGUAGE": "default_language",
    "BROADCASTER_HOME_COUNTRY": "home_country",
    "BROADCASTER_DATA_DIR": "data_dir",
    "BROADCASTER_API_APPROVAL_THRESHOLD": "api_approval_threshold",
    "BROADCASTER_API_MAX_BODY_BYTES": "api_max_body_bytes",
    "BROADCASTER_API_RATE_PER_SECOND": "api_rate_per_second",
    "BROADCASTER_API_RATE_BURST": "api_rate_burst",
    "BROADCASTER_RETENTION_OUTCOMES_DAYS": "retention_outcomes_days",
    "BROADCASTER_RETENTION_RECEIPTS_DAYS": "retention_receipts_days",
    "BROADCASTER_RETENTION_AUDIT_DAYS": "retention_audit_days",
    "BROADCASTER_RETENTION_LOCATIONS_HOURS": "retention_locations_hours",
    "BROADCASTER_RETENTION_INTERVAL_S": "retention_interval_s",
    "BROADCASTER_LOCATIONS_COMPACT_INTERVAL_S": "locations_compact_interval_s",
    "BROADCASTER_TIMEZONE": "display_timezone",
    "BROADCASTER_MAP_TILES_URL": "map_tiles_url",
    "BROADCASTER_MAP_TILES_ATTRIBUTION": "map_tiles_attribution",
}
"""Environment variable -> the Settings field it sets (besides DATABASE_URL, BROADCASTER_CONFIG
and BROADCASTER_SMSC_URL)."""


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings the environment gives, coerced to their fields' types."""
    values: dict[str, Any] = {}
    if env.get("DATABASE_URL"):
        values["database_url"] = env["DATABASE_URL"]
    types = _field_types(Settings)
    for var, name in ENVIRONMENT_VARIABLES.items():
        if var in env:
            values[name] = _coerce(var, env[var], types[name])
    return values


def _check_ranges(settings: Settings) -> None:
    """Refuse values of the right type that no deployment can mean."""
    if settings.max_parts < 1 or settings.chunk_size < 1:
        raise ConfigError("max_parts and chunk_size must be at least 1")
    if settings.api_approval_threshold < 0 or settings.api_max_body_bytes < 1024:
        raise ConfigError("api_approval_threshold must be >= 0, api_max_body_bytes >= 1024")
    if settings.api_rate_per_second <= 0 or settings.api_rate_burst < 1:
        raise ConfigError("api_rate_per_second must be positive, api_rate_burst >= 1")
    _check_retention(settings)
    _check_tiles(settings.map_tiles_url)
    if not _COUNTRY_CODE.fullmatch(settings.home_country):
        raise ConfigError(
            f"home_country {settings.home_country!r} is not a two-letter country code (FR, BE, ...)"
        )
    _check_timezone(settings.display_timezone)


def _check_timezone(name: str) -> None:
    """A zone nobody can read the time in is refused when the settings load (`check`, `serve`
    at start), not at each page: a mistyped one let `serve` start, then refused every console
    page and report with a 422 that blamed the client."""
    if not name:
        return
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"BROADCASTER_TIMEZONE / display_timezone {name!r} is not an IANA time zone name "
            "(e.g. Europe/Paris, Indian/Reunion, UTC); leave it empty for each area's own zone"
        ) from None


MIN_AUDIT_DAYS = 365
"""The audit log is never purged younger than a year (the database function refuses too)."""


def _check_retention(settings: Settings) -> None:
    for name in ("outcomes_days", "receipts_days", "audit_days", "locations_hours", "interval_s"):
        if getattr(settings, f"retention_{name}") < 0:
            raise ConfigError(f"retention_{name} must be 0 (keep) or positive")
    if settings.locations_compact_interval_s < 0:
        raise ConfigError("locations_compact_interval_s must be 0 (never) or positive")
    if 0 < settings.retention_audit_days < MIN_AUDIT_DAYS:
        raise ConfigError(
            f"retention_audit_days must be 0 (keep) or at least {MIN_AUDIT_DAYS}: the audit log "
            "is kept longest"
        )


def _check_tiles(url: str) -> None:
    if url and not _TILES_URL.fullmatch(url):
        raise ConfigError(
            f"map_tiles_url {url!r} is not an https URL with {{z}}, {{x}} and {{y}} "
            "(e.g. https://tiles.example.net/{z}/{x}/{y}.png); leave it empty for outlines only"
        )


_TILES_URL = re.compile(
    r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[^\s\"'<>]*(?=[^\s]*\{z\})(?=[^\s]*\{x\})(?=[^\s]*\{y\})[^\s\"'<>]*"
)
"""An https tile URL template: its host becomes part of the pages' img-src, so nothing that
could widen the policy (quotes, spaces, another scheme) is accepted."""


_COUNTRY_CODE = re.compile(r"[A-Z]{2}")
"""The shape of an ISO 3166 code; whether phonenumbers knows it is checked where numbers are
read (importing phonenumbers here would slow every command's start)."""


def _read_toml(path: Path) -> tuple[dict[str, Any], list[SmscConfig]]:
    """The settings and the SMSCs ([[smsc]] tables) of a config file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    smscs = [_smsc_table(path, i, table) for i, table in enumerate(data.pop("smsc", []))]
    database = data.pop("database", {})
    values: dict[str, Any] = {"database_url": database["url"]} if "url" in database else {}
    types = _field_types(Settings)
    for key, value in data.items():
        if key not in types or key == "smscs":
            raise ConfigError(f"{path}: unknown setting {key!r}")
        values[key] = _coerce(key, value, types[key])
    return values, smscs


def _smsc_table(path: Path, index: int, table: dict[str, Any]) -> SmscConfig:
    unknown = set(table) - set(_field_types(SmscConfig))
    if unknown:
        raise ConfigError(f"{path}: [[smsc]] #{index + 1} has unknown keys {sorted(unknown)}")
    return SmscConfig(**{"name": f"smsc{index + 1}", **table})


def _field_types(cls: type[Any]) -> dict[str, Any]:
    """A dataclass's field names and their declared types (as `_coerce` reads them)."""
    return {f.name: f.type for f in dataclasses.fields(cls)}


TRUE_WORDS = ("1", "true", "yes", "on")
"""How a switch is turned on in the environment, a URL query or TOML text (any case)."""


def _coerce(name: str, raw: Any, annotation: Any) -> Any:
    """Turn a string (env, URL query) or TOML value into the field's declared type."""
    kind = str(annotation)
    try:
        if "bool" in kind:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in TRUE_WORDS:
                return True
            if str(raw).lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if "Path" in kind:
            return Path(str(raw)).expanduser()
    except ValueError as exc:
        raise ConfigError(f"setting {name}: {raw!r} is not a valid {kind}") from exc
    return raw
