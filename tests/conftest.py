"""Session-wide fixtures shared by both faces: the real redis-server and the anyio backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from guard_core.testing import LocalRedisServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedisServer]:
    """One real redis-server on a free 127.0.0.1 port for the whole session."""
    with LocalRedisServer() as server:
        yield server
