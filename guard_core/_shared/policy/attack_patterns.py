"""Attack patterns compiled, custom-pattern validation, scanning, and the custom-pattern cache.

The built-in sources are in `builtin_patterns`.

Pure (no I/O): both faces' `SusPatternsManager` keep their custom patterns here and scan
with `scan`. Every pattern, built-in or custom, is compiled once, case-insensitively, with
RE2 (`google-re2`): matching takes time linear in the content length whatever the pattern,
so `(a+)+$` is as cheap as `abc`. RE2 has no backreferences and no look-around; a custom
pattern using them is refused with a ValueError that says so. Content is scanned in one pass
over every pattern at once (an RE2 filter), up to `scan_length()` characters: at least
`MIN_SCAN_LENGTH` (1 MiB of characters), more when `pattern_max_content_length` says so.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import re2

from guard_core._shared.validation import parse_json

from .builtin_patterns import BUILTIN_SOURCES, CUSTOM
from .pattern_gates import Gate, gate_of, keys_of, passes, residue_of

#: Characters of content always scanned (1 MiB of characters), whatever the configuration:
#: an attacker must not be able to hide a payload behind padding. A larger
#: `pattern_max_content_length` scans further; content past the bound is not scanned.
MIN_SCAN_LENGTH = 1 << 20
#: Memory RE2 may use for one pattern (larger custom patterns are refused).
PATTERN_MAX_MEM = 8 << 20


def _options(max_mem: int) -> re2.Options:
    """Every pattern is case-insensitive (a custom one may opt out with `(?-i:...)`)."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.max_mem = max_mem
    return options


@dataclass(frozen=True)
class AttackPattern:
    """One compiled pattern and the category it reports."""

    pattern: str
    category: str
    regex: re2._Regexp[str]

    def matches(self, text: str) -> bool:
        """Whether the pattern matches anywhere in `text` (lone surrogates included)."""
        return self.regex.search(_encode(text)) is not None


@dataclass(frozen=True)
class PatternMatch:
    """A pattern that matched scanned content, and its category (`"custom"` for custom ones)."""

    pattern: str
    category: str


@dataclass(frozen=True)
class PatternList:
    """Pattern strings in effect: built-in ones and custom ones (sorted), kept apart."""

    builtin: tuple[str, ...]
    custom: tuple[str, ...]


BUILTIN_PATTERNS: tuple[AttackPattern, ...] = tuple(
    AttackPattern(pattern, category, re2.compile(pattern, _options(PATTERN_MAX_MEM)))
    for category, pattern in BUILTIN_SOURCES
)
#: Category names of the built-in patterns.
BUILTIN_CATEGORIES: frozenset[str] = frozenset(p.category for p in BUILTIN_PATTERNS)
#: What each built-in pattern needs in the content (see `pattern_gates`).
BUILTIN_GATES: tuple[Gate, ...] = tuple(gate_of(p.pattern) for p in BUILTIN_PATTERNS)


def validate_pattern_text(pattern: object) -> str:
    """`pattern` as a non-blank, UTF-8 encodable str (TypeError/ValueError otherwise)."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, not {type(pattern).__name__}")
    if not pattern.strip():
        raise ValueError("pattern must not be empty or blank")
    try:
        pattern.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"pattern is not encodable as UTF-8: {exc.reason}") from None
    return pattern


def _unsupported_feature(reason: str, text: str) -> str | None:
    """The RE2-unsupported feature an RE2 error `reason` is about, if any."""
    if any(f"perl operator: {marker}" in reason for marker in ("(?=", "(?!", "(?<=", "(?<!")):
        return "look-around ((?=...), (?!...), (?<=...), (?<!...))"
    backreference = any(f"escape sequence: \\{digit}" in reason for digit in "123456789")
    if backreference or ("perl operator: (?P" in reason and "(?P=" in text):
        return "a backreference (\\1, (?P=name))"
    return None


def compile_custom(pattern: object) -> re2._Regexp[str]:
    """Validate and compile a custom pattern with RE2; ValueError if RE2 cannot take it
    (invalid, too large, or using backreferences or look-around)."""
    text = validate_pattern_text(pattern)
    try:
        return re2.compile(text, _options(PATTERN_MAX_MEM))
    except re2.error as exc:
        shown = text if len(text) <= 80 else text[:80] + "..."
        reason = exc.args[0].decode("utf-8", "replace") if exc.args else "rejected"
        feature = _unsupported_feature(reason, text)
        if feature is not None:
            raise ValueError(
                f"regular expression {shown!r} uses {feature}, which patterns do not "
                "support: they run on RE2, in time linear in the content"
            ) from None
        raise ValueError(f"invalid regular expression {shown!r}: {reason} (RE2 syntax)") from None


def scan_length(max_length: int) -> int:
    """Characters scanned for a configured `pattern_max_content_length`."""
    return max(max_length, MIN_SCAN_LENGTH)


def _encode(text: str) -> bytes:
    # lone surrogates pass as bytes that are no valid UTF-8: they match no literal
    return text.encode("utf-8", "surrogatepass")


#: Most candidates of the filter confirmed one by one (more: all of them by the filter).
CONFIRMED_ALONE = 4
#: Clean texts remembered per pattern set, and the longest one remembered (in characters).
CLEAN_TEXTS_KEPT = 4096
CLEAN_TEXT_MAX = 512


class _PatternSet:
    """Built-in patterns and some custom ones in one RE2 filter: a single pass over the
    content with a set of the literal pieces every pattern needs (its atoms), then each
    pattern whose atoms were all seen (or that has none) is run on its own to confirm,
    unless it is a built-in one whose gate (`pattern_gates`) the content does not pass.

    A plain RE2 set of the whole patterns is faster on clean content but took seconds per
    MiB of content dense with attack fragments, with its memory growing to its bound; the
    filter stays within tens of milliseconds per MiB (see benchmarks/bench_patterns.py).
    """

    def __init__(self, custom: Sequence[AttackPattern]) -> None:
        self.patterns = BUILTIN_PATTERNS + tuple(custom)
        self._regexes = tuple(item.regex for item in self.patterns)
        self._gates = BUILTIN_GATES + (None,) * len(custom)
        self._keys = tuple(None if gate is None else keys_of(gate) for gate in self._gates)
        #: Short texts found clean by these very patterns (paths and queries repeat): a new
        #: custom pattern makes a new set, so a text is never taken as clean by patterns
        #: that did not scan it. Bounded: emptied when full.
        self._clean: dict[str, None] = {}
        self._filter: re2.Filter | None = re2.Filter()
        try:
            for item in self.patterns:
                self._filter.Add(item.pattern, _options(PATTERN_MAX_MEM))
            self._filter.Compile()
        except re2.error:  # not expected: each pattern compiled alone; search them one by one
            self._filter = None

    def scan(self, data: bytes) -> tuple[PatternMatch, ...]:
        if self._filter is None:
            hits = [i for i, item in enumerate(self.patterns) if item.regex.search(data)]
        else:
            hits = self._filtered(self._filter, data)
        return tuple(
            PatternMatch(self.patterns[i].pattern, self.patterns[i].category) for i in hits
        )

    def _filtered(self, sieve: re2.Filter, data: bytes) -> list[int]:
        """The filter's candidates for `data` less those their gate rules out, each confirmed;
        when more than `CONFIRMED_ALONE` are left, the filter confirms them all (in C++: each
        confirmation costs a third of one called from here)."""
        regexes, gates, keys, left = self._regexes, self._gates, self._keys, []
        residue, present = b"", None
        for i in sorted(sieve.Match(data, potential=True) or ()):
            key = keys[i]
            if key is not None:
                if present is None:
                    residue = residue_of(data)
                    present = frozenset(residue)
                if present.isdisjoint(key) or not passes(gates[i], data, residue):
                    continue  # cannot match: no piece that every match holds is there
            left.append(i)
            if len(left) > CONFIRMED_ALONE:
                return sorted(sieve.Match(data) or ())
        return [i for i in left if regexes[i].search(data) is not None]

    def scan_text(self, text: str) -> tuple[PatternMatch, ...]:
        """`scan` of `text`, answered from the clean texts when it is one of them."""
        clean = self._clean
        if text in clean:
            return ()
        found = self.scan(_encode(text))
        if not found and len(text) <= CLEAN_TEXT_MAX:
            if len(clean) >= CLEAN_TEXTS_KEPT:
                clean.clear()
            clean[text] = None
        return found


_SETS: dict[tuple[str, ...], _PatternSet] = {}
_SETS_LOCK = threading.Lock()
_SETS_KEPT = 16


def _pattern_set(custom: Sequence[AttackPattern]) -> _PatternSet:
    key = tuple(p.pattern for p in custom)
    found = _SETS.get(key)
    if found is None:
        found = _PatternSet(custom)
        with _SETS_LOCK:
            if len(_SETS) >= _SETS_KEPT:
                _SETS.clear()
            _SETS[key] = found
    return found


def scan(
    content: str, custom: Iterable[AttackPattern], max_length: int
) -> tuple[PatternMatch, ...]:
    """The patterns (built-in first, then `custom`) matching the first
    `scan_length(max_length)` characters of `content`, found in one pass over the content."""
    return _pattern_set(tuple(custom)).scan_text(content[: scan_length(max_length)])


def encode_pattern_list(patterns: Iterable[str]) -> str:
    """The shared form of a custom pattern list: a sorted JSON array of strings."""
    return json.dumps(sorted(set(patterns)), ensure_ascii=False)


def decode_pattern_list(raw: object) -> list[str] | None:
    """The patterns of a stored value (`None` stored: none), or `None` if it is malformed."""
    if raw is None:
        return []
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(raw, str):
        return None
    try:
        value = parse_json(raw, "stored pattern list")
    except ValueError:
        return None
    if value == {}:  # how Lua's cjson writes an empty table
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return value


class CustomPatternCache:
    """Custom patterns in effect on one instance: the last list read from Redis, with the
    changes made here that Redis has not taken (yet) applied on top.

    Each pattern is compiled once. Thread-safe; nothing here waits, so the async face uses
    it as it is. `active()` is a lock-free read of an immutable tuple (the hot path).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: set[str] = set()
        # pattern -> True (added here) / False (removed here), not yet written to Redis
        self._pending: dict[str, bool] = {}
        self._added_here: set[str] = set()
        self._compiled: dict[str, re2._Regexp[str]] = {}
        self._invalid: set[str] = set()
        self._generation = 0
        # reads from Redis begun so far, and the latest begun of those installed
        self._reads_begun = 0
        self._read_installed = 0
        self._active: tuple[AttackPattern, ...] = ()

    # -- reads ----------------------------------------------------------------------------

    def active(self) -> tuple[AttackPattern, ...]:
        """The compiled custom patterns in effect, sorted by pattern."""
        return self._active

    def patterns(self) -> tuple[str, ...]:
        return tuple(p.pattern for p in self._active)

    def begin_read(self) -> tuple[int, int]:
        """Take before reading the list from Redis; give to `load_shared`. A read is stale
        when a local change came after it began, or when a read begun later was installed
        first (reads run at once: a request's and the background follower's)."""
        with self._lock:
            self._reads_begun += 1
            return (self._generation, self._reads_begun)

    @property
    def added_here(self) -> frozenset[str]:
        """Patterns added through this instance and not removed through it since."""
        with self._lock:
            return frozenset(self._added_here)

    @property
    def has_pending(self) -> bool:
        """Whether some change waits for Redis (a lock-free read for the hot path)."""
        return bool(self._pending)

    @property
    def pending(self) -> Mapping[str, bool]:
        """Changes Redis has not taken: pattern -> True (added) or False (removed)."""
        with self._lock:
            return dict(self._pending)

    # -- changes ----------------------------------------------------------------------------

    def load_shared(
        self, patterns: Iterable[str], read: tuple[int, int], *, forget_lifted: bool = True
    ) -> tuple[str, ...] | None:
        """Take `patterns` as Redis's list, unless the `read` (from `begin_read`) is stale
        (then `None`: it is dropped).

        With `forget_lifted`, patterns added here that the list no longer holds are taken
        as removed elsewhere, so that a replay after a restart does not bring them back
        (callers pass False when Redis may just have lost its data).

        Returns the patterns skipped because they do not compile (each reported once).
        """
        wanted = set(patterns)
        with self._lock:
            known = set(self._compiled) | self._invalid
        compiled: dict[str, re2._Regexp[str]] = {}
        invalid: list[str] = []
        for pattern in wanted - known:
            try:
                compiled[pattern] = compile_custom(pattern)
            except (TypeError, ValueError):
                invalid.append(pattern)
        with self._lock:
            generation, number = read
            if generation != self._generation or number < self._read_installed:
                return None
            self._read_installed = number
            self._compiled.update(compiled)
            self._invalid.update(invalid)
            self._shared = {p for p in wanted if p in self._compiled}
            if forget_lifted:
                self._added_here &= wanted | {p for p, added in self._pending.items() if added}
            self._rebuild()
        return tuple(sorted(invalid))

    def add(self, pattern: str, regex: re2._Regexp[str], *, shared: bool) -> None:
        """Record an addition made here; `shared`: Redis took it."""
        with self._lock:
            self._generation += 1
            self._compiled[pattern] = regex
            self._invalid.discard(pattern)
            self._added_here.add(pattern)
            if shared:
                self._shared.add(pattern)
                self._pending.pop(pattern, None)
            else:
                self._pending[pattern] = True
            self._rebuild()

    def remove(self, pattern: str, *, shared: bool) -> bool:
        """Record a removal made here (`shared`: Redis took it); whether it was in effect."""
        with self._lock:
            was_active = pattern in self._effective()
            self._generation += 1
            self._added_here.discard(pattern)
            if shared:
                self._shared.discard(pattern)
                self._pending.pop(pattern, None)
            elif pattern in self._shared:
                self._pending[pattern] = False
            else:
                self._pending.pop(pattern, None)
            self._rebuild()
            return was_active

    # -- internals (lock held) --------------------------------------------------------------

    def _effective(self) -> set[str]:
        effective = set(self._shared)
        for pattern, added in self._pending.items():
            if added:
                effective.add(pattern)
            else:
                effective.discard(pattern)
        return effective

    def _rebuild(self) -> None:
        effective = self._effective()
        for pattern in set(self._compiled) - effective - self._shared:
            del self._compiled[pattern]
        self._active = tuple(
            AttackPattern(pattern, CUSTOM, self._compiled[pattern]) for pattern in sorted(effective)
        )
