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


class StateWarning:
    """One WARNING when something starts failing and one when it works again, never one
    per call (an agent handler that rejects events, say). Not locked: a warning more or
    less in a race is harmless."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        #: Whether the last attempt failed.
        self.failing = False

    def failed(self, message: str, *args: object) -> None:
        """An attempt failed: warn if the one before did not."""
        if not self.failing:
            self.failing = True
            self.logger.warning(message, *args)

    def worked(self, message: str, *args: object) -> None:
        """An attempt worked: warn if the one before failed."""
        if self.failing:
            self.failing = False
            self.logger.warning(message, *args)
