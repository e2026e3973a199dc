"""The questions a session asks of its scenario, one small `Fault` per misbehaviour.

In the spirit of Jasmin's test SMSC (one small class per misbehaviour), each knob of
`MockConfig` that acts on a connection is a `Fault` overriding only the questions it has an
answer to; the session asks them all through `Faults`, which asks, in the order given, only the
pieces that override each question. The session keeps the protocol; the pieces keep their state
(one set per connection) and draw from the server's seeded RNG in the order PDUs are processed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Drop:
    """Instead of processing a submit_sm: stop reading, and close or stall."""

    reason: str
    """Why (the connection's close_reason, or the log of a stall)."""
    stall: bool = False
    """Stop reading for a while (`MockConfig.stall_seconds`), then process it; else close."""
    after_answers: bool = False
    """Close once the answers still delayed are written (else at once)."""


class Fault:
    """One misbehaviour; each question's default answer is to behave."""

    delays_answers = False
    """True for a piece whose `answer_delay` is not always 0 (answers then wait in a queue)."""

    def drop(self, submits: int) -> Drop | None:
        """Do I drop the connection (or stall) instead of processing submit_sm number
        `submits` of this connection?"""
        return None

    def status(self, now: float, unanswered: int) -> int:
        """What command_status do I answer to this valid part, received at loop time `now`
        while `unanswered` submit_sm of the bind wait for their answer (0: no objection)?"""
        return 0

    def reply(self, sequence: int, status: int, message_id: str) -> bytes | None:
        """What octets answer this submit_sm instead of its submit_sm_resp (None: the
        submit_sm_resp)?"""
        return None

    def after_answer(self, submits: int, bind: str) -> bytes | None:
        """What octets do I write after the answer to submit_sm number `submits` of `bind`?"""
        return None

    def answer_delay(self) -> float:
        """How many seconds does this answer wait before it is written?"""
        return 0.0

    def read_pause(self) -> float:
        """How many seconds do I stop reading after each read?"""
        return 0.0


def _answers(piece: Fault, question: str) -> bool:
    """Whether `piece` overrides `question` (a method of `Fault`)."""
    return getattr(type(piece), question) is not getattr(Fault, question)


class Faults:
    """Every piece of a connection's scenario, asked as one."""

    __slots__ = (
        "_after_answer",
        "_answer_delay",
        "_drop",
        "_read_pause",
        "_reply",
        "_status",
        "delays_answers",
        "pieces",
    )

    def __init__(self, pieces: Iterable[Fault]) -> None:
        self.pieces = tuple(pieces)
        self.delays_answers = any(piece.delays_answers for piece in self.pieces)
        self._drop: list[Callable[[int], Drop | None]] = self._asking("drop")
        self._status: list[Callable[[float, int], int]] = self._asking("status")
        self._reply: list[Callable[[int, int, str], bytes | None]] = self._asking("reply")
        self._after_answer: list[Callable[[int, str], bytes | None]] = self._asking("after_answer")
        self._answer_delay: list[Callable[[], float]] = self._asking("answer_delay")
        self._read_pause: list[Callable[[], float]] = self._asking("read_pause")

    def _asking(self, question: str) -> list[Any]:
        """The bound methods answering `question`, of the pieces that override it (the
        others' answer is the default: not worth a call per PDU)."""
        return [getattr(piece, question) for piece in self.pieces if _answers(piece, question)]

    def drop(self, submits: int) -> Drop | None:
        """The first piece's drop, if any."""
        for ask in self._drop:
            drop = ask(submits)
            if drop is not None:
                return drop
        return None

    def status(self, now: float, unanswered: int) -> int:
        """The first piece's objection (0: none); later pieces are not asked."""
        for ask in self._status:
            status = ask(now, unanswered)
            if status:
                return status
        return 0

    def reply(self, sequence: int, status: int, message_id: str) -> bytes | None:
        for ask in self._reply:
            octets = ask(sequence, status, message_id)
            if octets is not None:
                return octets
        return None

    def after_answer(self, submits: int, bind: str) -> bytes | None:
        for ask in self._after_answer:
            octets = ask(submits, bind)
            if octets is not None:
                return octets
        return None

    def answer_delay(self) -> float:
        return sum(ask() for ask in self._answer_delay)

    def read_pause(self) -> float:
        return sum(ask() for ask in self._read_pause)
