"""Fuzz the record layer: parse_record, and records fed to an established session.

Rule: parse_record returns or raises RecordError; ServerSession/ClientSession.receive_data
never raises, and ends in progress or one SessionFailed event with a CloseCode.
"""

from __future__ import annotations

import sys

import _harness
from _seeds import new_pair, pump, transcript

from crypto.errors import CloseCode, RecordError
from crypto.events import SessionFailed
from crypto.record import parse_record
from crypto.session import State

SEEDS = [f for _, f in transcript()[4:]]
_pool: list[tuple[object, object]] = []


def _established() -> tuple[object, object]:
    client, server = new_pair()
    client.connect()
    pump(client, server, [])
    assert server.state is State.ESTABLISHED
    return client, server


def check(data: bytes) -> None:
    try:
        parse_record(data)
    except RecordError:
        pass
    if not _pool:
        _pool.append(_established())
    client, server = _pool[-1]
    for target in (server, client):
        target.receive_data(data)  # type: ignore[attr-defined]
        for e in target.events_received():  # type: ignore[attr-defined]
            if isinstance(e, SessionFailed):
                assert isinstance(e.code, CloseCode)
    if server.state is State.FAILED or client.state is State.FAILED:  # type: ignore[attr-defined]
        _pool.pop()


def main(argv: list[str] | None = None) -> int:
    return _harness.run("fuzz_record", SEEDS, check, argv)


if __name__ == "__main__":
    sys.exit(main())
