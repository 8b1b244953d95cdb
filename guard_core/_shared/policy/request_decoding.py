"""Request text as attack-pattern detection should see it.

Pure (no I/O). Payloads arrive percent- or plus-encoded (`q=%3Cscript%3E`,
`id=1%27%20OR%20%271%27%3D%271`) and sometimes encoded twice to slip past a single decode.
Detection looks at the raw text and at its decodings, applied at most twice: deeper
nesting is not unwrapped (it would let one request cost unbounded work, and no browser or
server decodes three times either).
"""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus

#: Decodings applied at most.
MAX_DECODINGS = 2


def decoded_variants(text: str, *, plus_is_space: bool = True) -> tuple[str, ...]:
    """`text`, then each distinct decoding of it, at most `MAX_DECODINGS` deep."""
    decode = unquote_plus if plus_is_space else unquote
    variants = [text]
    current = text
    for _ in range(MAX_DECODINGS):
        if "%" not in current and not (plus_is_space and "+" in current):
            break
        decoded = decode(current, errors="replace")
        if decoded == current:
            break
        variants.append(decoded)
        current = decoded
    return tuple(variants)


def scan_texts(path: str, query: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The distinct texts to scan for one request: path (no plus decoding: `+` is a plus in
    a path), query string, and `extra` (chosen header values), each with its decodings."""
    texts: dict[str, None] = {}
    for variant in decoded_variants(path, plus_is_space=False):
        texts[variant] = None
    for value in (query, *extra):
        if value:
            for variant in decoded_variants(value):
                texts[variant] = None
    return tuple(texts)
