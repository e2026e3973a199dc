"""One error root, with families; every message tells the user what to do next.

`exit_code` is what the CLI returns when an error of that family ends a command:
0 ok, 1 failure, 2 bad input or configuration (nothing was sent), 3 partially delivered,
4 not known yet (a drill's delivery window still open), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_PARTIAL = 3
EXIT_NOT_YET = 4
"""Not known yet: a drill read while its delivery window is open (read it again after)."""
EXIT_INTERRUPTED = 130


class BroadcasterError(Exception):
    """broadcaster failed; see the message for what to do."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(BroadcasterError):
    """The configuration is invalid: fix the setting named in the message."""

    exit_code = EXIT_BAD_INPUT


class InputError(BroadcasterError):
    """The input was rejected before anything was sent.

    `status` and `code` are hints for the interfaces (h11's style): the HTTP status and the
    stable error code the API answers with; the CLI exits with `exit_code`. A refusal may carry
    `details` when there is more than one thing to fix.
    """

    exit_code = EXIT_BAD_INPUT
    status = 422
    code = "invalid_input"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.details = details


class NotFoundError(InputError):
    """What the request names does not exist."""

    status = 404
    code = "not_found"


class ForbiddenError(InputError):
    """The caller's role or identity does not allow this; nothing was done."""

    status = 403
    code = "forbidden"


class ConflictError(InputError):
    """The request does not fit the current state of what it names; nothing was done."""

    status = 409
    code = "invalid_state"


class UnknownAreaError(InputError):
    """An area in the target does not exist: run `broadcaster areas` to list them."""

    code = "unknown_area"


class TemplateError(InputError):
    """A template could not be rendered: check its name and variables."""

    code = "template_error"


class ImportRejectedError(InputError):
    """Some rows of an import were rejected; see the reject file."""


class StoreError(BroadcasterError):
    """The database could not be reached or used: check DATABASE_URL."""


class DatabaseSettingError(ConfigError, StoreError):
    """DATABASE_URL names a database that is not there, a login refused or no URL at all: a
    setting to fix (exit 2, as for a missing DATABASE_URL), not a server that failed."""


class SmppError(BroadcasterError):
    """An SMPP exchange failed."""


class SmppProtocolError(SmppError):
    """A PDU violated SMPP 3.4; `command_status` is the status to answer with."""

    def __init__(self, message: str, command_status: int = 0x00000002) -> None:
        super().__init__(message)
        self.command_status = command_status


class BindError(SmppError):
    """The SMSC refused or dropped the bind: check host, port, system_id and password."""


def cannot_listen(what: str, host: str, port: int, flag: str, exc: OSError) -> ConfigError:
    """A server (`serve`, `mock-smsc`) that cannot listen, said in words with what to change,
    not asyncio's OSError traceback."""
    why = {
        errno.EADDRINUSE: f"the port is in use (by another process): pick another with {flag}, "
        "or stop the process that holds it",
        errno.EACCES: f"not allowed (ports below 1024 need privileges): pick another with {flag}",
        errno.EADDRNOTAVAIL: "this machine has no such address: check --host",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return ConfigError(f"{what} cannot listen on {host}:{port}: {why}")
