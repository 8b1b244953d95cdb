"""Logger names, in one place that both faces import: every logger is `guard_core.<area>`.

Face code takes its logger from here rather than spelling the name, so that no logger name
is a string the generator could take for a module path of the async face.
"""

from __future__ import annotations

import logging

ROOT = "guard_core"


def get_logger(area: str) -> logging.Logger:
    """The logger of `area` (`guard_core.redis`, `guard_core.guard`, ...), the same in both
    faces."""
    return logging.getLogger(f"{ROOT}.{area}")
