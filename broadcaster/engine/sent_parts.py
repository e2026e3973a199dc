"""The parts this process had accepted, by message id: receipts matched in memory.

A receipt names the id the SMSC gave its part in submit_sm_resp. The process that submitted
the part heard that answer and knows what the id stands for (broadcast, recipient, part, when
it was submitted, the recipient's home département), so a receipt coming back on its binds is
matched here, and the database stores it without looking its part up: that lookup and the
home département's were a third of a receipt's cost in PostgreSQL (issue 22, a million
receipts a minute). Anything not found here (a part another process sent, or sent before a
restart, an SMSC whose id form is still being found out, a part forgotten for room) is
matched by the database as before: the same answer, found more slowly.

The same answer: the id as the database compares it (`receipt_ids.normalise`), the same SMSC,
and for an id given twice (an SMSC that restarted and reuses ids) the later submission, as the
database's lookup picks the latest before the receipt.

Bounded: two generations of `capacity // 2` parts at most; a part is forgotten at its final
receipt, or with its generation (a receipt that comes after that is matched by the database).

What memory cannot see: another process's submissions. An SMSC that restarts may give an id
again, to a part another worker sends, whose receipt may come back here: the database gives it
to the latest submission of any process. So memory answers only for parts submitted less than
`MAX_AGE_S` ago, and forgets an SMSC's parts when a bind to it is lost (a restart drops it);
anything else is the database's to match.
"""

from __future__ import annotations

MAX_AGE_S = 60.0
"""Receipts later than this after their part's submission are matched by the database (most
come within seconds; a part remembered longer may share its id with a later one elsewhere)."""
CAPACITY = 100_000
"""Parts remembered at most (~220 bytes each: ~22 MB): at 50,000 accepted a second, receipts
up to two seconds late are matched in memory; later ones, by the database."""


Sent = tuple[str, int, int, int, float, str | None]
"""What a message id stands for, in the process that submitted the part: (smsc, broadcast_id,
msisdn, part, submitted_at: seconds since 1970 as `deliveries.submitted_at` records it,
departement: the recipient's home as its chunk was read by, None for a chunk of numbers present
in an area, whose home the database looks up). A plain tuple: one is made per part accepted."""


class SentParts:
    """Accepted parts by normalised message id, for `take` when their receipt comes back."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._half = max(1, capacity // 2)
        self._current: dict[str, Sent] = {}
        self._previous: dict[str, Sent] = {}

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def add(self, key: str, sent: Sent) -> None:
        """Remember an accepted part under its normalised id (a later one with the same id
        replaces it, as the database's lookup would pick the later, in either generation: left
        in the previous one, the earlier part took the copy of a receipt the later one's final
        receipt had taken from the current one)."""
        current = self._current
        current[key] = sent
        if self._previous:
            self._previous.pop(key, None)
        if len(current) >= self._half:
            self._previous, self._current = current, {}

    def forget(self, smsc: str) -> None:
        """Forget the parts sent to `smsc` (a bind to it was lost: it may have restarted and
        give their ids again)."""
        for generation in (self._current, self._previous):
            for key in [k for k, sent in generation.items() if sent[0] == smsc]:
                del generation[key]

    def take(
        self, key: str, smsc: str, final: bool, now: float, submitted_by: float | None = None
    ) -> Sent | None:
        """The part a receipt of `smsc` naming `key` and received at `now` (seconds since 1970)
        answers, if remembered and submitted less than `MAX_AGE_S` before (and not after
        `submitted_by`: a receipt received a while ago, whose id a later part may have been
        given again, as the database's lookup bounds it); forgotten when the receipt is
        `final` (no other is expected; a duplicate finds it in the database)."""
        where = self._current
        sent = where.get(key)
        if sent is None:
            where = self._previous
            sent = where.get(key)
            if sent is None:
                return None
        if sent[0] != smsc:  # another SMSC's id: the database sorts it out
            return None
        if submitted_by is not None and sent[4] > submitted_by:  # a later part's: the database
            return None
        if now - sent[4] > MAX_AGE_S:
            del where[key]
            return None
        if final:
            del where[key]
        return sent
