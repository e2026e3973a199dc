"""The regular expressions of a numbering plan, read for what a fast path may skip (pure).

phonenumbers describes each plan with patterns over digits:
`(?:6(?:[0-24-8]\\d|3[0-8])|7[3-9]\\d)\\d{6}` is (most of) France's mobile range. Two
questions about such a pattern let `msisdn` decide once for a whole block of numbers what
phonenumbers would decide for each of them:

- its *free tail*: how many trailing digits of a match may be any digit without changing
  whether a string matches (6 above: the verdict depends on the first digits only);
- whether some match *may start* with a given prefix (`836...` cannot be a mobile above).

Both answers are safe approximations: the free tail is never longer than the truth and a prefix
that may start a match is never said not to. A pattern written with anything but digits, `\\d`,
character classes, groups, alternation and repeats is read as one that constrains every digit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class _Chars:
    chars: frozenset[str]


@dataclass(frozen=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Alt:
    branches: tuple[_Node, ...]


@dataclass(frozen=True)
class _Repeat:
    item: _Node
    least: int
    most: int | None


_Node = _Chars | _Seq | _Alt | _Repeat


class _Unsupported(ValueError):
    """Syntax this reader does not know: the pattern is taken as constraining every digit."""


@dataclass(frozen=True)
class DigitPattern:
    """A numbering-plan pattern as a tree, with its free tail and widest match worked out."""

    tree: _Node | None
    """None: a pattern this module cannot read (no digit is free, any prefix may start it)."""
    free_tail: int
    max_width: int | None
    """The longest match (None: unbounded or unknown)."""

    def may_start(self, prefix: str) -> bool:
        """Whether some string matching the whole pattern may begin with `prefix`."""
        if self.tree is None:
            return True
        return len(prefix) in _ends(self.tree, prefix, frozenset({0}))


@cache
def digit_pattern(pattern: str) -> DigitPattern:
    """The pattern read once (phonenumbers has a few thousand of them; a plan uses a dozen)."""
    try:
        tree, end = _alternation(pattern, 0)
        if end != len(pattern):
            raise _Unsupported(pattern)
    except _Unsupported:
        return DigitPattern(None, 0, None)
    return DigitPattern(tree, _tail(tree), _widths(tree)[1])


# --- reading the syntax --------------------------------------------------------------------------


def _alternation(src: str, i: int) -> tuple[_Node, int]:
    branches = []
    branch, i = _sequence(src, i)
    branches.append(branch)
    while i < len(src) and src[i] == "|":
        branch, i = _sequence(src, i + 1)
        branches.append(branch)
    return (branches[0] if len(branches) == 1 else _Alt(tuple(branches))), i


def _sequence(src: str, i: int) -> tuple[_Node, int]:
    items: list[_Node] = []
    while i < len(src) and src[i] not in "|)":
        atom, i = _atom(src, i)
        atom, i = _quantified(src, i, atom)
        items.append(atom)
    return (items[0] if len(items) == 1 else _Seq(tuple(items))), i


def _atom(src: str, i: int) -> tuple[_Node, int]:
    char = src[i]
    if char in DIGITS:
        return _Chars(frozenset(char)), i + 1
    if src.startswith("\\d", i):
        return _Chars(DIGITS), i + 2
    if char == "[":
        return _char_class(src, i + 1)
    if char == "(":
        i += 3 if src.startswith("(?:", i) else 1
        inner, i = _alternation(src, i)
        if i >= len(src) or src[i] != ")":
            raise _Unsupported(src)
        return inner, i + 1
    raise _Unsupported(src)


def _char_class(src: str, i: int) -> tuple[_Node, int]:
    chars: set[str] = set()
    negated = src.startswith("^", i)
    i += negated
    while i < len(src) and src[i] != "]":
        if src.startswith("\\d", i):
            chars |= DIGITS
            i += 2
        elif src[i] in DIGITS and src.startswith("-", i + 1) and src[i + 2 : i + 3].isdigit():
            chars |= {str(d) for d in range(int(src[i]), int(src[i + 2]) + 1)}
            i += 3
        elif src[i] in DIGITS:
            chars.add(src[i])
            i += 1
        else:
            raise _Unsupported(src)
    if i >= len(src):
        raise _Unsupported(src)
    return _Chars(frozenset(DIGITS - chars if negated else chars)), i + 1


def _quantified(src: str, i: int, atom: _Node) -> tuple[_Node, int]:
    if i >= len(src) or src[i] not in "{?*+":
        return atom, i
    if src[i] != "{":
        least, most = {"?": (0, 1), "*": (0, None), "+": (1, None)}[src[i]]
        i += 1
    else:
        close = src.find("}", i)
        if close < 0:
            raise _Unsupported(src)
        least, most = _bounds(src[i + 1 : close], src)
        i = close + 1
    if i < len(src) and src[i] in "?+":  # lazy or possessive: not in numbering plans
        raise _Unsupported(src)
    return _Repeat(atom, least, most), i


def _bounds(text: str, src: str) -> tuple[int, int | None]:
    low, comma, high = text.partition(",")
    if not low.isdigit() or not (high.isdigit() or high == ""):
        raise _Unsupported(src)
    if not comma:
        return int(low), int(low)
    return int(low), (int(high) if high else None)


# --- what the tree says --------------------------------------------------------------------------


def _free(node: _Node) -> bool:
    """Whether the node accepts every digit string of every length it accepts."""
    match node:
        case _Chars(chars):
            return chars >= DIGITS
        case _Seq(items):
            return all(map(_free, items))
        case _Alt(branches):
            return all(map(_free, branches))
        case _Repeat(item, _, _):
            return _free(item)


def _widths(node: _Node) -> tuple[int, int | None]:
    """The shortest and the longest match (None: unbounded)."""
    match node:
        case _Chars():
            return 1, 1
        case _Seq(items):
            return _spans([_widths(item) for item in items], sum, sum)
        case _Alt(branches):
            return _spans([_widths(branch) for branch in branches], min, max)
        case _Repeat(item, least, most):
            low, high = _widths(item)
            return low * least, (None if most is None or high is None else high * most)


def _spans(
    spans: list[tuple[int, int | None]],
    lowest: Callable[[list[int]], int],
    highest: Callable[[list[int]], int],
) -> tuple[int, int | None]:
    highs = [high for _, high in spans if high is not None]
    return lowest([low for low, _ in spans]), (highest(highs) if len(highs) == len(spans) else None)


def _tail(node: _Node) -> int:
    """How many trailing characters of any match may change (among digits) without changing
    whether the string matches. Never more than the node's shortest match."""
    if _free(node):
        return _widths(node)[0]
    match node:
        case _Seq(items):
            tail = 0
            for item in reversed(items):
                if not _free(item):
                    return tail + _tail(item)
                tail += _widths(item)[0]
            return tail
        case _Alt(branches):
            return min(map(_tail, branches))
        case _Repeat(item, least, _):
            return _tail(item) if least >= 1 else 0
        case _:
            return 0


def _ends(node: _Node, text: str, starts: frozenset[int]) -> frozenset[int]:
    """Where matches of `node` begun at `starts` may end within `text`; len(text) also stands
    for "ran past the end of text", from where any continuation is possible."""
    end = len(text)
    match node:
        case _Chars(chars):
            return frozenset(min(i + 1, end) for i in starts if i == end or text[i] in chars)
        case _Seq(items):
            for item in items:
                starts = _ends(item, text, starts)
            return starts
        case _Alt(branches):
            return frozenset().union(*(_ends(branch, text, starts) for branch in branches))
        case _Repeat(item, least, most):
            return _repeated_ends(item, least, most, text, starts)


def _repeated_ends(
    item: _Node, least: int, most: int | None, text: str, starts: frozenset[int]
) -> frozenset[int]:
    reached: frozenset[int] = frozenset()
    current, count = starts, 0
    while True:
        if count >= least:
            if current <= reached:
                return reached  # nothing new: further repetitions add nothing
            reached |= current
        if (most is not None and count == most) or not current:
            return reached
        current, count = _ends(item, text, current), count + 1
