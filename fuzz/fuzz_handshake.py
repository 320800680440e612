"""Fuzz the handshake: every message parser, and both state machines at each stage.

Rule: parsers return or raise HandshakeError; receive_data never raises; a failing session
reports exactly one SessionFailed with a CloseCode.
"""

from __future__ import annotations

import sys

import _harness
from _seeds import new_pair, transcript

from crypto.errors import CloseCode, HandshakeError
from crypto.events import SessionFailed
from crypto.messages import (
    ClientHello,
    ClientKem,
    ResumeAccept,
    ResumeFinished,
    ResumeHello,
    ServerFinished,
    ServerHello,
)

SEEDS = [f for _, f in transcript()[:4]]
PARSERS = (
    ClientHello,
    ServerHello,
    ClientKem,
    ServerFinished,
    ResumeHello,
    ResumeAccept,
    ResumeFinished,
)


def _events_ok(events: list[object]) -> None:
    fails = [e for e in events if isinstance(e, SessionFailed)]
    assert len(fails) <= 1
    for e in fails:
        assert isinstance(e.code, CloseCode)


def check(data: bytes) -> None:
    for cls in PARSERS:
        try:
            cls.from_bytes(data)
        except HandshakeError:
            pass
    client, server = new_pair()
    server.receive_data(data)  # as a ClientHello
    _events_ok(server.events_received())
    client.connect()
    client.data_to_send()
    client.receive_data(data)  # as a ServerHello
    _events_ok(client.events_received())
    client2, server2 = new_pair()
    client2.connect()
    for f in client2.data_to_send():
        server2.receive_data(f)
    server2.data_to_send()
    server2.receive_data(data)  # as a ClientKem
    _events_ok(server2.events_received())
    server2.receive_data(data)  # and after that, whatever state it is in
    _events_ok(server2.events_received())


def main(argv: list[str] | None = None) -> int:
    return _harness.run("fuzz_handshake", SEEDS, check, argv)


if __name__ == "__main__":
    sys.exit(main())
