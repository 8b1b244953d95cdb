"""CloudManager in every mode, written once for both faces. No test leaves 127.0.0.1: the
providers are served by `httpx.MockTransport` or by a local HTTP server."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Generator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard_core._shared.policy.ip_ranges import DEFAULT_URLS, parse_aws, parse_azure, parse_gcp
from guard_core.handlers import cloud_handler as cloud_module
from guard_core.handlers.cloud_handler import RETRY_AFTER_FAILURE, CloudManager
from guard_core.handlers.redis_handler import RedisManager
from guard_core.models import SecurityConfig
from guard_core.testing import LocalRedisServer
from tests.support.backends import StateEnv
from tests.support.workers import ASYNC_WORKERS, run_async_workers

pytestmark = pytest.mark.anyio

DATA = Path(__file__).resolve().parent.parent / "data"
AWS_URL = DEFAULT_URLS["AWS"]
GCP_URL = DEFAULT_URLS["GCP"]
AZURE_PAGE_URL = DEFAULT_URLS["Azure"]
AZURE_JSON_URL = (
    "https://download.microsoft.com/download/7/1/d/71d86715-5596-4529-9b13-da13a5de5b63/"
    "ServiceTags_Public_20240115.json"
)
URLS_OF = {"AWS": (AWS_URL,), "GCP": (GCP_URL,), "Azure": (AZURE_PAGE_URL, AZURE_JSON_URL)}
ALL = ("AWS", "GCP", "Azure")


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def aws_body(*cidrs: str) -> bytes:
    entry = {"region": "test-1", "service": "AMAZON", "network_border_group": "test-1"}
    return json.dumps(
        {
            "syncToken": "2",
            "createDate": "2024-02-01-00-00-00",
            "prefixes": [{"ip_prefix": c, **entry} for c in cidrs if ":" not in c],
            "ipv6_prefixes": [{"ipv6_prefix": c, **entry} for c in cidrs if ":" in c],
        }
    ).encode()


class FakeProviders:
    """Serves tests/data at the providers' real URLs and counts the requests per URL."""

    def __init__(self) -> None:
        self.bodies = {
            AWS_URL: read("aws_ip_ranges.json"),
            GCP_URL: read("gcp_cloud.json"),
            AZURE_PAGE_URL: read("azure_download_page.html"),
            AZURE_JSON_URL: read("azure_service_tags.json"),
        }
        self.calls: Counter[str] = Counter()
        #: url -> "status", "timeout", "connect" or "garbage"
        self.failure: dict[str, str] = {}
        self._clients: list[httpx.AsyncClient] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.calls[url] += 1
        mode = self.failure.get(url)
        if mode == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if mode == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if mode == "status":
            return httpx.Response(503, text="Service Unavailable")
        if mode == "garbage":
            return httpx.Response(200, text="<html>maintenance</html>")
        if url not in self.bodies:
            return httpx.Response(404, text="not found")
        return httpx.Response(200, content=self.bodies[url])

    def count(self, provider: str) -> int:
        return sum(self.calls[url] for url in URLS_OF[provider])

    def total(self) -> int:
        return sum(self.calls.values())

    def client(self) -> httpx.AsyncClient:
        made = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
        self._clients.append(made)
        return made

    async def aclose(self) -> None:
        for made in self._clients:
            await made.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def providers() -> AsyncIterator[FakeProviders]:
    fake = FakeProviders()
    yield fake
    await fake.aclose()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The manager's clock, moved by hand (no sleeping)."""
    fake = Clock()
    monkeypatch.setattr(cloud_module, "_now", fake)
    return fake


@pytest.fixture
async def second_redis(
    state_env: StateEnv, request: pytest.FixtureRequest
) -> AsyncIterator[RedisManager]:
    """Another app instance's RedisManager on the same Redis as `state_env`."""
    if not state_env.shared:
        other = RedisManager(state_env.config)
    else:
        backend = request.getfixturevalue("backend_" + state_env.mode)
        other = RedisManager(state_env.config, client_factory=backend.client_factory)
    yield other
    await other.close()


def local_urls(base: str) -> dict[str, str]:
    return {
        "AWS": f"{base}/aws_ip_ranges.json",
        "GCP": f"{base}/gcp_cloud.json",
        "Azure": f"{base}/azure_service_tags.json",
    }


def key_of(provider: str, env: StateEnv | None = None) -> str:
    """The provider's key (in the Cluster layout when `env` is on a Cluster)."""
    if env is not None:
        return env.key("cloud_ranges", provider)
    return f"guard_core:cloud_ranges:{provider}"


# -- lookups ------------------------------------------------------------------------------


async def test_refresh_fetches_each_provider_and_lookups_answer(
    state_env: StateEnv, providers: FakeProviders
) -> None:
    cloud = CloudManager(state_env.config, state_env.redis, http_client=providers.client())
    assert cloud.providers == ALL
    assert await cloud.refresh() == {"AWS": "fetched", "GCP": "fetched", "Azure": "fetched"}
    assert providers.calls[AZURE_PAGE_URL] == providers.calls[AZURE_JSON_URL] == 1
    assert cloud.ranges("AWS") == tuple(parse_aws(read("aws_ip_ranges.json")))
    assert cloud.ranges("GCP") == tuple(parse_gcp(read("gcp_cloud.json")))
    assert cloud.ranges("Azure") == tuple(parse_azure(read("azure_service_tags.json")))
    expected = {
        "198.51.100.7": "AWS",
        "100.64.15.255": "AWS",
        "2001:db8:a000:ff::1": "AWS",
        "::ffff:198.51.100.200": "AWS",
        "203.0.113.5": "GCP",
        "::FFFF:100.72.31.1": "GCP",
        "2001:db8:b00f:ffff::9": "GCP",
        "203.0.113.128": "Azure",
        "100.80.255.255": "Azure",
        "2001:db8:c0ff::1": "Azure",
        "192.0.2.1": None,  # only in the ActionGroup service tag
        "198.51.101.0": None,
        "100.64.16.0": None,
        "2001:db8:d000::1": None,
        "::ffff:192.0.2.77": None,
    }
    for ip, provider in expected.items():
        assert await cloud.provider_of(ip) == provider, ip
        assert await cloud.is_cloud_ip(ip) is (provider is not None), ip
    assert await cloud.is_cloud_ip("198.51.100.7", providers=["GCP", "Azure"]) is False
    assert await cloud.is_cloud_ip("198.51.100.7", providers=("AWS",)) is True
    assert await cloud.is_cloud_ip("203.0.113.5", providers=[]) is False
    assert providers.total() == 4  # lookups on fresh ranges do no I/O


async def test_configured_providers_order_and_other_providers_on_request(
    state_env: StateEnv, providers: FakeProviders
) -> None:
    config = dataclasses.replace(state_env.config, cloud_providers=("GCP",))
    cloud = CloudManager(config, state_env.redis, http_client=providers.client())
    assert await cloud.refresh() == {"GCP": "fetched"}
    assert await cloud.provider_of("198.51.100.7") is None  # AWS is not configured
    assert providers.count("AWS") == 0
    assert await cloud.is_cloud_ip("198.51.100.7", providers=["AWS"]) is True  # loaded lazily
    assert providers.count("AWS") == 1


async def test_lookups_load_lazily_and_refresh_when_stale(
    state_env: StateEnv, providers: FakeProviders, clock: Clock
) -> None:
    config = dataclasses.replace(state_env.config, cloud_ip_refresh_interval=600)
    cloud = CloudManager(config, state_env.redis, http_client=providers.client())
    assert cloud.ranges("AWS") == ()
    assert await cloud.is_cloud_ip("198.51.100.7") is True  # first lookup loads AWS
    assert providers.count("AWS") == 1
    assert providers.count("GCP") == 0  # AWS answered: the others are not needed yet
    assert await cloud.is_cloud_ip("192.0.2.1") is False  # needs every provider
    assert (providers.count("GCP"), providers.count("Azure")) == (1, 2)
    clock.advance(599)
    for _ in range(20):
        assert await cloud.provider_of("203.0.113.200") == "Azure"
    assert providers.total() == 4
    providers.bodies[AWS_URL] = aws_body("192.0.2.0/24", "2001:db8:1::/48")
    clock.advance(2)  # now older than the refresh interval
    assert await cloud.provider_of("192.0.2.1") == "AWS"
    assert await cloud.is_cloud_ip("198.51.100.7") is False  # the new file replaced the old
    assert cloud.ranges("AWS") == ("192.0.2.0/24", "2001:db8:1::/48")
    assert providers.count("AWS") == 2


async def test_refresh_keeps_fresh_ranges_unless_forced(
    state_env: StateEnv, providers: FakeProviders
) -> None:
    cloud = CloudManager(state_env.config, state_env.redis, http_client=providers.client())
    await cloud.refresh(["AWS"])
    assert await cloud.refresh(["AWS"]) == {"AWS": "fresh"}
    assert providers.count("AWS") == 1
    providers.bodies[AWS_URL] = aws_body("192.0.2.0/24")
    assert await cloud.refresh(["AWS"], force=True) == {"AWS": "fetched"}
    assert providers.count("AWS") == 2
    assert await cloud.provider_of("192.0.2.9") == "AWS"


async def test_concurrent_first_lookups_fetch_once(
    state_env: StateEnv, data_server: tuple[str, list[str]]
) -> None:
    # A real local server, so that downloads take time and the callers overlap.
    base, seen = data_server
    config = dataclasses.replace(state_env.config, cloud_ip_urls=local_urls(base))
    cloud = CloudManager(config, state_env.redis)
    answers: list[bool] = []

    async def body(index: int) -> None:
        answers.append(await cloud.is_cloud_ip("2001:db8:c000::1" if index % 2 else "192.0.2.1"))

    await run_async_workers(ASYNC_WORKERS, body)
    assert sorted(set(answers)) == [False, True]
    assert answers.count(True) == ASYNC_WORKERS // 2
    assert sorted(seen) == ["/aws_ip_ranges.json", "/azure_service_tags.json", "/gcp_cloud.json"]


# -- sharing through Redis -------------------------------------------------------------------


async def test_ranges_are_stored_in_redis_with_ttl(
    state_env: StateEnv, providers: FakeProviders
) -> None:
    config = dataclasses.replace(state_env.config, cloud_ip_refresh_interval=900)
    cloud = CloudManager(config, state_env.redis, http_client=providers.client())
    await cloud.refresh()
    if state_env.inspect is None:
        assert await cloud.is_cloud_ip("198.51.100.7") is True  # memory only
        return
    assert sorted(state_env.inspect.keys("guard_core:cloud_ranges:*")) == sorted(
        key_of(p, state_env) for p in ALL
    )
    for provider in ALL:
        stored = json.loads(state_env.inspect.get(key_of(provider, state_env)))
        assert stored["cidrs"] == list(cloud.ranges(provider))
        assert isinstance(stored["fetched_at"], float)
        assert 0 < state_env.inspect.ttl(key_of(provider, state_env)) <= 900


async def test_two_instances_share_through_redis(
    state_env: StateEnv, second_redis: RedisManager, providers: FakeProviders
) -> None:
    first = CloudManager(state_env.config, state_env.redis, http_client=providers.client())
    await first.refresh()
    other_providers = FakeProviders()
    second = CloudManager(state_env.config, second_redis, http_client=other_providers.client())
    outcome = await second.refresh()
    assert await second.provider_of("2001:db8:b000::1") == "GCP"
    assert await second.provider_of("::ffff:100.80.1.1") == "Azure"
    assert await second.is_cloud_ip("198.51.100.1") is True
    if state_env.shared:
        assert outcome == {"AWS": "redis", "GCP": "redis", "Azure": "redis"}
        assert other_providers.total() == 0  # never went to the providers
        for provider in ALL:
            assert second.ranges(provider) == first.ranges(provider)
    else:
        assert outcome == {"AWS": "fetched", "GCP": "fetched", "Azure": "fetched"}
        assert other_providers.total() == 4
    await other_providers.aclose()


async def test_stale_instance_takes_newer_ranges_from_redis(
    state_env: StateEnv, second_redis: RedisManager, providers: FakeProviders, clock: Clock
) -> None:
    config = dataclasses.replace(state_env.config, cloud_ip_refresh_interval=600)
    first = CloudManager(config, state_env.redis, http_client=providers.client())
    second = CloudManager(config, second_redis, http_client=providers.client())
    await first.refresh(["AWS"])
    clock.advance(601)
    providers.bodies[AWS_URL] = aws_body("192.0.2.0/24")
    assert await second.refresh(["AWS"]) == {"AWS": "fetched"}
    assert providers.count("AWS") == 2
    clock.advance(1)
    # The first instance's copy is stale now: it reads the second instance's fetch.
    assert await first.provider_of("192.0.2.50") == "AWS"
    assert providers.count("AWS") == (2 if state_env.shared else 3)


async def test_malformed_value_in_redis_is_replaced(
    state_env: StateEnv, providers: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    if state_env.inspect is not None:
        state_env.inspect.set(key_of("GCP", state_env), "not json", ex=600)
    caplog.set_level(logging.WARNING, logger="guard_core.cloud")
    cloud = CloudManager(state_env.config, state_env.redis, http_client=providers.client())
    assert await cloud.refresh(["GCP"]) == {"GCP": "fetched"}
    assert providers.count("GCP") == 1
    if state_env.inspect is None:
        assert caplog.records == []
        return
    assert "malformed GCP ranges cached in Redis" in caplog.text
    assert json.loads(state_env.inspect.get(key_of("GCP", state_env)))["cidrs"] == list(
        cloud.ranges("GCP")
    )


# -- failures --------------------------------------------------------------------------------


async def test_failed_fetch_keeps_last_good_ranges_and_warns_once(
    state_env: StateEnv, providers: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    cloud = CloudManager(state_env.config, state_env.redis, http_client=providers.client())
    await cloud.refresh()
    good = cloud.ranges("AWS")
    caplog.set_level(logging.DEBUG, logger="guard_core.cloud")
    for mode in ("status", "timeout", "connect", "garbage"):
        providers.failure[AWS_URL] = mode
        assert await cloud.refresh(["AWS"], force=True) == {"AWS": "failed"}, mode
        assert cloud.ranges("AWS") == good
        assert await cloud.provider_of("198.51.100.7") == "AWS"
    providers.failure.pop(AWS_URL)
    providers.bodies[AWS_URL] = aws_body()  # a file listing nothing is malformed too
    assert await cloud.refresh(["AWS"], force=True) == {"AWS": "failed"}
    assert cloud.ranges("AWS") == good
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "AWS" in warnings[0].getMessage() and "503" in warnings[0].getMessage()
    assert "keeping 6 earlier prefixes" in warnings[0].getMessage()
    if state_env.inspect is not None:  # the shared copy is the last good one too
        assert json.loads(state_env.inspect.get(key_of("AWS", state_env)))["cidrs"] == list(good)
    providers.bodies[AWS_URL] = aws_body("192.0.2.0/24")
    assert await cloud.refresh(["AWS"], force=True) == {"AWS": "fetched"}
    assert "AWS cloud ranges fetched again" in caplog.text
    providers.failure[AWS_URL] = "status"
    await cloud.refresh(["AWS"], force=True)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


async def test_failing_provider_is_not_retried_on_every_lookup(
    state_env: StateEnv, providers: FakeProviders, clock: Clock
) -> None:
    providers.failure[GCP_URL] = "timeout"
    cloud = CloudManager(state_env.config, state_env.redis, http_client=providers.client())
    for _ in range(10):
        assert await cloud.is_cloud_ip("203.0.113.5") is False  # GCP unknown so far
    assert providers.count("GCP") == 1
    assert cloud.ranges("GCP") == ()
    clock.advance(RETRY_AFTER_FAILURE + 1)
    providers.failure.clear()
    assert await cloud.provider_of("203.0.113.5") == "GCP"
    assert providers.count("GCP") == 2


async def test_azure_page_without_link_fails_and_direct_json_override_works(
    state_env: StateEnv, providers: FakeProviders
) -> None:
    providers.bodies[AZURE_PAGE_URL] = b"<html><body>This download is no longer available"
    cloud = CloudManager(state_env.config, state_env.redis, http_client=providers.client())
    assert await cloud.refresh(["Azure"]) == {"Azure": "failed"}
    assert providers.calls[AZURE_JSON_URL] == 0
    direct = "https://mirror.test/ServiceTags_Public_20240115.json"
    providers.bodies[direct] = read("azure_service_tags.json")
    config = dataclasses.replace(state_env.config, cloud_ip_urls={"Azure": direct})
    overridden = CloudManager(config, None, http_client=providers.client())
    assert await overridden.refresh(["Azure"]) == {"Azure": "fetched"}
    assert providers.calls[direct] == 1
    assert await overridden.provider_of("100.80.0.1") == "Azure"


# -- Redis failing, absent, disabled -------------------------------------------------------------


async def test_redis_stopped_mid_run(
    private_server: LocalRedisServer,
    private_env: StateEnv,
    providers: FakeProviders,
    clock: Clock,
) -> None:
    config = dataclasses.replace(private_env.config, cloud_ip_refresh_interval=600)
    cloud = CloudManager(config, private_env.redis, http_client=providers.client())
    await cloud.refresh()
    private_server.stop()
    assert await cloud.provider_of("198.51.100.7") == "AWS"  # from memory
    assert await cloud.refresh(["GCP"], force=True) == {"GCP": "fetched"}  # HTTP still works
    clock.advance(601)  # stale: the lookup refreshes without Redis
    providers.bodies[AWS_URL] = aws_body("192.0.2.0/24")
    assert await cloud.provider_of("192.0.2.3") == "AWS"
    assert providers.count("AWS") == 2
    private_server.start()
    assert await cloud.refresh(["AWS"], force=True) == {"AWS": "fetched"}
    assert private_env.inspect is not None
    assert json.loads(private_env.inspect.get(key_of("AWS")))["cidrs"] == ["192.0.2.0/24"]
    other_redis = RedisManager(config)
    other_providers = FakeProviders()
    other = CloudManager(config, other_redis, http_client=other_providers.client())
    assert await other.refresh(["AWS"]) == {"AWS": "redis"}  # shared again by itself
    assert other_providers.total() == 0
    await other_providers.aclose()
    await other_redis.close()


async def test_without_redis_manager(providers: FakeProviders) -> None:
    cloud = CloudManager(SecurityConfig(enable_redis=False), http_client=providers.client())
    assert await cloud.is_cloud_ip("2001:db8:a000::1") is True
    assert await cloud.refresh(["AWS"]) == {"AWS": "fresh"}
    assert providers.count("AWS") == 1


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "error"),
    [
        ("not-an-ip", ValueError),
        ("", ValueError),
        ("198.51.100.0/24", ValueError),
        ("198.51.100", ValueError),
        ("fe80::1%eth0", ValueError),
        (None, TypeError),
        (3325256711, TypeError),
    ],
)
async def test_invalid_addresses_raise_before_any_io(
    state_env: StateEnv, providers: FakeProviders, ip: Any, error: type[Exception]
) -> None:
    cloud = CloudManager(state_env.config, state_env.redis, http_client=providers.client())
    with pytest.raises(error):
        await cloud.is_cloud_ip(ip)
    with pytest.raises(error):
        await cloud.provider_of(ip)
    assert providers.total() == 0


async def test_unknown_providers_raise(state_env: StateEnv, providers: FakeProviders) -> None:
    cloud = CloudManager(state_env.config, state_env.redis, http_client=providers.client())
    with pytest.raises(ValueError, match="unknown cloud provider 'Oracle'"):
        await cloud.is_cloud_ip("198.51.100.7", providers=["AWS", "Oracle"])
    with pytest.raises(ValueError, match="unknown cloud provider 'aws'"):
        await cloud.refresh(["aws"])
    with pytest.raises(TypeError, match="not a str"):
        await cloud.is_cloud_ip("198.51.100.7", providers="AWS")
    with pytest.raises(ValueError, match="unknown cloud provider"):
        cloud.ranges("DigitalOcean")
    assert providers.total() == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"cloud_providers": ("AWS", "DigitalOcean")},
        {"cloud_ip_urls": {"Oracle": "https://example.test/ranges.json"}},
        {"cloud_ip_urls": {"AWS": "ftp://example.test/ranges.json"}},
        {"cloud_ip_urls": {"GCP": "not a url"}},
    ],
)
async def test_invalid_configuration_raises_at_construction(
    state_env: StateEnv, fields: dict[str, Any]
) -> None:
    config = dataclasses.replace(state_env.config, **fields)
    with pytest.raises(ValueError):
        CloudManager(config, state_env.redis)


# -- the manager's own HTTP client, against a local server --------------------------------------


class _DataHandler(SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def data_server() -> Generator[tuple[str, list[str]], None, None]:
    """tests/data over HTTP on 127.0.0.1: (base URL, paths requested)."""
    seen: list[str] = []
    handler = type("Handler", (_DataHandler,), {"requests": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(DATA)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join()


async def test_own_http_client_fetches_from_configured_urls(
    state_env: StateEnv, data_server: tuple[str, list[str]]
) -> None:
    base, seen = data_server
    config = dataclasses.replace(state_env.config, cloud_ip_urls=local_urls(base))
    cloud = CloudManager(config, state_env.redis)
    assert await cloud.refresh() == {"AWS": "fetched", "GCP": "fetched", "Azure": "fetched"}
    assert sorted(seen) == ["/aws_ip_ranges.json", "/azure_service_tags.json", "/gcp_cloud.json"]
    assert await cloud.provider_of("2001:db8:b000::7") == "GCP"
    config = dataclasses.replace(config, cloud_ip_urls={"AWS": f"{base}/missing.json"})
    broken = CloudManager(config, None)
    assert await broken.refresh(["AWS"]) == {"AWS": "failed"}


async def test_downloads_are_bounded_in_size(
    state_env: StateEnv, providers: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = CloudManager(state_env.config, state_env.redis, http_client=providers.client())
    await cloud.refresh(["AWS"])
    good = cloud.ranges("AWS")
    monkeypatch.setattr(cloud_module, "MAX_DOWNLOAD_BYTES", len(providers.bodies[AWS_URL]) - 1)
    assert await cloud.refresh(["AWS"], force=True) == {"AWS": "failed"}
    assert cloud.ranges("AWS") == good
    monkeypatch.setattr(cloud_module, "MAX_DOWNLOAD_BYTES", len(providers.bodies[AWS_URL]))
    assert await cloud.refresh(["AWS"], force=True) == {"AWS": "fetched"}
