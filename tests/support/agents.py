"""Agent handlers for event tests, async and sync."""

from __future__ import annotations

from guard_core.models import SecurityEvent


class AsyncRecordingAgent:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[SecurityEvent] = []
        self.fail = fail

    async def send_event(self, event: SecurityEvent) -> None:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("agent is down")

    def actions(self) -> list[str]:
        return [event.action_taken for event in self.events]


class RecordingAgent:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[SecurityEvent] = []
        self.fail = fail

    def send_event(self, event: SecurityEvent) -> None:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("agent is down")

    def actions(self) -> list[str]:
        return [event.action_taken for event in self.events]
