"""serve options for clustering through Redis: ``--cluster-key-file`` (with ``--redis``).

With both, this process is one node of a cluster: channel messages go through a RedisBus,
history through RedisHistory (Redis Streams), both sealed under the cluster key. With
``--redis`` alone only the channel directory moves to Redis (the node is not clustered:
a warning says so). See docs/CLUSTER.md.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.clusterkey import ClusterKey, ClusterKeyError
from gateway.stores.redis_batch import RedisBatcher
from gateway.stores.redis_bus import RedisBus
from gateway.stores.redis_history import RedisHistory

log = logging.getLogger("plexigate.serve")
DIRECTORY_NAMESPACE = "plexi:chanmeta"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cluster-key-file",
        metavar="FILE",
        help="with --redis: 32-byte cluster key (raw or 64 hex digits), the same on every "
        "node; turns on pub/sub fan-out and Streams history through Redis, sealed under it "
        "(create one: head -c 32 /dev/urandom > cluster.key; chmod 600 cluster.key)",
    )


def redis_stores(
    url: str, key: ClusterKey, history_per_channel: int = 100
) -> tuple[RedisBus, RedisHistory]:
    """A node's bus and history on one Redis client and one pipeline (XADD + PUBLISH of a
    message travel in one round trip). Close the bus first (it owns client and pipeline)."""
    client = aioredis.Redis.from_url(url, decode_responses=False, socket_connect_timeout=2.0)
    batcher = RedisBatcher(client)
    bus = RedisBus(client, key, batcher=batcher, owns_client=True, owns_batcher=True)
    history = RedisHistory(client, key, per_channel=history_per_channel, batcher=batcher)
    return bus, history


@dataclass
class ClusterStores:
    bus: RedisBus | None = None
    history: RedisHistory | None = None
    directory_namespace: str = DIRECTORY_NAMESPACE


def open_cluster(args: argparse.Namespace, history_per_channel: int) -> ClusterStores:
    """The Redis bus and history for this node, or none (not clustered)."""
    key_file = getattr(args, "cluster_key_file", None)
    if key_file and not args.redis:
        raise ClusterKeyError("--cluster-key-file needs --redis URL")
    if not args.redis:
        return ClusterStores()
    if not key_file:
        log.warning("--redis without --cluster-key-file: only the channel directory is in "
                    "redis; messages and history stay on this node (not clustered)")
        return ClusterStores()
    key = ClusterKey.from_file(key_file)
    bus, history = redis_stores(args.redis, key, history_per_channel)
    # The ORAM client state (position map, stash, Merkle root) lives in one process and a
    # new directory wipes its namespace, so nodes must not share one: each listening address
    # gets its own (keyed hash, stable across restarts of the same node).
    # (port 0 has no stable address: a random namespace, so two such nodes never collide)
    where = f"{args.host}:{args.port}" if args.port else os.urandom(16).hex()
    node = key.name(b"directory", where.encode())[:16]
    log.info("cluster node %s: bus and history through redis", bus.node)
    return ClusterStores(bus, history, f"{DIRECTORY_NAMESPACE}:{node}")
