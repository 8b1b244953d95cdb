"""What a face's tests need to know about the Redis they run against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from guard_core._shared.keys import build_key

#: Backends (and StateEnv modes) on real Redis, by topology.
REAL_TOPOLOGIES = ("redis", "sentinel", "cluster")


class ClusterInspect(redis.RedisCluster):
    """A sync Cluster client whose whole-database commands (KEYS, FLUSHDB, SCRIPT FLUSH, MSET
    across slots) reach every primary, as they would on one server."""

    def keys(self, pattern: Any = "*", **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", self.PRIMARIES)
        return super().keys(pattern, **kwargs)

    def flushdb(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", self.PRIMARIES)
        return super().flushdb(*args, **kwargs)

    def flushall(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", self.PRIMARIES)
        return super().flushall(*args, **kwargs)

    def mset(self, mapping: Any) -> Any:
        return all(self.mset_nonatomic(mapping))

    def mget(self, keys: Any, *args: Any) -> Any:
        return self.mget_nonatomic(keys, *args)


@dataclass
class Backend:
    name: str
    url: str
    #: Builds the face's client (None: the library's own builder, real Redis).
    client_factory: Callable[[Any], Any] | None
    #: A plain sync client on the same data, for checking what the server holds.
    inspect: Any

    @property
    def cluster(self) -> bool:
        """Keys take the Cluster layout `{prefix}{namespace}:{{key}}`."""
        return self.name == "cluster"

    def key(self, namespace: str, key: str, prefix: str = "guard_core:") -> str:
        """The full key a manager on this backend uses for `(namespace, key)`."""
        return build_key(prefix, namespace, key, cluster=self.cluster)


@dataclass
class StateEnv:
    """What a subsystem test builds its manager from: `Manager(env.config, env.redis)`."""

    mode: str  # "fakeredis", "redis", "sentinel", "cluster" or "disabled"
    config: Any
    redis: Any  # the face's RedisManager
    #: A plain sync client on the same data (None when Redis is disabled).
    inspect: Any

    @property
    def shared(self) -> bool:
        return self.mode != "disabled"

    def key(self, namespace: str, key: str, prefix: str = "guard_core:") -> str:
        """The full key the manager uses for `(namespace, key)` (Cluster layout on a Cluster)."""
        return build_key(prefix, namespace, key, cluster=self.mode == "cluster")
