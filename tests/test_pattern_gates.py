"""The gates of the built-in attack patterns: sound (every match passes its gate) and the
scan with them finds what each pattern finds on its own."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
import re2
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from guard_core._shared.policy.attack_patterns import (
    BUILTIN_GATES,
    BUILTIN_PATTERNS,
    CONFIRMED_ALONE,
    AttackPattern,
    _encode,
    _PatternSet,
    compile_custom,
)
from guard_core._shared.policy.builtin_patterns import CUSTOM
from guard_core._shared.policy.pattern_gates import (
    Gate,
    gate_of,
    keys_of,
    passes,
    present_bytes,
    residue_of,
)
from tests.test_attack_patterns import ATTACKS, BENIGN

GATED = [(p, g) for p, g in zip(BUILTIN_PATTERNS, BUILTIN_GATES, strict=True) if g is not None]
PIECES = [attack for attacks in ATTACKS.values() for attack in attacks] + BENIGN


@pytest.mark.parametrize(
    ("pattern", "gate"),
    [
        (r"<\s*script", {b"<"}),
        (r"\{\{x", {b"{{"}),
        (r"<%=?[^%]*%>", {b"<%"}),
        (r"-{3}", {b"--"}),
        (r"=\s*\\\\host", {b"\\\\"}),
        # two repetitions of an alternation with one lone-byte branch: `..` or another branch
        (r"(?:\.|%2e){2}/", {b"..", b"%2"}),
        # two lone-byte branches: `.,` is a match, so no doubled byte is required
        (r"(?:\.|,){2}", {b".", b","}),
        (r"[0-9]+=", {b"="}),
        (r"\d", {bytes([b]) for b in b"0123456789"}),
        (r"(?:%00|\x00)", {b"%00", b"\x00"}),
        (r"((<))", {b"<"}),  # nested groups
        (r"<+?x", {b"<"}),  # a lazy repeat
        (r"a{,2}<", {b"<"}),  # a repeat to Python, text to RE2: `<` is in every match of both
    ],
)
def test_gates_read_off_the_syntax(pattern: str, gate: set[bytes]) -> None:
    assert gate_of(pattern) == frozenset(gate)


@pytest.mark.parametrize(
    "pattern",
    [
        "script",  # letters: case folding (U+212A is a `k`) makes no byte certain
        "a{2}",
        "x|<",  # one branch needs nothing fixed
        r"<?x",  # optional
        r"[^<]+",  # negated class
        r"[\w<]",  # a class with a category other than \d
        r" {2}x",  # white space is too common to tell anything
        r"\bé\b",  # non-ASCII
        r"[[:punct:]]",  # RE2's own syntax, which Python's parser reads otherwise
        r"(",  # Python's parser refuses it
        r"(?:\.|%2e|a){2}",  # a branch with nothing fixed: no doubled byte either
        r"(?:|<)",  # an empty branch
    ],
)
def test_patterns_with_nothing_certain_have_no_gate(pattern: str) -> None:
    assert gate_of(pattern) is None


def test_most_builtins_that_the_filter_cannot_sift_are_gated() -> None:
    empty = _PatternSet(())
    assert empty._filter is not None
    always = empty._filter.Match(b"x", potential=True) or []
    assert always, "the filter sifts every pattern: the gates are not needed"
    assert all(BUILTIN_GATES[i] is not None for i in always)


def test_custom_patterns_get_no_gate() -> None:
    """Their syntax may be RE2's own, which Python's parser reads otherwise."""
    patterns = _PatternSet((AttackPattern("[[:punct:]]x", CUSTOM, compile_custom("[[:punct:]]x")),))
    assert patterns._gates[-1] is None and patterns._keys[-1] is None
    assert [m.pattern for m in patterns.scan(b"!x")] == ["[[:punct:]]x"]


def test_a_pattern_its_gate_refuses_is_not_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    patterns = _PatternSet(())
    assert patterns._filter is not None
    data = b"plain words, no marks at all"
    candidates = patterns._filter.Match(data, potential=True) or []
    assert candidates  # the filter hands on the patterns it cannot sift
    searched: list[int] = []
    regexes = list(patterns._regexes)
    for i, regex in enumerate(regexes):
        regexes[i] = _Counting(regex, i, searched)  # type: ignore[call-overload]
    monkeypatch.setattr(patterns, "_regexes", tuple(regexes))
    assert patterns.scan(data) == ()
    assert set(searched) < set(candidates)  # the gated ones were not searched


class _Counting:
    def __init__(self, regex: Any, index: int, searched: list[int]) -> None:
        self.regex, self.index, self.searched = regex, index, searched

    def search(self, data: bytes) -> Any:
        self.searched.append(self.index)
        return self.regex.search(data)


def test_more_than_confirmed_alone_candidates_are_confirmed_by_the_filter() -> None:
    patterns = _PatternSet(())
    data = _encode(" ".join(PIECES))
    assert patterns._filter is not None
    assert len(patterns._filter.Match(data, potential=True) or []) > CONFIRMED_ALONE
    expected = [p.pattern for p in patterns.patterns if p.regex.search(data) is not None]
    assert [m.pattern for m in patterns.scan(data)] == expected


#: What a gate byte may be replaced by in a match: nothing, look-alikes and case partners of
#: ASCII letters, NUL, a lone surrogate, a letter, and every ASCII punctuation mark.
_REPLACEMENTS = [
    "",
    " ",
    "x",
    "\u212a",
    "\u017f",
    "\uff1c",
    "\uff07",
    "\u02bc",
    "\x00",
    "\ud800",
    *string.punctuation,
]


@pytest.mark.parametrize(("pattern", "gate"), GATED, ids=[p.pattern[:40] for p, _ in GATED])
def test_matches_with_their_gate_bytes_replaced_still_pass_when_they_match(
    pattern: AttackPattern, gate: Gate
) -> None:
    """The other way round from generated strings: take known matches, replace each byte a
    gate piece holds; whatever RE2 still matches must pass the gate."""
    assert gate is not None
    gate_bytes = {chr(b) for piece in gate for b in piece}
    tried = 0
    for text in PIECES:
        if pattern.regex.search(_encode(text)) is None:
            continue
        for i, char in enumerate(text):
            if char not in gate_bytes:
                continue
            for other in _REPLACEMENTS:
                mutated = text[:i] + other + text[i + 1 :]
                data = _encode(mutated)
                tried += 1
                if pattern.regex.search(data) is not None:
                    assert passes(gate, data), (pattern.pattern, mutated)
    assert tried or not any(pattern.regex.search(_encode(t)) for t in PIECES)


def test_passes_needs_a_whole_piece() -> None:
    gate = frozenset({b"..", b"%2"})
    assert passes(gate, b"a/../b")
    assert passes(gate, b"%2E%2e")
    assert not passes(gate, b"a.b.c 2%")
    assert not passes(gate, b"")
    assert passes(None, b"")
    assert keys_of(gate) == frozenset(b"%.")  # the least common byte of each piece
    assert present_bytes(b"Ab c\t.K\xc3\xa9") == frozenset(b".")
    # the residue joins bytes that were apart: a piece found there is looked for in the data
    assert residue_of(b"a. b.") == b".."
    assert not passes(gate, b"a. b.", residue_of(b"a. b."))
    assert passes(gate, b"a.. b", residue_of(b"a.. b"))


def _sound(pattern: AttackPattern, gate: Gate, text: str) -> None:
    data = _encode(text)
    assume(pattern.regex.search(data) is not None)
    assert passes(gate, data), f"{pattern.pattern!r} matches {text!r}, whose bytes fail {gate!r}"


@pytest.mark.parametrize(("pattern", "gate"), GATED, ids=[p.pattern[:40] for p, _ in GATED])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_match_passes_the_gate(
    pattern: AttackPattern, gate: Gate, data: st.DataObject
) -> None:
    """Strings generated from the pattern itself (ASCII classes: RE2's `\\w` and `\\s` are
    ASCII, Python's are not), in random surroundings: those RE2 matches must pass the gate."""
    core = data.draw(
        st.from_regex(re.compile(pattern.pattern, re.IGNORECASE | re.ASCII), fullmatch=True)
    )
    text = data.draw(st.text(max_size=8)) + core + data.draw(st.text(max_size=8))
    _sound(pattern, gate, text)


@pytest.mark.parametrize(("pattern", "gate"), GATED, ids=[p.pattern[:40] for p, _ in GATED])
def test_known_attacks_pass_the_gates(pattern: AttackPattern, gate: Gate) -> None:
    for text in PIECES:
        data = _encode(text)
        if pattern.regex.search(data) is not None:
            assert passes(gate, data), (pattern.pattern, text)


def test_the_generated_strings_would_catch_a_wrong_gate() -> None:
    """The check above can fail: a gate made too strict is refuted by generated strings."""
    pattern = next(p for p, _ in GATED if p.pattern.startswith("<%"))
    wrong: Gate = frozenset({b"<%="})  # `<% x %>` matches without `=`
    found: list[str] = []

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(re.compile(pattern.pattern, re.IGNORECASE | re.ASCII), fullmatch=True))
    def probe(text: str) -> None:
        if pattern.regex.search(_encode(text)) and not passes(wrong, _encode(text)):
            found.append(text)

    probe()
    assert found


_CUSTOM = (AttackPattern("<%", CUSTOM, compile_custom("<%")),)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(PIECES),
            st.text(alphabet="{}<>%$#@;&|`'\"()=.,-/\\*+ \n0123456789abcxyzé", max_size=12),
            st.text(max_size=6),
        ),
        max_size=8,
    ).map("".join)
)
def test_the_scan_finds_what_each_pattern_finds(text: str) -> None:
    patterns = _PatternSet(_CUSTOM)
    data = _encode(text)
    expected = [p.pattern for p in patterns.patterns if p.regex.search(data) is not None]
    assert [m.pattern for m in patterns.scan(data)] == expected


def test_gates_use_only_bytes_no_case_folding_changes() -> None:
    for _, gate in GATED:
        assert gate is not None
        for piece in gate:
            assert piece and all(b < 0x80 and not chr(b).isalpha() for b in piece), piece
            assert not re.search(rb"\s", piece), piece
    # the reason: RE2's case folding makes a letter match non-ASCII bytes
    assert re2.compile("(?i)k").search("\u212a".encode()) is not None


def test_replacing_gate_bytes_would_catch_a_wrong_gate() -> None:
    """The check above can fail: a quote pattern given only `'` is refuted by `"`."""
    pattern = next(p for p, _ in GATED if p.pattern.startswith("['"))
    with pytest.raises(AssertionError):
        test_matches_with_their_gate_bytes_replaced_still_pass_when_they_match(
            pattern, frozenset({b"'"})
        )
