"""Handshake state machines (client and server): KEM-authenticated, forward secret.

Flow (each line one binary frame)::

    C -> S  ClientHello     time, offered suites, a fresh ephemeral KEM public key per KEM
    S -> C  ServerHello     chosen suite, time, Encaps(ephemeral) ciphertext, certificate
    C -> S  ClientKem       Encaps(certified gateway key) ciphertext, client Finished MAC
    S -> C  ServerFinished  server Finished MAC

ss_E (ephemeral) gives forward secrecy; ss_S (to the certified key) authenticates the
gateway: only the holder of its private key can compute ``ms`` and the server Finished.
The transcript hash covers every byte of every message, including the offered suite list,
so removing a suite in flight (a downgrade) makes the Finished MACs disagree.

These classes hold no I/O and read no clock: the session passes times in.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from crypto.cert import GatewayCertificate
from crypto.errors import (
    CertificateError,
    HandshakeError,
    HandshakeFailed,
    LocalProtocolError,
    NoSharedSuite,
)
from crypto.kem import HybridPrivateKey, KemError, KemId
from crypto.keyschedule import (
    HANDSHAKE_SALT,
    expand_label,
    finished_mac,
    hkdf_extract,
    transcript_hash,
    verify_mac,
)
from crypto.messages import ClientHello, ClientKem, ServerFinished, ServerHello
from crypto.suite import SUITES_BY_ID, Suite, SuitePolicy


@dataclass(frozen=True, slots=True)
class GatewayCredential:
    """The gateway's long-term private KEM key and the certificate for it."""

    private_key: HybridPrivateKey
    certificate: GatewayCertificate

    def __post_init__(self) -> None:
        if self.private_key.public_bytes != self.certificate.public_key:
            raise ValueError("certificate does not match the private key")


@dataclass(frozen=True, slots=True, repr=False)
class HandshakeResult:
    suite: Suite
    epoch_secret: bytes  # epoch 0
    resumption_secret: bytes
    peer_offset_ms: int  # peer clock minus ours, measured at the handshake
    key_id: bytes
    transcript: bytes  # th3

    def __repr__(self) -> str:
        return f"<HandshakeResult {self.suite.name}>"


def _derive(ss_e: bytes, ss_s: bytes, th2: bytes) -> tuple[bytes, bytes]:
    es = hkdf_extract(HANDSHAKE_SALT, ss_e)
    ms = hkdf_extract(es, ss_s)
    return ms, expand_label(ms, b"c finished", th2)


def _finish(ms: bytes, th3: bytes) -> tuple[bytes, bytes, bytes]:
    return (
        expand_label(ms, b"s finished", th3),
        expand_label(ms, b"epoch", th3),
        expand_label(ms, b"resumption", th3),
    )


class ClientHandshake:
    """Client side. ``hello()``, then ``on_server_hello()``, then ``on_server_finished()``."""

    def __init__(self, root_public_key: bytes, policy: SuitePolicy) -> None:
        self._root = root_public_key
        self._policy = policy
        self._ephemeral: dict[int, HybridPrivateKey] = {}
        self._transcript = hashlib.sha256()  # running hash: each byte is hashed once
        self._pending: tuple[bytes, bytes] | None = None  # (fk_s, th3)
        self.result: HandshakeResult | None = None
        self._stage = 0

    def hello(self, now_ms: int) -> bytes:
        if self._stage != 0:
            raise LocalProtocolError("hello already sent")
        suites = self._policy.allowed
        if not suites:
            raise LocalProtocolError("policy allows no suite")
        shares: list[tuple[int, bytes]] = []
        for s in suites:
            if s.kem.kem_id not in self._ephemeral:
                key = s.kem.generate()
                self._ephemeral[s.kem.kem_id] = key
                shares.append((s.kem.kem_id, key.public_bytes))
        msg = ClientHello(now_ms, tuple(s.suite_id for s in suites), tuple(shares)).to_bytes()
        self._transcript.update(msg)
        self._stage = 1
        return msg

    def on_server_hello(self, data: bytes, now_ms: int, now_s: int) -> bytes:
        if self._stage != 1:
            raise LocalProtocolError("not waiting for ServerHello")
        sh = ServerHello.from_bytes(data)
        suite = SUITES_BY_ID.get(sh.suite)
        if suite is None or suite not in self._policy.allowed:
            raise HandshakeError("gateway chose a suite that was not offered")
        cert = GatewayCertificate.from_bytes(sh.certificate)
        static_key = cert.verify(self._root, now_s)
        if cert.kem.kem_id != suite.kem.kem_id:
            raise CertificateError("certificate KEM does not match the suite")
        try:
            ss_e = self._ephemeral[suite.kem.kem_id].decapsulate(sh.ciphertext)
            ss_s, ct_s = static_key.encapsulate()
        except KemError:
            raise HandshakeFailed() from None
        self._ephemeral.clear()  # forward secrecy: ephemeral keys are gone
        self._transcript.update(data)
        kem_msg = ClientKem(ct_s, b"")
        self._transcript.update(kem_msg.body_without_mac())
        th2 = self._transcript.copy().digest()
        ms, fk_c = _derive(ss_e, ss_s, th2)
        mac = finished_mac(fk_c, th2)
        ck = ClientKem(ct_s, mac).to_bytes()
        self._transcript.update(mac)
        th3 = self._transcript.digest()
        fk_s, epoch0, res = _finish(ms, th3)
        self._pending = (fk_s, th3)
        self.result = HandshakeResult(
            suite, epoch0, res, sh.server_time_ms - now_ms, cert.key_id, th3
        )
        self._stage = 2
        return ck

    def on_server_finished(self, data: bytes) -> HandshakeResult:
        if self._stage != 2 or self._pending is None or self.result is None:
            raise LocalProtocolError("not waiting for ServerFinished")
        sf = ServerFinished.from_bytes(data)
        fk_s, th3 = self._pending
        if not verify_mac(finished_mac(fk_s, th3), sf.mac):
            raise HandshakeFailed()
        self._pending = None
        self._stage = 3
        return self.result


class ServerHandshake:
    """Server side. ``on_client_hello()``, then ``on_client_kem()``."""

    def __init__(self, credentials: Mapping[KemId, GatewayCredential], policy: SuitePolicy):
        self._credentials = credentials
        self._policy = policy
        self._transcript = hashlib.sha256()
        self._state: tuple[Suite, bytes, int] | None = None  # (suite, ss_e, offset)
        self._stage = 0

    def on_client_hello(self, data: bytes, now_ms: int) -> bytes:
        if self._stage != 0:
            raise LocalProtocolError("ClientHello already processed")
        ch = ClientHello.from_bytes(data)
        offered = set(ch.suites)
        suite = next(
            (
                s
                for s in self._policy.allowed
                if s.suite_id in offered and s.kem.kem_id in self._credentials
            ),
            None,
        )
        if suite is None:
            raise NoSharedSuite()
        share = dict(ch.shares).get(suite.kem.kem_id)
        if share is None:
            raise HandshakeError("no key share for the chosen suite")
        try:
            ss_e, ct_e = suite.kem.public_key(share).encapsulate()
        except KemError:
            raise HandshakeFailed("ephemeral key share rejected") from None
        cred = self._credentials[suite.kem.kem_id]
        sh = ServerHello(suite.suite_id, now_ms, ct_e, cred.certificate.to_bytes()).to_bytes()
        self._transcript.update(data)
        self._transcript.update(sh)
        self._state = (suite, ss_e, ch.client_time_ms - now_ms)
        self._stage = 1
        return sh

    def on_client_kem(self, data: bytes) -> tuple[bytes, HandshakeResult]:
        if self._stage != 1 or self._state is None:
            raise LocalProtocolError("not waiting for ClientKem")
        suite, ss_e, offset = self._state
        ck = ClientKem.from_bytes(data)
        cred = self._credentials[suite.kem.kem_id]
        try:
            ss_s = cred.private_key.decapsulate(ck.ciphertext)
        except KemError:
            raise HandshakeFailed() from None
        running = self._transcript.copy()  # untouched if the MAC fails
        running.update(ck.body_without_mac())
        th2 = running.copy().digest()
        ms, fk_c = _derive(ss_e, ss_s, th2)
        if not verify_mac(finished_mac(fk_c, th2), ck.mac):
            raise HandshakeFailed()
        running.update(ck.mac)
        th3 = running.digest()
        fk_s, epoch0, res = _finish(ms, th3)
        self._state = None
        self._stage = 2
        result = HandshakeResult(suite, epoch0, res, offset, cred.certificate.key_id, th3)
        return ServerFinished(finished_mac(fk_s, th3)).to_bytes(), result


def rekey_transcript(epoch: int, public_key: bytes, ciphertext: bytes) -> bytes:
    return transcript_hash(struct.pack(">I", epoch), public_key, ciphertext)
