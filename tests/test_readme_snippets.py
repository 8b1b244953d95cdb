"""The README's "protect an app in under 10 lines" snippets run as written (Redis URL aside)."""

from __future__ import annotations

import re
import uuid
import warnings
from pathlib import Path
from typing import Any

from guard_core.testing import LocalRedisServer

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Protecting a web application"


def snippets() -> list[str]:
    text = README.read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run_snippet(marker: str, redis_server: LocalRedisServer) -> dict[str, Any]:
    (code,) = [s for s in snippets() if marker in s]
    assert len(code.strip().splitlines()) <= 10
    code = code.replace("redis://localhost:6379/0", redis_server.url)
    code = code.replace(
        'SecurityConfig(redis_url="',
        f'SecurityConfig(redis_prefix="{uuid.uuid4().hex}:", redis_url="',
    )
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_fastapi_snippet(redis_server: LocalRedisServer) -> None:
    with warnings.catch_warnings():  # Starlette's notice about its test client's HTTP library
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = run_snippet("FastAPI()", redis_server)["app"]

    @app.get("/")  # type: ignore[untyped-decorator]  # the snippet's app is untyped here
    async def index() -> dict[str, str]:
        return {"ok": "yes"}

    with TestClient(app, client=("203.0.113.90", 1)) as client:
        assert client.get("/?q=%3Cscript%3E").status_code == 403
        response = client.get("/")
    assert response.status_code == 200 and response.headers["x-frame-options"] == "DENY"


def test_flask_snippet(redis_server: LocalRedisServer) -> None:
    namespace = run_snippet("Flask(__name__)", redis_server)
    app = namespace["app"]
    app.add_url_rule("/", "index", lambda: {"ok": "yes"})
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "203.0.113.91"
    assert client.get("/?q=%3Cscript%3E").status_code == 403
    assert client.get("/").headers["X-Frame-Options"] == "DENY"
    namespace["guard"].close()
