"""The one Django configuration of the in-process Django tests.

Django's settings are configured once per process, by whichever test module is imported
first. So they hold only what every module shares; each module overrides `ROOT_URLCONF`
(and `MIDDLEWARE` where it differs) for its own tests, and no test depends on the order in
which pytest imported the modules.
"""

from __future__ import annotations

import django
from django.conf import settings

from guard_core.models import SecurityConfig

GUARD = "guard_core.adapters.django.GuardMiddleware"


def configure() -> None:
    """Configure Django for the tests, once (later calls do nothing)."""
    if settings.configured:
        return
    settings.configure(
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["guard_core.adapters.django.GuardCoreConfig"],
        MIDDLEWARE=[GUARD],
        GUARD_CORE={"config": SecurityConfig(enable_redis=False)},
    )
    django.setup()
