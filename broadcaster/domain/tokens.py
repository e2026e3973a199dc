"""API tokens, pure: their shape, their hash, the names their holders may take.

A token is `bct_` followed by 43 URL-safe characters (32 random bytes). Only its SHA-256 is
stored, with its first 12 characters (`prefix`) to recognise it in listings; the token itself is
shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Final

from broadcaster.errors import InputError

TOKEN_MARK: Final = "bct_"  # noqa: S105 - the visible mark of our tokens, not a secret
TOKEN_SHAPE: Final = re.compile(r"^bct_[A-Za-z0-9_-]{43}$")
PREFIX_LENGTH: Final = 12
NAME_SHAPE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
RESERVED_NAMES: Final = frozenset({"cli", "system", "scheduler", "anonymous", "engine"})
"""Actors the rest of the system writes as created_by / audit actor: no token may pose as one."""


def new_token() -> str:
    return TOKEN_MARK + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_SHAPE.match(name):
        raise InputError(
            f"token name {name!r} is invalid: 1-64 characters, letters, digits and . _ @ -, "
            "starting with a letter or digit (name the person or system that holds it)"
        )
    if name.casefold() in RESERVED_NAMES:
        raise InputError(
            f"token name {name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))}): "
            "name the person or system that holds it"
        )
    return name
