"""One started sync `Guard` per process, for the WSGI adapters (Flask, Django).

A WSGI server may import the application once and fork workers from it (`gunicorn
--preload`): a guard connected before the fork would share its sockets with every worker.
So the guard is made on first use in each process, never inherited; its lock is renewed in
a forked child (a lock held by another thread at fork time would otherwise stay held
forever); and it is closed when the process exits. Every thread of the process (gthread
workers) shares it: the sync face is thread-safe.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Any

from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.client_address import lower_headers
from guard_core._shared.policy.request_model import RequestInfo, built
from guard_core.models import SecurityConfig
from guard_core_sync.guard import Guard
from guard_core_sync.request_check import RequestCheck


class ProcessGuard:
    """Makes, starts and closes this process's `Guard` and `RequestCheck`."""

    def __init__(
        self,
        config: SecurityConfig | None = None,
        settings: CheckSettings | None = None,
        *,
        guard_factory: Callable[[], Guard] | None = None,
        on_start: Callable[[Guard], None] | None = None,
    ) -> None:
        if guard_factory is not None and config is not None:
            raise TypeError("give either config or guard_factory, not both")
        self.config = config or SecurityConfig()
        self.settings = settings or CheckSettings()
        self._factory = guard_factory or (lambda: Guard(self.config))
        self._on_start = on_start
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._guard: Guard | None = None
        self._check: RequestCheck | None = None
        os.register_at_fork(after_in_child=self._after_fork)
        atexit.register(self.close)

    def check(self) -> RequestCheck:
        """This process's request check (its guard made and started on first use)."""
        current = self._check
        if current is not None and self._pid == os.getpid():
            return current
        with self._lock:
            if self._check is None or self._pid != os.getpid():
                guard = self._factory()
                guard.start()
                if self._on_start is not None:
                    self._on_start(guard)
                self._guard, self._check = guard, RequestCheck(guard, self.settings)
                self._pid = os.getpid()
            return self._check

    @property
    def guard(self) -> Guard:
        """This process's guard (made and started on first use)."""
        return self.check().guard

    def close(self) -> None:
        """Close this process's guard; the next use starts a new one."""
        with self._lock:
            guard, self._guard, self._check = self._guard, None, None
            owned = self._pid == os.getpid()
            self._pid = None
        if guard is not None and owned:
            guard.close()

    def _after_fork(self) -> None:
        # the parent's guard is not ours: forget it (without closing the parent's sockets)
        self._lock = threading.Lock()
        self._guard = self._check = None
        self._pid = None


def environ_headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request headers of a WSGI environ, with lower-case names."""
    pairs = []
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            pairs.append((name[5:].replace("_", "-"), str(value)))
        elif name in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            pairs.append((name.replace("_", "-"), str(value)))
    return lower_headers(pairs)


def environ_request(
    environ: dict[str, Any],
    *,
    route: str | None,
    rule: Any = None,
    user: str | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> RequestInfo:
    """The request check's view of a WSGI environ (Flask's `request.environ`, Django's
    `request.META`); `headers`: its `environ_headers`, when the caller has them already."""
    peer = environ.get("REMOTE_ADDR")
    return built(
        RequestInfo,
        peer=str(peer) if peer else None,
        method=str(environ.get("REQUEST_METHOD", "GET")),
        path=_wsgi_text(environ.get("PATH_INFO", "/")) or "/",
        query=_wsgi_text(environ.get("QUERY_STRING", "")),
        headers=environ_headers(environ) if headers is None else headers,
        route=route,
        rule=rule,
        user=user,
        body=body,
    )


def _wsgi_text(value: object) -> str:
    # WSGI strings are bytes decoded as latin-1 (PEP 3333): give back the UTF-8 text
    text = str(value)
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text
