"""`StateStore`: the storage of one `Guard`: the outage journal, its background flusher, the
registry of journal topics, and the calls into Redis every storage module makes.

Reads answer a value, `None` (absent) or `UNAVAILABLE` (Redis disabled, down or failing).
Writes of shared state go through the journal: a change Redis cannot take now is kept and
written back when Redis answers again, by a background flusher (started by `Guard`) even if
no request comes, or at the latest when the guard closes. After Redis restarts without its
data, every change still in effect is written again. Conflicts between instances are settled
in Redis by when each change was made (Lua scripts under `guard_core/_shared/storage/lua/`),
never by the order in which instances write back.

Each journal topic has a module of its own, which knows its Redis layout and registers a
`Topic` here: `bans` (with `network_bans`), `allow_list`, `patterns`, `documents`,
`windows` and `outage_hits`; `mirror` keeps the copy of every ban that answers during an outage.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from guard_core._shared.concurrency import AsyncTicker, async_all_at_once
from guard_core._shared.logs import get_logger
from guard_core._shared.storage.journal import Change, Journal
from guard_core._shared.storage.lua_scripts import LuaScript
from guard_core._shared.storage.outcomes import UNAVAILABLE, Written
from guard_core._shared.storage.write_back_schedule import Replay, WriteBackSchedule
from guard_core.exceptions import GuardRedisError
from guard_core.models import SecurityConfig

from ..connection.manager import RedisManager
from .allow_list import AllowListStorage
from .bans import BanStorage
from .documents import DocumentStorage
from .invalidation import Invalidations
from .mirror import BanMirror
from .network_bans import NetworkBans
from .outage_hits import OutageShare
from .patterns import PatternStorage
from .topics import BAN, Applied, Topic
from .windows import WindowStorage

#: Changes a caller writes back itself, at most, when no background flusher runs (a store
#: of a subsystem made on its own, a guard not started): a request never waits for a whole
#: write-back after a restart.
INLINE_STEP = 8
#: Changes written back at once (each is one to three round trips, and they touch distinct
#: keys: the later change of a thing wins in Redis, whatever the order).
WRITE_BACK_BATCH = 8

Listener = Callable[[Change, Written], None]
#: A task of the background flusher (`add_tick_task`): an `async def` taking no argument.
TickTask = Callable[[], Any]


class StateStore:
    """Typed operations on shared state over one `RedisManager` (or none: memory only).

    `Guard` makes one and gives it to every subsystem, so that they share one journal, one
    flusher and one invalidation subscription. A subsystem made on its own makes its own.
    """

    def __init__(self, config: SecurityConfig, redis: RedisManager | None) -> None:
        self.config = config
        self.logger = get_logger("store")
        #: The manager every call goes through (None: memory only).
        self.redis = redis
        self.journal = Journal()
        self._schedule = WriteBackSchedule(config.redis_state_refresh_interval)
        self._replaying = 0
        # a write-back stopped after INLINE_STEP changes, to be gone on with; the changes
        # written again since the last restart, while that write-back is under way
        self._unfinished = False
        self._rewritten: int | None = None
        self._tasks_ran_at = 0.0
        self._listeners: dict[str, list[Listener]] = {}
        self._ticker = AsyncTicker()
        self._topics: dict[str, Topic] = {}
        self._tick_tasks: list[TickTask] = []
        self._close_tasks: list[TickTask] = []
        # changes pushed by every instance: ban verdicts held here, caches dropped on change
        self.invalidations = Invalidations(redis if self.sharing else None, BAN)
        networks = NetworkBans(self)
        #: Every ban Redis holds, to answer during an outage.
        self.mirror = BanMirror(self, networks)
        self.bans = BanStorage(self, networks, self.mirror)
        #: The shared allow list, and the copy of it that answers every check.
        self.allow_list = AllowListStorage(self)
        self.documents = DocumentStorage(self)
        self.patterns = PatternStorage(self, self.documents)
        self.windows = WindowStorage(self)
        #: Rate limits during an outage: the live instances, the warm windows, the hits.
        self.outage = OutageShare(self)
        self.add_tick_task(self.outage.membership.tick)  # a heartbeat on every tick
        self.add_tick_task(self.allow_list.tick)
        self.add_close_task(self.outage.membership.leave)
        topics: tuple[Topic, ...] = (
            self.bans, self.allow_list, self.patterns, self.documents, self.windows, self.outage,
        )  # fmt: skip
        for topic in topics:
            self.add_topic(topic)

    @classmethod
    def for_subsystem(
        cls, config: SecurityConfig, redis: RedisManager | None, store: StateStore | None
    ) -> StateStore:
        """The store a subsystem uses: `store` (given by `Guard`), which must be over the
        same config and manager, or a store of its own."""
        if store is None:
            return cls(config, redis)
        if store.config is not config or store.redis is not redis:
            raise ValueError("store must be made from the same config and Redis manager")
        return store

    @property
    def instance_id(self) -> str:
        """This instance's id (one per `Guard`): in the set of live instances, and in the
        `by` of the bans it makes."""
        return self.outage.membership.instance_id

    @property
    def sharing(self) -> bool:
        """Whether state is shared through Redis (a manager with Redis enabled)."""
        return (
            self.redis is not None and self.redis.config.enable_redis and self.config.enable_redis
        )

    @property
    def settled(self) -> bool:
        """No write-back under way and the last restart written back: a key Redis lacks was
        removed (lifted elsewhere, ended), not lost."""
        redis = self.redis
        return (
            redis is not None
            and self._replaying == 0
            and not self._unfinished
            and self._schedule.seen_restarts == redis.restarts
        )

    def subscribe(self, topic: str, listener: Listener) -> None:
        """Call `listener(change, written)` when a written-back change of `topic` is settled."""
        self._listeners.setdefault(topic, []).append(listener)

    def pending_writes(self) -> dict[str, int]:
        """Changes Redis has not taken yet, per topic."""
        return self.journal.pending_by_topic() if self.sharing else {}

    def versioned(self, version: object) -> str | None:
        """A version read from Redis, with the restarts seen so far (a restarted Redis
        counts anew, so a count alone could match a copy it lost)."""
        redis = self.redis
        if version is None or redis is None:
            return None
        return f"{redis.restarts}:{version}"

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, *, serving: bool = True) -> None:
        """Start the background flusher and the invalidation subscription, then, once it
        is confirmed, load the local copies of shared state (the ban mirror, the network
        bans, the custom patterns, the header configuration) and send the first heartbeat
        (`Guard.start()` calls this).
        With Redis down the copies stay empty (`health()` says so) and are loaded once a
        subscription is confirmed. `serving=False` (a tool such as the CLI, which serves
        no requests) keeps no copies and sends no heartbeat at start."""
        if self.sharing:
            invalidations = self.invalidations
            invalidations.following = serving
            self._ticker.start(self._tick, self.config.redis_journal_flush_interval)
            # subscribed before the first heartbeat: an instance that joins after it is heard
            # of, one that joined before it is counted by it
            timeout = self.config.redis_connect_timeout + self.config.redis_socket_timeout
            if not await invalidations.start_caught_up(timeout):
                await invalidations.catch_up()

    async def close(self) -> None:
        """Stop the flusher, then write pending changes within `redis_close_flush_timeout`."""
        await self._ticker.stop()
        # the followers first: one running after the close tasks would send a heartbeat of
        # an instance that has left (and announce it joining again)
        await self.invalidations.stop()
        for task in self._close_tasks:
            await task()
        redis = self.redis
        if redis is None or not self.sharing or not self.journal.has_pending:
            return
        deadline = time.monotonic() + self.config.redis_close_flush_timeout
        await redis.ping()  # lets a due probe find a Redis that came back
        for change in self.journal.pending():
            if time.monotonic() >= deadline:
                break
            applied = await self._apply(change, replay=True)
            if applied.written is Written.KEPT:
                break
            self.settle(change, applied.written)
        left = self.journal.pending_by_topic()
        if left:
            self.logger.warning(
                "Closing with %d changes Redis has not taken: they are lost (%s)",
                sum(left.values()),
                ", ".join(f"{self._label(t)}: {n}" for t, n in sorted(left.items())),
            )

    def _label(self, topic: str) -> str:
        found = self._topics.get(topic)
        return topic if found is None else found.label

    async def sync(self) -> bool:
        """The request path's write-back: when one is due (pending changes once Redis
        answers again, every change in effect after a restart), the background flusher is
        woken to do it, and the caller goes on at once; without a flusher, the caller writes
        back at most `INLINE_STEP` changes itself. Cheap when nothing is due. True when this
        call saw a restart (its write-back then goes on after it returns: `settled` says
        when it is done)."""
        if self._ticker.running:
            redis = self.redis
            # while the breaker is open the flusher probes on its own schedule: a wake-up per
            # request would probe a Redis that is down at every request
            if redis is not None and redis.available and self._write_back_ready(redis):
                self._ticker.wake()
            return False
        return await self.write_back(limit=INLINE_STEP)

    def _write_back_ready(self, redis: RedisManager) -> bool:
        return self._schedule.ready(
            redis.recoveries, redis.restarts, pending=self.journal.has_pending
        )

    async def write_back(self, limit: int | None = None) -> bool:
        """Write back what Redis lacks, when due (at most `limit` changes: the next call
        goes on with the rest). True when a restart was noticed."""
        redis = self.redis
        if redis is None or not self.sharing:
            return False
        replay = self._schedule.due(
            redis.recoveries, redis.restarts, pending=self.journal.has_pending
        )
        if replay is None:
            if not self.journal.has_pending:
                self._unfinished = False  # what was left went by another way (evicted)
            return False
        restarted = replay is Replay.EVERYTHING
        if restarted:
            self.journal.reopen()  # Redis may hold none of it now
            self._rewritten = 0
        changes = self.journal.pending()
        unfinished = limit is not None and len(changes) > limit
        if unfinished:
            changes = changes[:limit]
        self._replaying += 1
        kept = False
        try:
            for first in range(0, len(changes), WRITE_BACK_BATCH):
                if limit is None:
                    await self._beat_if_due()  # a long write-back keeps this instance alive
                batch = changes[first : first + WRITE_BACK_BATCH]
                done = await async_all_at_once(
                    [functools.partial(self._apply, change, replay=True) for change in batch]
                )
                kept = False
                for change, applied in zip(batch, done, strict=True):
                    if applied.written is Written.KEPT:
                        kept = True
                        continue
                    self.settle(change, applied.written)
                    if self._rewritten is not None:
                        self._rewritten += 1
                if kept:
                    unfinished = False
                    break  # Redis is gone again: the schedule retries later
        finally:
            self._unfinished = unfinished
            self._replaying -= 1
        if unfinished:
            self._schedule.go_on()  # the next caller writes the rest, at once
        rewritten = self._rewritten
        if not unfinished and not kept and rewritten is not None:
            self._rewritten = None
            if rewritten:
                self.logger.warning("Redis restarted: wrote %d changes held here again", rewritten)
        return restarted

    @property
    def writing_back(self) -> bool:
        """Whether a write-back is due or under way (`health().writing_back`)."""
        return self.sharing and (self.sync_due or not self.settled)

    @property
    def sync_due(self) -> bool:
        """Whether `sync()` may have work now, told without awaiting: changes pending, or a
        recovery or restart of Redis it has not answered yet."""
        redis = self.redis
        if redis is None:
            return False
        return self.journal.has_pending or not self._schedule.answered(
            redis.recoveries, redis.restarts
        )

    async def _run_tick_tasks(self) -> None:
        self._tasks_ran_at = time.monotonic()
        for task in self._tick_tasks:
            await task()

    async def _beat_if_due(self) -> None:
        """The tick tasks (the heartbeat), when a flush interval has passed since they ran."""
        if time.monotonic() - self._tasks_ran_at >= self.config.redis_journal_flush_interval:
            await self._run_tick_tasks()

    async def _tick(self) -> None:
        await self._run_tick_tasks()
        redis = self.redis
        if redis is None:
            return
        if len(self.journal):
            await redis.ping()  # probes a Redis that is down; notices a restart on reconnection
        if self.sync_due:  # (with nothing held, a restart is only marked answered)
            await self.write_back()

    # -- journalled writes -----------------------------------------------------------------

    async def submit(self, change: Change) -> Applied:
        """Record `change` in the journal and write it; kept for later when Redis cannot."""
        if not self.sharing:
            return Applied(Written.KEPT)
        await self.sync()
        self.journal.record(change)
        applied = await self._apply(change, replay=False)
        self.journal.settle(change, applied.written)
        return applied

    def forget(self, topic: str, target: str) -> None:
        """Drop the journal's taken change of a thing known to be changed elsewhere since."""
        change = self.journal.latest(topic, target)
        if change is not None and not self.journal.is_pending(topic, target):
            self.journal.settle(change, Written.SUPERSEDED)

    def is_pending(self, topic: str, target: str) -> bool:
        return self.sharing and self.journal.is_pending(topic, target)

    def settle(self, change: Change, written: Written) -> None:
        """Settle a written-back change in the journal and tell the topic's listeners."""
        self.journal.settle(change, written)
        for listener in self._listeners.get(change.topic, ()):
            listener(change, written)

    async def _apply(self, change: Change, *, replay: bool) -> Applied:
        topic = self._topics.get(change.topic)
        if topic is None:
            raise ValueError(f"unknown journal topic {change.topic!r}")
        applied = await topic.write(change, replay=replay)
        if topic.cached:  # tell every instance (this one at once)
            if applied.written is Written.TAKEN:
                await self.invalidations.publish(change.topic, change.target)
            else:
                self.invalidations.apply(change.topic, change.target)
        return applied

    # -- registry --------------------------------------------------------------------------

    def add_topic(self, topic: Topic) -> None:
        """Journal changes of `topic.name` too, written by `topic.write`."""
        if topic.name in self._topics:
            raise ValueError(f"journal topic {topic.name!r} is registered already")
        self._topics[topic.name] = topic

    def add_tick_task(self, task: TickTask) -> None:
        """Run `await task()` on every tick of the background flusher, before its write-back."""
        self._tick_tasks.append(task)

    def add_close_task(self, task: TickTask) -> None:
        """Run `await task()` when the store closes, after the flusher stopped."""
        self._close_tasks.append(task)

    # -- calls -----------------------------------------------------------------------------

    async def call(self, call: Callable[[RedisManager], Any]) -> Any:
        """`call(manager)`'s result, or `UNAVAILABLE` when Redis is not in use or failed (the
        manager has logged and reported the failure)."""
        redis = self.redis
        if redis is None or not self.sharing:
            return UNAVAILABLE
        try:
            return await call(redis)
        except GuardRedisError:
            return UNAVAILABLE

    async def script(
        self, script: LuaScript, keys: Sequence[tuple[str, str]], args: Sequence[str | int | float]
    ) -> Any:
        """The script's reply, or `UNAVAILABLE` as `call` says."""
        return await self.call(lambda redis: redis.run_script(script, keys, args))
