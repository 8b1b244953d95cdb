"""`Invalidations`: changes of shared state pushed to every instance through Redis pub/sub.

After each write Redis takes (a ban or lift of an address or network, a custom pattern
change, a stored document such as the header configuration), the storage layer publishes
one message on the channel `{prefix}invalidations:changes`: the sending instance's random
id, the change's topic and its target (applied at once where it was made, so the sender
skips its own message). A bulk write (`bans import`) sends one message per batch, whose
target is `BATCH_MARK` and the batch's targets, space-separated (`batch_members` reads it).
Every instance subscribes in the background (started and stopped with the store's flusher
by `Guard`) and, on each message, drops what it caches about that topic: the ban verdicts
(`guard_core._shared.storage.verdict_cache`), and through listeners the network-ban index,
the custom patterns and the header configuration, which are then re-read on next use.

Pub/sub rather than `CLIENT TRACKING ... BCAST`: tracking pushes arrive on the connection
that enabled it, which in redis-py means taking a connection out of the pool and reading
RESP3 pushes by hand in both faces; tracking also invalidates on every key of a prefix
(sliding windows included) while only a few state changes matter here; and a message names
the change, so each subsystem drops only its own cache.

Trust: the ban verdicts answer only while the subscription is confirmed. When it drops
(killed, Redis restarted or unreachable), the verdicts are emptied and withdrawn, and
callers read Redis again, until a new subscription is confirmed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from guard_core._shared.concurrency import AsyncTicker, async_cancel_requested, async_sleep
from guard_core._shared.keys import CHANNEL as CHANNEL_KEY
from guard_core._shared.keys import INVALIDATIONS
from guard_core._shared.logs import get_logger
from guard_core._shared.storage.verdict_cache import VerdictCache
from guard_core.exceptions import GuardRedisError

from ..connection.manager import RedisManager

#: Seconds between attempts to subscribe again after the subscription dropped.
RETRY_DELAY = 0.05
#: Seconds a read of the subscription waits for a message before checking for `stop()`.
READ_TIMEOUT = 0.05
#: Starts the target of a message that names a batch of changed targets (a bulk write).
BATCH_MARK = "*"

Listener = Callable[[str], None]


def batch_members(target: str) -> list[str] | None:
    """The targets a batch message names (None: `target` names one target, or none)."""
    if not target.startswith(BATCH_MARK + " "):
        return None
    return target.split()[1:]


#: Brings a local copy up to date after a change of `target` ("" after the subscription was
#: confirmed: anything may have changed); an `async def` (a plain `def` in the sync face),
#: awaited by the subscription's task, never by a request.
Follower = Callable[[str], Any]


class Invalidations:
    """Publishes changes made here and applies those made anywhere (this instance too)."""

    def __init__(self, redis: RedisManager | None, ban_topic: str) -> None:
        self.logger = get_logger("invalidation")
        self._redis = redis
        self._ban_topic = ban_topic
        self.verdicts = VerdictCache()
        self._listeners: dict[str, list[Listener]] = {}
        self._followers: dict[str, list[Follower]] = {}
        #: Whether followers run (False for a tool that serves no requests, the CLI: it
        #: keeps no copies and joins no instances).
        self.following = True
        self._ticker = AsyncTicker()
        self._running = False
        self._lost_reported = False
        #: Subscriptions confirmed, and caught up after (tests wait for a new one after a drop).
        self.subscriptions = 0
        # subscriptions confirmed (before their catch-up), and attempts ended
        self._confirmed = 0
        self._attempts = 0
        self._lock = threading.Lock()
        self._origin = uuid.uuid4().hex

    @property
    def channel(self) -> str | None:
        redis = self._redis
        return None if redis is None else redis.full_key(INVALIDATIONS, CHANNEL_KEY)

    @property
    def subscribed(self) -> bool:
        return self.verdicts.trusted

    def marks(self) -> tuple[int, int] | None:
        """Redis's continuity as the manager sees it: recoveries and restarts so far (None
        when the circuit breaker is open: then nothing cached may be trusted)."""
        redis = self._redis
        if redis is None or not redis.available:
            return None
        return (redis.recoveries, redis.restarts)

    def on(self, topic: str, listener: Listener) -> None:
        """Call `listener(target)` on each change of `topic`, and with "" when changes may
        have gone unseen (the subscription dropped)."""
        with self._lock:
            self._listeners.setdefault(topic, []).append(listener)

    def follow(self, topic: str, follower: Follower) -> None:
        """Await `follower(target)` in the subscription's task after each change of `topic`
        made elsewhere, and `follower("")` each time the subscription is confirmed."""
        with self._lock:
            self._followers.setdefault(topic, []).append(follower)

    async def catch_up(self) -> None:
        """Await every follower with "" (at start, and after a subscription is confirmed)."""
        await self._follow("", "")

    async def _follow(self, topic: str, target: str) -> None:
        """Await the followers of `topic` with `target` (topic "": every follower)."""
        if not self.following:
            return
        with self._lock:
            if topic:
                followers = list(self._followers.get(topic, ()))
            else:
                followers = [item for group in self._followers.values() for item in group]
        for follower in followers:
            await self._run(follower, target)

    async def _run(self, follower: Follower, target: str) -> None:
        try:
            await follower(target)
        except GuardRedisError:
            pass  # Redis failed meanwhile: the next confirmed subscription catches up
        except Exception:
            if not async_cancel_requested():
                self.logger.exception("Following a change failed")

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> bool:
        """Subscribe in the background (at once); whether a subscription is kept. It holds
        one pooled connection: with a pool of one there is none to spare, and ban checks then
        always read Redis."""
        if self._redis is None:
            return False
        if self._redis.config.redis_max_connections < 2:
            self.logger.info("No invalidation subscription: redis_max_connections is 1")
            return False
        self._running = True
        self._ticker.start(self._subscription, RETRY_DELAY)
        self._ticker.wake()  # the first attempt now, not after the retry delay
        return True

    async def start_caught_up(self, timeout: float) -> bool:
        """Subscribe, and return once the subscription is confirmed and its catch-up done:
        then every change published from now on reaches the followers. False when no
        subscription was confirmed within `timeout` seconds, or it dropped before catching
        up (the caller catches up itself; the subscription goes on trying)."""
        confirmed, caught_up, attempts = self._confirmed, self.subscriptions, self._attempts
        if not self.start():
            return False
        deadline = time.monotonic() + timeout
        while self._confirmed == confirmed:
            if self._attempts != attempts or time.monotonic() > deadline:
                return False
            await async_sleep(0.001)
        while self.subscriptions == caught_up and self._attempts == attempts:
            await async_sleep(0.001)  # the catch-up (a whole mirror may take seconds)
        return self.subscriptions != caught_up

    async def stop(self) -> None:
        self._running = False
        await self._ticker.stop()
        self.verdicts.distrust()

    # -- publishing and applying -------------------------------------------------------

    async def publish(self, topic: str, target: str) -> None:
        """Tell every instance (this one too) that `target` of `topic` changed."""
        self.apply(topic, target)
        redis, channel = self._redis, self.channel
        if redis is None or channel is None:
            return
        message = f"{self._origin} {topic} {target}"

        async def _publish(conn: Any) -> Any:
            return await conn.publish(channel, message)

        try:
            await redis.safe_operation(_publish)
        except GuardRedisError:
            # other instances may miss this change until their caches age out
            self.logger.debug("Could not publish a change of %s", topic)

    async def publish_batch(self, topic: str, targets: list[str]) -> None:
        """Tell every instance, in one message, that each of `targets` changed."""
        if targets:
            await self.publish(topic, " ".join((BATCH_MARK, *targets)))

    def apply(self, topic: str, target: str) -> None:
        """Drop what is cached about `target` of `topic`."""
        if topic == self._ban_topic:
            self.verdicts.invalidate()
        with self._lock:
            listeners = list(self._listeners.get(topic, ()))
        for listener in listeners:
            listener(target)

    def _lost(self) -> None:
        """Changes may go unseen from now on: drop every cache."""
        self.verdicts.distrust()
        with self._lock:
            listeners = [item for group in self._listeners.values() for item in group]
        for listener in listeners:
            listener("")

    # -- the subscription --------------------------------------------------------------

    async def _subscription(self) -> None:
        """One subscription, read until it fails or `stop()`; the ticker starts the next."""
        try:
            await self._subscribe()
        finally:
            self._attempts += 1

    async def _subscribe(self) -> None:
        redis, channel = self._redis, self.channel
        if redis is None or channel is None or not self._running:
            return
        if not redis.available:
            # never the breaker's probe: a request (or the flusher's ping) finds Redis back
            # first, and the subscription follows on the next attempt
            self._lost()
            return
        pubsub: Any = None
        try:
            async with redis.get_connection() as client:
                untyped: Any = client  # the sync face's pubsub() is untyped
                pubsub = untyped.pubsub()
                await pubsub.subscribe(channel)
            while self._running and not async_cancel_requested():
                message = await pubsub.get_message(timeout=READ_TIMEOUT)
                if message is not None:
                    followed = self._receive(message)
                    if followed is not None:
                        if not followed[0]:
                            self._confirmed += 1
                        await self._follow(*followed)
                        if not followed[0]:
                            self.subscriptions += 1  # confirmed, and caught up
        except Exception as exc:
            self._dropped(exc)
        finally:
            self._lost()
            if pubsub is not None:
                await _close(pubsub)

    def _receive(self, message: dict[str, Any]) -> tuple[str, str] | None:
        """Apply one message; the change to follow, if any (topic "": catch up)."""
        kind = message.get("type")
        if kind == "subscribe":
            # (re)subscribed: what was published meanwhile is unknown, so start afresh
            self._lost()
            marks = self.marks()
            if marks is not None:
                self.verdicts.trust(marks)
            if self._lost_reported:
                self._lost_reported = False
                self.logger.warning("Invalidations received again: ban checks use the cache")
            return ("", "")
        if kind != "message":
            return None
        data = message.get("data")
        if not isinstance(data, str):
            return None
        origin, _, change = data.partition(" ")
        if origin == self._origin:
            return None  # applied when it was made
        topic, _, target = change.partition(" ")
        self.apply(topic, target)
        return (topic, target) if topic else None

    def _dropped(self, exc: Exception) -> None:
        if isinstance(exc, GuardRedisError):
            self.logger.debug("Cannot subscribe to invalidations now: %s", exc)
        if not self._lost_reported:
            self._lost_reported = True
            self.logger.warning(
                "Invalidation subscription lost (%s): ban checks read Redis until it is back",
                type(exc).__name__,
            )


async def _close(pubsub: Any) -> None:
    with suppress(Exception):
        await pubsub.aclose()
