"""Errors the API answers with: an HTTP status, a stable code, and a message saying what to fix.

Every error body is `{"error": {"code": ..., "message": ..., "request_id": ...}}`, plus
`details` when there is more than one thing to fix.
"""

from __future__ import annotations

from typing import Any

from broadcaster.errors import BroadcasterError, InputError


class ApiError(BroadcasterError):
    """The request was refused; nothing was changed."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "request_id": request_id,
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def from_refusal(exc: InputError) -> ApiError:
    """A command's refusal (NotFoundError, ForbiddenError, ConflictError, InputError...) in the
    API's words: its status hint, its code, its message and details."""
    headers = {"WWW-Authenticate": 'Bearer realm="broadcaster"'} if exc.status == 401 else None
    return ApiError(exc.status, exc.code, str(exc), details=exc.details, headers=headers)


def bad_request(message: str, code: str = "invalid_body", **kw: Any) -> ApiError:
    return ApiError(400, code, message, **kw)


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="broadcaster"'}
    )


def forbidden(message: str, code: str = "forbidden") -> ApiError:
    return ApiError(403, code, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str, code: str = "invalid_state") -> ApiError:
    return ApiError(409, code, message)


def unprocessable(message: str, code: str = "invalid_input", **kw: Any) -> ApiError:
    return ApiError(422, code, message, **kw)
