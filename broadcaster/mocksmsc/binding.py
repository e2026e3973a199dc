"""Whether the mock takes a bind (pure): one small check per bind knob of `MockConfig`, asked
in order, the first refusal wins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.smpp.codec import BindPdu
from broadcaster.smpp.constants import Status

_RBINDFAIL: Final = int(Status.ESME_RBINDFAIL)


@dataclass(frozen=True, slots=True)
class BindRequest:
    """A decoded bind, and where the server stands when it arrives."""

    bind: BindPdu
    mode: str
    """transmitter, receiver or transceiver."""
    attempt: int
    """Binds attempted on this server, this one included."""
    bound_now: int
    """Binds open now."""


Refusal = tuple[str, int]
"""(reason to log, command_status of the bind_*_resp)."""


def _maintenance(config: MockConfig, request: BindRequest) -> Refusal | None:
    """`refuse_binds`, `refuse_first_binds`: an SMSC in maintenance, or coming back."""
    if config.refuse_binds or request.attempt <= config.refuse_first_binds:
        return "refused", _RBINDFAIL
    return None


def _mode(config: MockConfig, request: BindRequest) -> Refusal | None:
    if request.mode not in config.bind_modes:
        return f"mode {request.mode} not allowed", _RBINDFAIL
    return None


def _capacity(config: MockConfig, request: BindRequest) -> Refusal | None:
    if config.max_binds and request.bound_now >= config.max_binds:
        return f"max_binds {config.max_binds} reached", _RBINDFAIL
    return None


def _system_id(config: MockConfig, request: BindRequest) -> Refusal | None:
    if config.system_id is not None and request.bind.system_id != config.system_id:
        return "system_id", int(Status.ESME_RINVSYSID)
    return None


def _password(config: MockConfig, request: BindRequest) -> Refusal | None:
    if config.password is not None and request.bind.password != config.password:
        return "password", int(Status.ESME_RINVPASWD)
    return None


_CHECKS: Final[tuple[Callable[[MockConfig, BindRequest], Refusal | None], ...]] = (
    _maintenance,
    _mode,
    _capacity,
    _system_id,
    _password,
)


def bind_refusal(config: MockConfig, request: BindRequest) -> Refusal | None:
    """Why the bind is refused, and with which status; None when it is taken."""
    for check in _CHECKS:
        refusal = check(config, request)
        if refusal is not None:
            return refusal
    return None
