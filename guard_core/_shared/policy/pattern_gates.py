"""Cheap necessary conditions for the built-in attack patterns that RE2's filter cannot sift.

Pure (no I/O). RE2's filter skips a pattern when a literal piece it needs (an atom) is absent
from the content. Patterns made of punctuation and classes (`['"]\\s*;\\s*--`, `\\{\\{`,
`<%`) have no atom long enough, so the filter hands them on for every text, and confirming
each one costs a full RE2 search of the text. A gate is what such a pattern needs instead:
byte strings of which every match holds at least one. When none is in the content the
pattern cannot match there and is not run.

A gate is read off the pattern's syntax tree as Python's own regular-expression parser reads
it. Where that reading differs from RE2's for the built-in patterns, it is the weaker one
(Python's `\\s` also takes `\\x0b`; `x{,2}` is a repeat to Python, text to RE2).
`tests/test_pattern_gates.py` checks each gate on strings generated from
its pattern and on matches whose gate bytes were replaced. Only bytes that no case folding
can change are used: ASCII that is not a letter (under RE2's Unicode case folding, `k` also
matches U+212A), and not white space either.
Custom patterns get no gate: their syntax may be RE2's own (`[[:alpha:]]`, `\\pL`), which
Python's parser reads otherwise.
"""

from __future__ import annotations

import importlib
import re
import warnings
from typing import Any

# Python's own parser (private, under `re` since 3.11); without it no pattern is gated
try:
    _c: Any = importlib.import_module("re._constants")
    _p: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - every pattern is then confirmed by RE2
    _c = _p = None

#: A gate: byte strings, at least one of which is in every match; None: no such strings known.
Gate = frozenset[bytes] | None
#: Most single bytes a gate taken from a character class may hold.
MAX_CLASS_BYTES = 12
#: Bytes frequent in prose, JSON values and URLs: a gate of them is a weak one.
_COMMON = frozenset(b"0123456789.,-_/:")


def _fixed(byte: int) -> bool:
    """Whether `byte` is ASCII, no letter (so that no case folding can change it) and no
    white space (too frequent to tell anything)."""
    return byte < 0x80 and not (
        0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A or byte in b" \t\n\r\x0b\x0c"
    )


def _cost(gate: frozenset[bytes]) -> int:
    return sum(1 if len(piece) > 1 else 10 if piece[0] in _COMMON else 3 for piece in gate)


def _best(gates: list[frozenset[bytes]]) -> Gate:
    return min(gates, key=_cost) if gates else None


def _class_gate(items: Any) -> Gate:
    found: set[int] = set()
    for op, value in items:
        if op is _c.LITERAL:
            found.add(value)
        elif op is _c.RANGE:
            low, high = value
            if high - low >= MAX_CLASS_BYTES:
                return None
            found.update(range(low, high + 1))
        elif op is _c.CATEGORY and value is _c.CATEGORY_DIGIT:
            found.update(b"0123456789")
        else:  # NEGATE, another category (\w, \s), ...
            return None
    if not found or len(found) > MAX_CLASS_BYTES or not all(_fixed(b) for b in found):
        return None
    return frozenset(bytes([b]) for b in found)


def _unwrapped(items: Any) -> Any:
    """A sequence that is one group, as the sequence inside it (groups in groups too)."""
    while len(items) == 1 and items[0][0] is _c.SUBPATTERN:
        items = items[0][1][-1]
    return items


def _single_literal(items: Any) -> int | None:
    """The byte of a sequence that is exactly one literal fixed byte, else None."""
    items = _unwrapped(items)
    if len(items) == 1 and items[0][0] is _c.LITERAL and _fixed(items[0][1]):
        return int(items[0][1])
    return None


def _repeat_gate(low: int, sub: Any) -> Gate:
    if low < 1:
        return None
    gate = _sequence_gate(sub)
    if low < 2:
        return gate
    # Two repetitions in a row: a lone byte `c` repeated is `cc`; in an alternation with
    # exactly one lone-byte branch, two repetitions are `cc` or hold another branch's gate.
    byte = _single_literal(sub)
    if byte is not None:
        return frozenset({bytes([byte, byte])})
    items = _unwrapped(sub)
    if len(items) == 1 and items[0][0] is _c.BRANCH:
        bytes_of = [(_single_literal(branch), branch) for branch in items[0][1][1]]
        lone = [byte for byte, _ in bytes_of if byte is not None]
        if len(lone) == 1:
            pieces: set[bytes] = {bytes([lone[0], lone[0]])}
            for byte, branch in bytes_of:
                if byte is not None:
                    continue
                other = _sequence_gate(branch)
                if other is None:
                    return gate
                pieces |= other
            better = frozenset(pieces)
            return better if gate is None or _cost(better) < _cost(gate) else gate
    return gate


def _item_gate(op: Any, value: Any) -> Gate:
    if op is _c.LITERAL:
        return frozenset({bytes([value])}) if _fixed(value) else None
    if op is _c.IN:
        return _class_gate(value)
    if op is _c.SUBPATTERN:
        return _sequence_gate(value[-1])
    if op is _c.BRANCH:
        pieces: set[bytes] = set()
        for branch in value[1]:
            gate = _sequence_gate(branch)
            if gate is None:
                return None
            pieces |= gate
        return frozenset(pieces)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
        low, _high, sub = value
        return _repeat_gate(low, sub)
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _sequence_gate(value)
    return None  # ANY, NOT_LITERAL, AT, ASSERT, GROUPREF, ...: nothing required


def _sequence_gate(items: Any) -> Gate:
    """Every element of a sequence is in the match: the best gate of any of them, runs of
    literal fixed bytes taken as one string."""
    gates: list[frozenset[bytes]] = []
    run = bytearray()
    for op, value in items:
        if op is _c.LITERAL and _fixed(value):
            run.append(value)
            continue
        if run:
            gates.append(frozenset({bytes(run)}))
            run = bytearray()
        gate = _item_gate(op, value)
        if gate is not None:
            gates.append(gate)
    if run:
        gates.append(frozenset({bytes(run)}))
    return _best(gates)


def gate_of(pattern: str) -> Gate:
    """The gate of a pattern (None when none is known, or Python's parser refuses it)."""
    if _p is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tree = _p.parse(pattern, re.IGNORECASE)
    except (re.error, Warning, RecursionError, ValueError, OverflowError):
        return None
    gate = _sequence_gate(list(tree))
    if gate is not None and (not gate or b"" in gate):
        return None
    return gate


#: Bytes no gate holds: letters, white space and non-ASCII (dropped before the bytes of
#: content are listed).
_UNGATED = bytes(b for b in range(256) if not _fixed(b))


def keys_of(gate: frozenset[bytes]) -> frozenset[int]:
    """One byte of each piece of `gate`, its least common: content without any of them
    cannot pass (a quick refusal)."""
    return frozenset(min(piece, key=lambda byte: byte in _COMMON) for piece in gate)


def residue_of(data: bytes) -> bytes:
    """`data` less every byte no gate holds. A piece found in `data` is in it too (its bytes
    are all kept, still in a row), so a piece absent from it is absent from `data`; it is
    short for text, so looking there first is cheap."""
    return data.translate(None, _UNGATED)


def present_bytes(data: bytes) -> frozenset[int]:
    """The bytes of `data` a gate may need (one pass, then each gate is a few set lookups)."""
    return frozenset(residue_of(data))


def passes(gate: Gate, data: bytes, residue: bytes | None = None) -> bool:
    """Whether `data` may hold a match of the pattern of `gate` (`residue`: its
    `residue_of`, when already known)."""
    if gate is None:
        return True
    if residue is None:
        residue = residue_of(data)
    return any(piece in residue and (len(piece) == 1 or piece in data) for piece in gate)
