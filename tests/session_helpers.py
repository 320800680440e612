"""In-memory helpers for the session tests: keys, a fake clock, and a frame pump.

Two sans-I/O sessions are connected by moving ``data_to_send()`` of one into
``receive_data()`` of the other; a ``tamper`` hook sees (and may replace or drop) every
frame in flight, which is how the checklist tests play the network attacker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from crypto.cert import RootKey
from crypto.events import ApplicationData, Event, HandshakeComplete, SessionFailed
from crypto.handshake import GatewayCredential
from crypto.kem import KEMS, KemId
from crypto.session import (
    ClientConfig,
    ClientSession,
    ServerConfig,
    ServerSession,
    SessionLimits,
    State,
)
from crypto.suite import SuitePolicy

# Tamper hook: (direction "c2s"/"s2c", index of the frame in that direction, bytes)
# -> bytes to deliver, or None to drop it.
Tamper = Callable[[str, int, bytes], bytes | None]


@dataclass
class FakeClock:
    now_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@dataclass(frozen=True)
class Deployment:
    root: RootKey
    root_public: bytes
    credentials: dict[KemId, GatewayCredential]


_DEPLOYMENT: Deployment | None = None


def deployment() -> Deployment:
    """One root key and one certified gateway key per KEM (cached: ML-DSA keygen is slow)."""
    global _DEPLOYMENT
    if _DEPLOYMENT is None:
        root = RootKey.generate()
        now = int(time.time())
        creds: dict[KemId, GatewayCredential] = {}
        for kem in KEMS.values():
            key = kem.generate()
            cert = root.certify(kem, key.public_bytes, now - 2 * 86400, now + 10 * 86400)
            creds[kem.kem_id] = GatewayCredential(key, cert)
        _DEPLOYMENT = Deployment(root, root.public_bytes(), creds)
    return _DEPLOYMENT


@dataclass
class Pair:
    client: ClientSession
    server: ServerSession
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=lambda: {"c2s": 0, "s2c": 0})
    wire: list[tuple[str, bytes]] = field(default_factory=list)  # every frame, as sent

    def pump(self, tamper: Tamper | None = None, max_rounds: int = 1000) -> None:
        """Move frames both ways until neither side has anything left to send."""
        for _ in range(max_rounds):
            moved = False
            for direction, src, dst, sink in (
                ("c2s", self.client, self.server, self.server_events),
                ("s2c", self.server, self.client, self.client_events),
            ):
                for frame in src.data_to_send():
                    moved = True
                    index = self.sent[direction]
                    self.sent[direction] += 1
                    self.wire.append((direction, frame))
                    out = tamper(direction, index, frame) if tamper else frame
                    if out is not None:
                        dst.receive_data(out)
                    sink.extend(dst.events_received())
            self.client_events.extend(self.client.events_received())
            self.server_events.extend(self.server.events_received())
            if not moved:
                return
        raise AssertionError("pump did not settle")

    @property
    def established(self) -> bool:
        return self.client.state is State.ESTABLISHED and self.server.state is State.ESTABLISHED

    def client_data(self) -> list[bytes]:
        return [e.data for e in self.client_events if isinstance(e, ApplicationData)]

    def server_data(self) -> list[bytes]:
        return [e.data for e in self.server_events if isinstance(e, ApplicationData)]


def make_pair(
    *,
    client_policy: SuitePolicy | None = None,
    server_policy: SuitePolicy | None = None,
    client_limits: SessionLimits | None = None,
    server_limits: SessionLimits | None = None,
    client_clock: Callable[[], int] | None = None,
    server_clock: Callable[[], int] | None = None,
    root_public: bytes | None = None,
) -> Pair:
    d = deployment()
    client = ClientSession(
        ClientConfig(
            root_public if root_public is not None else d.root_public,
            client_policy or SuitePolicy(),
            client_limits or SessionLimits(),
        ),
        clock=client_clock,
    )
    server = ServerSession(
        ServerConfig(
            d.credentials, server_policy or SuitePolicy(), server_limits or SessionLimits()
        ),
        clock=server_clock,
    )
    return Pair(client, server)


def connect(pair: Pair, tamper: Tamper | None = None) -> Pair:
    pair.client.connect()
    pair.pump(tamper)
    return pair


def established_pair(**kwargs: object) -> Pair:
    pair = connect(make_pair(**kwargs))  # type: ignore[arg-type]
    assert pair.established, (pair.client_events, pair.server_events)
    return pair


def failures(events: list[Event]) -> list[SessionFailed]:
    return [e for e in events if isinstance(e, SessionFailed)]


def completed(events: list[Event]) -> list[HandshakeComplete]:
    return [e for e in events if isinstance(e, HandshakeComplete)]
