"""Framework adapters, each a thin layer over the request check.

- `guard_core.adapters.asgi`: ASGI middleware for Starlette and FastAPI (async face).
- `guard_core.adapters.flask`: a Flask extension (sync face, `guard_core_sync`).
- `guard_core.adapters.django`: a Django middleware, `AppConfig` and `manage.py guard`
  (sync face).

The sync face (`guard_core_sync`) is generated from the async source and holds no framework
code, so the glue for the sync frameworks is written by hand here and imports
`guard_core_sync`. Frameworks are optional extras: `pip install
'guard-core-redis[starlette]'`, `[flask]` or `[django]`; importing an adapter without its
framework fails with ImportError.
"""
