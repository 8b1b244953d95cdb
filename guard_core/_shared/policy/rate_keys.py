"""Window keys of rate limits: `rate:{identifier}[:{endpoint}]`, built and remembered.

Building a key validates the identifier and endpoint and canonicalises the identifier (an
IP address in any of its forms is one client: `::ffff:192.0.2.1` is `192.0.2.1`), which
costs more than counting a hit; `KeyMemo` remembers the keys already built.
"""

from __future__ import annotations

from guard_core._shared.keys import rate_window_key as window_key

__all__ = ["KeyMemo", "window_key"]


class KeyMemo:
    """Window keys already worked out, per identifier (and endpoint): validating and
    canonicalising an identifier (parsing it as an IP address) costs more than counting.

    Only keys of valid text are remembered, so bad input is still refused on every call.
    Bounded: at `max_keys` entries it starts again empty (a memo of a pure function: what
    it forgets is worked out again). Thread-safe (single dict operations).
    """

    def __init__(self, max_keys: int) -> None:
        self._max_keys = max_keys
        # two maps, so that a tuple given as an identifier never finds a pair's key
        self._plain: dict[str, str] = {}
        self._paired: dict[tuple[str, str], str] = {}
        #: The key of an identifier without endpoint, if remembered (else None).
        self.plain = self._plain.get
        #: The key of an (identifier, endpoint) pair, if remembered (else None).
        self.paired = self._paired.get

    def key(self, identifier: str, endpoint: str) -> str:
        """The key of `identifier` (and `endpoint`), worked out and remembered."""
        key = window_key(identifier, endpoint)  # raises for bad text: nothing remembered
        if len(self) >= self._max_keys:
            self._plain.clear()
            self._paired.clear()
        if endpoint:
            self._paired[(identifier, endpoint)] = key
        else:
            self._plain[identifier] = key
        return key

    def __len__(self) -> int:
        return len(self._plain) + len(self._paired)
