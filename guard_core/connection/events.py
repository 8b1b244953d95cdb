"""`EventSink`: where every security event goes, the agent handler, with one latch.

The manager's Redis events (connection, outage, failed operations) and the request check's
decisions share it: secrets are scrubbed and control characters escaped in the reason and
in text metadata, and an agent that rejects events is warned of once, then once when it
accepts them again, never once per event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from guard_core._shared.logs import StateWarning, get_logger
from guard_core._shared.redaction import Redactor, escape_control
from guard_core.models import SecurityEvent


class EventSink:
    """Sends events to the agent handler that `handler()` names (none: `None`), never
    raising."""

    def __init__(self, redactor: Redactor, handler: Callable[[], Any]) -> None:
        self._redactor = redactor
        self._handler = handler
        self._state = StateWarning(get_logger("events"))

    def clean(self, text: str) -> str:
        """`text` with secrets scrubbed and control characters escaped."""
        return escape_control(self._redactor.scrub(text))

    async def send(self, event: SecurityEvent) -> None:
        """Offer `event` to the handler; a failure is logged once per change of state, and
        the event dropped."""
        handler = self._handler()
        if handler is None:
            return
        event = dataclasses.replace(
            event,
            reason=self.clean(event.reason),
            metadata={
                name: self.clean(value) if isinstance(value, str) else value
                for name, value in event.metadata.items()
            },
        )
        try:
            await handler.send_event(event)
        except Exception as exc:
            self._state.failed(
                "Agent handler rejected an event; events are dropped until it recovers: %s",
                self.clean(f"{type(exc).__name__}: {exc}"),
            )
            return
        self._state.worked("Agent handler accepts events again")

    async def redis_event(
        self, event_type: str, action_taken: str, reason: str, **metadata: Any
    ) -> None:
        """A Redis event (connection, outage, failed operation) from the manager."""
        await self.send(SecurityEvent(event_type, action_taken, reason, metadata=metadata))
