"""Which submission a delivery receipt answers: the message id forms an SMSC may write.

An SMSC answers `submit_sm_resp` with a message id and later names that id in the receipt, but
not always in the same form: many write the id in hex in the response and in decimal in the
receipt text (or the reverse), and gateways carry a setting just for this. Comparing the strings
as given then matches receipts to *other* messages whose id happens to look like the converted
one. So each receipt is looked up under keys: the id normalised (upper case, no leading zeros),
in the form the SMSC is known to use, or in every plausible form while that is not known yet
(`auto`), in which case a receipt whose forms name two different submissions is ambiguous and
counted, never attributed by guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

FORMS: Final = ("same", "decimal", "hex")
"""How an SMSC's receipts write the id its submit_sm_resp gave: `same` as given, `decimal` (the
response is hex, the receipt decimal), `hex` (the response is decimal, the receipt hex); `auto`
(the setting `receipt_ids`) means not known yet: every form is tried."""

_HEX: Final = re.compile(r"[0-9A-Fa-f]+")
_DECIMAL: Final = re.compile(r"[0-9]+")
_MAX_DIGITS: Final = 40
"""Longer ids are compared as given: no SMSC numbers its messages beyond 2**128."""


def normalise(message_id: str) -> str:
    """The comparable form of an id: upper case, no leading zeros (`000a1f` is `A1F`, `000` is
    empty); the index on deliveries computes the same, `ltrim(upper(message_id), '0')`."""
    return message_id.upper().lstrip("0")


def converted(message_id: str, form: str) -> str | None:
    """The normalised id a submit_sm_resp gave, for an id written in a receipt in `form`:
    `decimal` reads a decimal receipt id as the hex of the response; `hex` the reverse."""
    text = message_id.strip()
    if not text or len(text) > _MAX_DIGITS:
        return None
    if form == "decimal" and _DECIMAL.fullmatch(text):
        return normalise(format(int(text), "X"))
    if form == "hex" and _HEX.fullmatch(text):
        return normalise(str(int(text, 16)))
    return None


def keys(ids: Iterable[str | None], form: str) -> list[str]:
    """The normalised submission ids a receipt naming `ids` (its TLV id, its text id) may answer,
    for an SMSC whose receipts write ids in `form`; under `auto` every plausible form."""
    found: list[str] = []
    forms = FORMS if form == "auto" else (form,)
    for message_id in ids:
        if not message_id:
            continue
        for each in forms:
            key = normalise(message_id) if each == "same" else converted(message_id, each)
            if key is not None and key not in found:
                found.append(key)
    return found


def forms_of(key: str, ids: Iterable[str | None]) -> set[str]:
    """The forms under which a receipt naming `ids` gives `key`: the evidence of an SMSC's form."""
    return {
        form
        for form in FORMS
        for message_id in ids
        if message_id and key in keys([message_id], form)
    }
