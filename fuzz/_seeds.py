"""Genuine protocol bytes used as fuzz seeds (made fresh at start-up, in memory)."""

from __future__ import annotations

import functools
import time

import _harness  # noqa: F401  (puts the repository on sys.path)

from crypto.cert import RootKey
from crypto.handshake import GatewayCredential
from crypto.kem import KEMS, KemId
from crypto.session import ClientConfig, ClientSession, ServerConfig, ServerSession
from crypto.suite import ALL_SUITES, SuitePolicy


@functools.cache
def deployment() -> tuple[bytes, dict[KemId, GatewayCredential]]:
    root = RootKey.generate()
    now = int(time.time())
    creds = {}
    for kem in KEMS.values():
        key = kem.generate()
        cert = root.certify(kem, key.public_bytes, now - 86400, now + 86400)
        creds[kem.kem_id] = GatewayCredential(key, cert)
    return root.public_bytes(), creds


POLICY = SuitePolicy(ALL_SUITES)


def new_pair() -> tuple[ClientSession, ServerSession]:
    root, creds = deployment()
    return (
        ClientSession(ClientConfig(root, POLICY)),
        ServerSession(ServerConfig(creds, POLICY)),
    )


def pump(client: ClientSession, server: ServerSession, wire: list[tuple[str, bytes]]) -> None:
    while True:
        c2s, s2c = client.data_to_send(), server.data_to_send()
        if not c2s and not s2c:
            return
        for f in c2s:
            wire.append(("c2s", f))
            server.receive_data(f)
        for f in s2c:
            wire.append(("s2c", f))
            client.receive_data(f)


@functools.cache
def transcript() -> tuple[tuple[str, bytes], ...]:
    """Handshake, application records both ways, and a full rekey."""
    client, server = new_pair()
    wire: list[tuple[str, bytes]] = []
    client.connect()
    pump(client, server, wire)
    client.send(b'{"op":"auth","token":"x","id":1}')
    server.send(b'{"op":"auth_ok","id":1}')
    client.start_rekey()
    pump(client, server, wire)
    server.request_rekey()
    client.send(b"after")
    pump(client, server, wire)
    return tuple(wire)
