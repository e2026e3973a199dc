"""How the mock SMSC behaves: a frozen `MockConfig`, from defaults, a TOML scenario file or flags.

Defaults are a well-behaved, unlimited, instant SMSC (the fast path). Each scenario knob adds one
misbehaviour seen on real SMSCs; they combine freely. Every random choice comes from one RNG
seeded with `seed`, so a test that sets a seed sees the same run every time.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broadcaster.errors import ConfigError

RECEIPT_STATS = ("DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN")


@dataclass(frozen=True)
class MockConfig:
    """Every scenario knob of the mock SMSC (all off by default)."""

    system_id: str | None = None
    """Required system_id; None accepts any."""
    password: str | None = None
    """Required password; None accepts any."""
    max_binds: int = 0
    """Binds accepted at once (0: no limit); beyond it, ESME_RBINDFAIL."""
    refuse_binds: bool = False
    window: int = 0
    """Submits outstanding per bind before ESME_RMSGQFUL (0: no limit)."""
    tps: float = 0.0
    """Parts per second per bind before ESME_RTHROTTLED (0: no limit); see `TpsBucket`."""
    tps_burst_s: float = 0.1
    """The TPS bucket holds `max(1, tps * tps_burst_s)` tokens."""
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    errors: dict[int, float] = field(default_factory=dict)
    """command_status -> probability per submit_sm (vendor codes such as 0x401 allowed)."""
    disconnect_after: int = 0
    """Drop each connection after this many submit_sm (0: never)."""
    disconnect_rate: float = 0.0
    """Probability, per submit_sm, of dropping the connection instead of answering."""
    stall_after: int = 0
    """Stop reading and answering on a connection after this many submit_sm (0: never)..."""
    stall_seconds: float = 0.0
    """...for this long (0: for ever)."""
    drain_delay_ms: float = 0.0
    """Slow drain: pause reading this long after every read."""
    malformed_reply_rate: float = 0.0
    """Probability of answering a submit_sm with an unreadable submit_sm_resp body."""
    corrupt_stream_after: int = 0
    """After this many submit_sm, send a PDU with an impossible command_length (0: never)."""
    receipts: bool = False
    receipt_delay_ms: float = 0.0
    receipt_mix: dict[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    receipt_12_digit_dates: bool = False
    receipt_tlv: bool = True
    """Carry receipted_message_id and message_state TLVs as well as the text."""
    malformed_receipt_rate: float = 0.0
    """Probability of a receipt whose text has no id and no TLV (unmatchable)."""
    record: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("window", "max_binds", "disconnect_after", "stall_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"mock SMSC: {name} must be 0 or positive")
        for status, rate in self.errors.items():
            if not 0 <= rate <= 1 or not 0 < status <= 0xFFFFFFFF:
                raise ConfigError(f"mock SMSC: error 0x{status:08X}={rate} is not a probability")
        if sum(self.errors.values()) > 1:
            raise ConfigError("mock SMSC: error rates add up to more than 1")
        unknown = set(self.receipt_mix) - set(RECEIPT_STATS)
        if unknown:
            raise ConfigError(
                f"mock SMSC: unknown receipt stat(s) {sorted(unknown)}; use {RECEIPT_STATS}"
            )
        if self.receipt_mix and abs(sum(self.receipt_mix.values()) - 1) > 1e-6:
            raise ConfigError("mock SMSC: the receipt mix must add up to 1")

    @property
    def fast(self) -> bool:
        """No scenario at all: the server may skip every per-part check of a knob."""
        return self == MockConfig(record=self.record, seed=self.seed)

    @classmethod
    def from_toml(cls, path: Path, **overrides: Any) -> MockConfig:
        """A scenario file: top-level keys are the field names; `[errors]` maps status -> rate."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read scenario {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"scenario {path} is not valid TOML: {exc}") from exc
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"scenario {path}: unknown key(s) {sorted(unknown)}")
        if "errors" in data:
            data["errors"] = {parse_status(k): float(v) for k, v in data["errors"].items()}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


def parse_status(text: str | int) -> int:
    """`0x58`, `88`, `0x00000401` or a name like `ESME_RTHROTTLED` -> int."""
    from broadcaster.smpp.constants import Status

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


def parse_rates(items: list[str], key: type = str) -> dict[Any, float]:
    """`NAME=RATE` items (also comma-separated inside one item) -> {NAME: rate}."""
    out: dict[Any, float] = {}
    for item in items:
        for pair in item.split(","):
            if not pair.strip():
                continue
            name, sep, rate = pair.partition("=")
            if not sep:
                raise ConfigError(f"{pair!r} is not of the form NAME=RATE")
            try:
                value = float(rate)
            except ValueError:
                raise ConfigError(f"{pair!r}: {rate!r} is not a number") from None
            out[parse_status(name) if key is int else name.strip().upper()] = value
    return out
