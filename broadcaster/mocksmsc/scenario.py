"""How the mock SMSC behaves: a frozen `MockConfig`, from defaults, a TOML scenario file or flags.

Defaults are a well-behaved, unlimited, instant SMSC: the fast path. Each scenario knob adds one
misbehaviour seen on real SMSCs; they combine freely. Every random choice is drawn from one RNG
seeded with `seed`, in the order PDUs are processed, so a test that sets a seed and sends the
same PDUs sees the same run every time.

A scenario file holds the field names as top-level keys, for example::

    # throttling.toml: a busy SMSC
    window = 10
    tps = 100
    throttle_above = 0.6          # actually accepts only 60 parts/s per bind
    latency_ms = 5
    latency_jitter_ms = 2
    errors = {"0x00000058" = 0.01, "0x00000401" = 0.001}
    receipts = true
    receipt_delay_ms = 200
    receipt_mix = {DELIVRD = 0.9, UNDELIV = 0.05, EXPIRED = 0.05}
    receipt_12_digit_dates = true
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from broadcaster.errors import ConfigError
from broadcaster.smpp.constants import Status

RECEIPT_STATS: Final = ("DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN")
BIND_MODES: Final = ("transmitter", "receiver", "transceiver")
RECEIPT_PDUS: Final = ("deliver_sm", "data_sm")


@dataclass(frozen=True)
class MockConfig:
    """Every knob of the mock SMSC; the defaults are an SMSC with no limit and no fault."""

    # -- binds ----------------------------------------------------------------------------------
    system_id: str | None = None
    """system_id required to bind; None accepts any (else ESME_RINVSYSID)."""
    password: str | None = None
    """password required to bind; None accepts any (else ESME_RINVPASWD)."""
    bind_modes: tuple[str, ...] = BIND_MODES
    """Bind modes accepted; another one gets ESME_RBINDFAIL."""
    max_binds: int = 0
    """Binds open at once (0: no limit); one more gets ESME_RBINDFAIL."""
    refuse_binds: bool = False
    """Refuse every bind with ESME_RBINDFAIL (an SMSC in maintenance)."""
    refuse_first_binds: int = 0
    """Refuse this many bind attempts, then accept (reconnect-with-backoff tests)."""

    # -- flow control ---------------------------------------------------------------------------
    window: int = 0
    """submit_sm unanswered per bind before ESME_RMSGQFUL (0: no limit); see flow.py."""
    tps: float = 0.0
    """Parts per second per bind before ESME_RTHROTTLED (0: no limit); see `flow.TokenBucket`."""
    tps_burst_s: float = 0.1
    """Depth of the TPS bucket in seconds of the rate: `max(1, rate * tps_burst_s)` parts."""
    throttle_above: float = 1.0
    """Fraction of `tps` actually accepted (0.6: throttles above 60% of the contracted rate)."""

    # -- responses ------------------------------------------------------------------------------
    latency_ms: float = 0.0
    """Delay before each response (submit_sm_resp), in milliseconds."""
    latency_jitter_ms: float = 0.0
    """Each delay is drawn uniformly within latency_ms ± this (never below 0)."""
    errors: Mapping[int, float] = field(default_factory=dict)
    """command_status -> probability per submit_sm (vendor codes such as 0x401 allowed)."""
    malformed_reply_rate: float = 0.0
    """Probability of answering a submit_sm with an unreadable PDU instead of submit_sm_resp
    (a submit_sm_resp whose message_id has no NUL, or a PDU with an unknown command_id)."""
    empty_message_ids: bool = False
    """Accept parts with an empty message_id in submit_sm_resp (receipts keep the real id:
    none of them can be matched)."""
    corrupt_stream_after: int = 0
    """After answering this many submit_sm on a connection, send 8 octets that claim a
    command_length of 8: the stream cannot be resynchronised (0: never)."""

    # -- connection faults ----------------------------------------------------------------------
    disconnect_after: int = 0
    """Close each connection after answering this many submit_sm (0: never)."""
    unbind_after: int = 0
    """Send an unbind (SMSC-initiated) after answering this many submit_sm on a connection,
    ahead of the answers still delayed by the latency; those are sent all the same (0: never)."""
    disconnect_rate: float = 0.0
    """Probability, per submit_sm, of closing the connection instead of answering it."""
    stall_after: int = 0
    """Once per connection, after this many submit_sm, stop reading and answering..."""
    stall_seconds: float = 0.0
    """...for this long, then resume where it stopped (0: for ever)."""
    drain_delay_ms: float = 0.0
    """Slow drain: stop reading for this long after every read."""

    # -- delivery receipts ----------------------------------------------------------------------
    receipts: bool = False
    """Send a deliver_sm receipt for each accepted part that asked for one (registered_delivery
    1: always, 2: on failure only), on a receiver or transceiver bind of the same system_id."""
    receipt_delay_ms: float = 0.0
    receipt_jitter_ms: float = 0.0
    receipt_mix: Mapping[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    """stat -> probability; must add up to 1."""
    receipt_12_digit_dates: bool = False
    """Dates as YYMMDDhhmmss (some SMSCs) instead of YYMMDDhhmm."""
    receipt_tlv: bool = True
    """Carry receipted_message_id and message_state TLVs as well as the text."""
    receipt_pdu: str = "deliver_sm"
    """The PDU carrying receipts: `deliver_sm` or `data_sm` (text, if any, in message_payload)."""
    receipt_text: bool = True
    """Write the receipt text; False: the TLVs only (receipted_message_id, message_state)."""
    receipt_decimal_ids: bool = False
    """Write in the receipt text, in decimal, the id the submit_sm_resp gave in hex (the TLV, if
    any, keeps the hex): receipts that only the right id form matches to their messages."""
    receipt_drop_rate: float = 0.0
    """Probability of never sending a receipt that was due (1.0: drop them all)."""
    malformed_receipt_rate: float = 0.0
    """Probability of a receipt whose text has no id and that has no TLV (unmatchable)."""

    # -- bookkeeping ----------------------------------------------------------------------------
    record: bool = True
    """Keep the text of every message received (`MockSmsc.record.messages`); off for load."""
    seed: int | None = None
    """Seed of the scenario RNG (None: a fresh random run)."""

    def __post_init__(self) -> None:
        for check in _CHECKS:
            check(self)

    @property
    def fast(self) -> bool:
        """No knob acts per PDU: the server takes its fast path (bind-time knobs are free, and
        receipts: the fast path schedules them by the run, `ReceiptScheduler.schedule_run`)."""
        return not (
            self.window
            or self.tps
            or self.latency_ms
            or self.latency_jitter_ms
            or self.errors
            or self.malformed_reply_rate
            or self.corrupt_stream_after
            or self.disconnect_after
            or self.unbind_after
            or self.empty_message_ids
            or self.disconnect_rate
            or self.stall_after
            or self.drain_delay_ms
        )

    @property
    def accepted_tps(self) -> float:
        """Parts per second a bind may sustain: `tps * throttle_above` (0: no limit)."""
        return self.tps * self.throttle_above

    @property
    def tps_capacity(self) -> float:
        """Depth of the TPS bucket, in parts."""
        return max(1.0, self.accepted_tps * self.tps_burst_s)

    def replace(self, **changes: Any) -> MockConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], origin: str = "scenario") -> MockConfig:
        """From a dict of field names (a parsed scenario file); statuses may be written
        `0x58`, `88` or `ESME_RTHROTTLED`, stats in any case."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"{origin}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
        values = dict(data)
        if "errors" in values:
            values["errors"] = {parse_status(k): _rate(v, k) for k, v in values["errors"].items()}
        if "receipt_mix" in values:
            values["receipt_mix"] = {
                str(k).strip().upper(): _rate(v, k) for k, v in values["receipt_mix"].items()
            }
        if "bind_modes" in values:
            modes = values["bind_modes"]
            values["bind_modes"] = tuple(modes.split(",") if isinstance(modes, str) else modes)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{origin}: {exc}") from exc

    @classmethod
    def from_toml(cls, path: Path, **overrides: Any) -> MockConfig:
        """A scenario file, then `overrides` (None values are ignored: flags not given)."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read scenario {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"scenario {path} is not valid TOML: {exc}") from exc
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(data, origin=f"scenario {path}")


# -- validation of a MockConfig: one check per kind of knob, in this order ----------------------

_WHOLE_NUMBERS: Final = (
    "window",
    "max_binds",
    "refuse_first_binds",
    "disconnect_after",
    "unbind_after",
    "stall_after",
    "corrupt_stream_after",
)
_NON_NEGATIVE_NUMBERS: Final = (
    "tps",
    "latency_ms",
    "latency_jitter_ms",
    "stall_seconds",
    "drain_delay_ms",
    "receipt_delay_ms",
    "receipt_jitter_ms",
)
_PROBABILITIES: Final = (
    "disconnect_rate",
    "malformed_reply_rate",
    "receipt_drop_rate",
    "malformed_receipt_rate",
)


def _check_whole_numbers(config: MockConfig) -> None:
    for name in _WHOLE_NUMBERS:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"mock SMSC: {name} must be a whole number, 0 or more")


def _check_numbers(config: MockConfig) -> None:
    for name in _NON_NEGATIVE_NUMBERS:
        value = getattr(config, name)
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"mock SMSC: {name} must be a number, 0 or more")


def _check_tps_shape(config: MockConfig) -> None:
    if not 0 < config.tps_burst_s <= 60:
        raise ConfigError("mock SMSC: tps_burst_s must be within 0..60 seconds")
    if not 0 < config.throttle_above <= 1:
        raise ConfigError("mock SMSC: throttle_above must be a fraction within 0..1")


def _check_probabilities(config: MockConfig) -> None:
    for name in _PROBABILITIES:
        if not 0 <= getattr(config, name) <= 1:
            raise ConfigError(f"mock SMSC: {name} must be a probability within 0..1")


def _check_bind_modes(config: MockConfig) -> None:
    unknown_modes = set(config.bind_modes) - set(BIND_MODES)
    if unknown_modes or not config.bind_modes:
        raise ConfigError(
            f"mock SMSC: bind_modes {list(config.bind_modes)} must be among {BIND_MODES}"
        )


def _check_errors(config: MockConfig) -> None:
    for status, rate in config.errors.items():
        if not 0 < status <= 0xFFFFFFFF:
            raise ConfigError(f"mock SMSC: error status {status} is not a command_status")
        if not 0 <= rate <= 1:
            raise ConfigError(f"mock SMSC: error 0x{status:08X}={rate} is not a probability")
    if sum(config.errors.values()) > 1 + 1e-9:
        raise ConfigError("mock SMSC: error rates add up to more than 1")


def _check_receipt_carriage(config: MockConfig) -> None:
    if config.receipt_pdu not in RECEIPT_PDUS:
        raise ConfigError(f"mock SMSC: receipt_pdu must be one of {RECEIPT_PDUS}")
    if not (config.receipt_text or config.receipt_tlv):
        raise ConfigError("mock SMSC: receipts need their text or their TLVs (or both)")


def _check_receipt_mix(config: MockConfig) -> None:
    unknown = set(config.receipt_mix) - set(RECEIPT_STATS)
    if unknown:
        raise ConfigError(
            f"mock SMSC: unknown receipt stat(s) {sorted(unknown)}; use {RECEIPT_STATS}"
        )
    probabilities = config.receipt_mix.values()
    if any(not 0 <= p <= 1 for p in probabilities) or abs(sum(probabilities) - 1) > 1e-6:
        raise ConfigError("mock SMSC: the receipt mix must be probabilities adding up to 1")


_CHECKS: Final[tuple[Callable[[MockConfig], None], ...]] = (
    _check_whole_numbers,
    _check_numbers,
    _check_tps_shape,
    _check_probabilities,
    _check_bind_modes,
    _check_errors,
    _check_receipt_mix,
    _check_receipt_carriage,
)
"""Each raises ConfigError for the first knob of its kind out of bounds."""


def _rate(value: Any, name: object) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a probability") from None


def parse_status(text: str | int) -> int:
    """`0x58`, `88`, `0x00000401` or a name like `ESME_RTHROTTLED` -> int."""
    if isinstance(text, int):
        return text
    text = text.strip()
    if text.upper() in Status.__members__:
        return int(Status[text.upper()])
    try:
        return int(text, 0)
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a command_status (e.g. 0x58 or ESME_RTHROTTLED)"
        ) from None


def parse_rates(items: Iterable[str]) -> dict[str, float]:
    """`NAME=RATE` items (several may share one item, comma-separated) -> {NAME: rate}."""
    out: dict[str, float] = {}
    for item in items:
        for pair in item.split(","):
            if not pair.strip():
                continue
            name, sep, rate = pair.partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"{pair!r} is not of the form NAME=RATE")
            out[name.strip()] = _rate(rate, name.strip())
    return out


def parse_errors(items: Iterable[str]) -> dict[int, float]:
    """`STATUS=RATE` items -> {command_status: rate} (`0x58=0.01`, `ESME_RMSGQFUL=0.1`)."""
    return {parse_status(name): rate for name, rate in parse_rates(items).items()}


def parse_receipt_mix(items: Iterable[str]) -> dict[str, float]:
    """`DELIVRD=0.9,UNDELIV=0.05,EXPIRED=0.05` -> {stat: probability}."""
    return {name.upper(): rate for name, rate in parse_rates(items).items()}
