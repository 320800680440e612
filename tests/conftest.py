"""Shared fixtures: real servers started on loopback for the tests that claim their behaviour."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest import redis_server

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO.parent / "shared" / "vectors"
LOCAL_VECTORS = REPO / "tests" / "vectors"


def vector_path(*parts: str) -> Path:
    """A published vector file: the project's copy if present, else ../shared/vectors."""
    local = LOCAL_VECTORS.joinpath(*parts)
    return local if local.exists() else VECTORS.joinpath(*parts)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a random loopback port in a temp dir, for the whole session."""
    try:
        with redis_server.redis_server(prefix="plexi-redis-", quiet=True) as url:
            yield url
    except redis_server.RedisServerError as exc:
        pytest.fail(f"{exc} (.ci/run installs it)")


@pytest.fixture()
def redis_flushed(redis_url: str) -> str:
    """The session's Redis, emptied before the test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    return redis_url


os.environ.setdefault("PLEXI_TEST", "1")


# SoftHSM2 token fixture (hsm_token) for the key-store tests.
pytest_plugins = ["hsm_fixtures"]
