"""`KeyOperations`: the namespaced key commands of `RedisManager` (GET, MGET, SET, INCR,
EXISTS, DEL, SCAN, UNLINK, EVALSHA), each on `{redis_prefix}{namespace}:{key}` in the layout
of `guard_core._shared.keys` (hash-tagged on a Cluster), each `None` while Redis is
disabled, and each failure a `GuardRedisError(503)` as the manager's calls make it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from guard_core._shared.keys import (
    build_key,
    build_pattern,
    key_in_namespace,
    validate_ttl,
    validate_value,
)
from guard_core._shared.storage.lua_scripts import LuaScript
from guard_core.models import SecurityConfig

#: Keys asked of Redis per SCAN step, and keys removed per UNLINK.
SCAN_COUNT = 1000
DELETE_BATCH = 500


class KeyOperations:
    """The key commands, mixed into `RedisManager`, which provides the calls below."""

    config: SecurityConfig
    #: Cluster mode: keys in the hash-tag layout.
    cluster: bool

    if TYPE_CHECKING:

        async def safe_operation(
            self, func: Callable[..., Any], *args: Any, **kwargs: Any
        ) -> Any: ...

        async def _call(
            self, name: str, *command: Any, expected: type[RedisError] | None = None
        ) -> Any: ...

    def _key(self, namespace: str, key: str) -> str:
        return build_key(self.config.redis_prefix, namespace, key, cluster=self.cluster)

    def key_part(self, namespace: str, full_key: str) -> str:
        """The `key` part of a full key from `keys()`, in this manager's layout (ValueError
        when `full_key` is not a key of `namespace`)."""
        return key_in_namespace(self.config.redis_prefix, namespace, full_key, cluster=self.cluster)

    async def get_key(self, namespace: str, key: str) -> Any:
        """The value at `{prefix}{namespace}:{key}`, or `None` when absent."""
        full_key = self._key(namespace, key)
        if not self.config.enable_redis:
            return None
        return await self._call("get", "GET", full_key)

    async def get_many(self, namespace: str, keys: Sequence[str]) -> list[Any] | None:
        """Values of several keys of one namespace in one round trip (MGET); `None` for absent."""
        full_keys = [self._key(namespace, key) for key in keys]
        if not self.config.enable_redis:
            return None
        if not full_keys:
            return []
        if self.cluster:
            result: list[Any] = await self.safe_operation(_cluster_mget, full_keys)
        else:
            result = await self._call("_mget", "MGET", *full_keys)
        return result

    async def set_key(
        self, namespace: str, key: str, value: Any, ttl: int | None = None
    ) -> bool | None:
        """Store `value`, expiring after `ttl` seconds when given (SET with EX, as SETEX)."""
        full_key = self._key(namespace, key)
        value = validate_value(value)
        ttl = validate_ttl(ttl)
        if not self.config.enable_redis:
            return None
        if ttl is None:
            result = await self._call("set", "SET", full_key, value)
        else:
            result = await self._call("set", "SET", full_key, value, "EX", ttl)
        return bool(result)

    async def set_many(
        self, namespace: str, entries: Mapping[str, tuple[Any, int | None]]
    ) -> bool | None:
        """Store several keys of one namespace, `key -> (value, ttl)`, in one round trip
        (pipelined SETs); True when Redis took every one."""
        prepared = [
            (self._key(namespace, key), validate_value(value), validate_ttl(ttl))
            for key, (value, ttl) in entries.items()
        ]
        if not self.config.enable_redis:
            return None
        if not prepared:
            return True

        async def _set_many(conn: Redis) -> bool:
            async with conn.pipeline(transaction=False) as pipe:
                for full_key, value, ttl in prepared:
                    pipe.set(full_key, value, ex=ttl)
                results = await pipe.execute()
            return all(results)

        return bool(await self.safe_operation(_set_many))

    async def incr(self, namespace: str, key: str, ttl: int | None = None) -> int | None:
        """Increment and (when `ttl` is given) refresh the expiry in one MULTI/EXEC."""
        full_key = self._key(namespace, key)
        ttl = validate_ttl(ttl)
        if not self.config.enable_redis:
            return None

        async def _incr(conn: Redis) -> int:
            async with conn.pipeline(transaction=True) as pipe:
                pipe.incr(full_key)
                if ttl is not None:
                    pipe.expire(full_key, ttl)
                result = await pipe.execute()
            return int(result[0])

        return int(await self.safe_operation(_incr))

    async def exists(self, namespace: str, key: str) -> bool | None:
        """Whether the key exists."""
        full_key = self._key(namespace, key)
        if not self.config.enable_redis:
            return None
        return bool(await self._call("exists", "EXISTS", full_key))

    async def delete(self, namespace: str, key: str) -> int | None:
        """Delete one key; returns how many were deleted (0 or 1)."""
        full_key = self._key(namespace, key)
        if not self.config.enable_redis:
            return None
        return int(await self._call("delete", "DEL", full_key))

    async def keys(self, pattern: str) -> list[str] | None:
        """Full names (prefix included) of the keys matching `{prefix}{pattern}`, via SCAN
        (of every primary in Cluster mode; `key_part` reads a key part back)."""
        full_pattern = build_pattern(self.config.redis_prefix, pattern, cluster=self.cluster)
        if not self.config.enable_redis:
            return None

        async def _keys(conn: Redis) -> list[str]:
            found: dict[str, None] = {}
            async for key in conn.scan_iter(match=full_pattern, count=SCAN_COUNT):
                found[str(key)] = None
            return list(found)

        result: list[str] = await self.safe_operation(_keys)
        return result

    async def delete_pattern(self, pattern: str) -> int | None:
        """Delete every key matching `{prefix}{pattern}` (SCAN, then UNLINK in batches)."""
        full_pattern = build_pattern(self.config.redis_prefix, pattern, cluster=self.cluster)
        if not self.config.enable_redis:
            return None

        async def _delete_pattern(conn: Redis) -> int:
            deleted = 0
            batch: list[str] = []
            async for key in conn.scan_iter(match=full_pattern, count=SCAN_COUNT):
                batch.append(key)
                if len(batch) >= DELETE_BATCH:
                    deleted += int(await conn.unlink(*batch))
                    batch.clear()
            if batch:
                deleted += int(await conn.unlink(*batch))
            return deleted

        return int(await self.safe_operation(_delete_pattern))

    async def run_script(
        self,
        script: LuaScript,
        keys: Sequence[tuple[str, str]],
        args: Sequence[str | int | float],
    ) -> Any:
        """Run a Lua script by EVALSHA on `(namespace, key)` keys, loading it on NOSCRIPT."""
        full_keys = [self._key(namespace, key) for namespace, key in keys]
        if not self.config.enable_redis:
            return None
        command = ("EVALSHA", script.sha, len(full_keys), *full_keys, *args)
        try:
            return await self._call("_run_script", *command, expected=NoScriptError)
        except NoScriptError:
            pass  # the server does not have the script (yet, or any more): load it
        await self.safe_operation(Redis.script_load, script.source)  # every primary
        return await self._call("_run_script", *command)

    def full_key(self, namespace: str, key: str) -> str:
        """The full Redis name of `key` in `namespace`, as every method here builds it."""
        return self._key(namespace, key)


async def _cluster_mget(conn: Redis, full_keys: list[str]) -> list[Any]:
    """MGET of a Cluster, as pipelined GETs: keys of several identifiers span slots, and a
    single-key command follows MOVED/ASK even while its slot is being migrated (where a
    multi-key MGET would be refused with TRYAGAIN)."""
    async with conn.pipeline(transaction=False) as pipe:
        for full_key in full_keys:
            pipe.get(full_key)
        found: list[Any] = await pipe.execute()
    return found
