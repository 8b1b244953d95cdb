"""Security-header presets for common application pages.

The default Content-Security-Policy (`default-src 'self'`, see `security_headers.DEFAULT_CSP`)
blocks what FastAPI's interactive documentation loads: Swagger UI and ReDoc come from a CDN
and start with an inline script. `fastapi_docs_overrides()` loosens the policy on the
documentation pages only, through `path_overrides`, so the API itself keeps the strict one:

    await guard.headers.configure(path_overrides=fastapi_docs_overrides())
"""

from __future__ import annotations

from collections.abc import Iterable

#: The sources FastAPI's `/docs` (Swagger UI) and `/redoc` pages load.
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_FAVICON_HOST = "https://fastapi.tiangolo.com"

FASTAPI_DOCS_CSP = "; ".join(
    (
        "base-uri 'self'",
        "default-src 'self'",
        f"font-src 'self' https://fonts.gstatic.com {DOCS_CDN}",
        "frame-ancestors 'none'",
        f"img-src 'self' data: {DOCS_FAVICON_HOST} {DOCS_CDN}",
        "object-src 'none'",
        f"script-src 'self' 'unsafe-inline' {DOCS_CDN}",
        f"style-src 'self' 'unsafe-inline' {DOCS_CDN} https://fonts.googleapis.com",
        "worker-src 'self' blob:",
    )
)


def fastapi_docs_overrides(
    paths: Iterable[str] = ("/docs", "/redoc", "/docs/oauth2-redirect"),
) -> dict[str, dict[str, str]]:
    """`path_overrides` for `SecurityHeadersManager.configure()`: a CSP that lets FastAPI's
    documentation pages load, on those paths only."""
    return {path: {"Content-Security-Policy": FASTAPI_DOCS_CSP} for path in paths}
