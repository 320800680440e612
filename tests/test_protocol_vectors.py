"""docs/PROTOCOL.md's vectors, recomputed with plain `cryptography` calls from the spec text."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from crypto.record import ReceiveChain, parse_record
from crypto.suite import XWING_CHACHA20

V = json.loads((Path(__file__).parent / "vectors" / "plexichat_v1.json").read_text())
X = {k: bytes.fromhex(v) for k, v in V["inputs"].items()}


def h(k: str) -> bytes:
    return bytes.fromhex(V[k])


def extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def expand(secret: bytes, label: str, ctx: bytes, n: int = 32) -> bytes:
    full = b"plexichat v1 " + label.encode()
    info = struct.pack(">HB", n, len(full)) + full + bytes([len(ctx)]) + ctx
    return HKDFExpand(hashes.SHA256(), n, info).derive(secret)


def test_handshake_key_schedule():
    es = extract(b"plexichat v1 handshake", X["ss_e"])
    ms = extract(es, X["ss_s"])
    assert (es, ms) == (h("es"), h("ms"))
    assert expand(ms, "c finished", X["th2"]) == h("fk_c")
    assert expand(ms, "s finished", X["th3"]) == h("fk_s")
    assert hmac.new(h("fk_c"), X["th2"], hashlib.sha256).digest() == h("client_finished")
    assert hmac.new(h("fk_s"), X["th3"], hashlib.sha256).digest() == h("server_finished")
    assert expand(ms, "epoch", X["th3"]) == h("epoch0")
    assert expand(ms, "resumption", X["th3"]) == h("resumption")


def test_chain_keys_and_ratchet():
    e0 = h("epoch0")
    assert expand(e0, "c2s chain", b"\x00\x00\x00\x00") == h("c2s_chain0")
    assert expand(e0, "s2c chain", b"\x00\x00\x00\x00") == h("s2c_chain0")
    ck = h("c2s_chain0")
    assert hmac.new(ck, b"\x01", hashlib.sha256).digest() == h("c2s_mk0")
    assert hmac.new(ck, b"\x02", hashlib.sha256).digest() == h("c2s_chain1")


def test_records():
    for i, name in enumerate(("record0", "record1")):
        rec = bytes.fromhex(V[name]["bytes"])
        header = struct.pack(">BBIQQ", 1, 0x10, 0, i, V[name]["timestamp_ms"])
        assert rec[:22] == header
        ck = h("c2s_chain0") if i == 0 else h("c2s_chain1")
        mk = hmac.new(ck, b"\x01", hashlib.sha256).digest()
        nonce = b"\x00" * 4 + struct.pack(">Q", i)
        assert ChaCha20Poly1305(mk).decrypt(nonce, rec[22:], header).hex() == V[name]["payload"]
    # and through the project's own receive chain
    chain = ReceiveChain(XWING_CHACHA20.aead_factory(), h("c2s_chain0"), 0)
    for name in ("record0", "record1"):
        hdr, hb, ct = parse_record(bytes.fromhex(V[name]["bytes"]))
        assert chain.open(hdr, hb, ct).hex() == V[name]["payload"]


def test_rekey_epoch_secret():
    e1 = extract(h("epoch0"), X["ss_rekey"] + X["rekey_th"])
    assert e1 == h("epoch1")
    assert expand(e1, "c2s chain", b"\x00\x00\x00\x01") == h("c2s_chain0_epoch1")
    assert expand(e1, "s2c chain", b"\x00\x00\x00\x01") == h("s2c_chain0_epoch1")


def test_resumption_key_schedule():
    r = {k: bytes.fromhex(v) for k, v in V["resume"].items()}
    psk = expand(h("resumption"), "ticket psk", r["ticket_id"])
    es = extract(b"plexichat v1 resume", psk)
    assert (psk, es) == (r["psk"], r["es"])
    assert expand(es, "resume binder", b"") == r["binder_key"]
    assert extract(es, X["ss_e"]) == r["ms_with_ss_e"]
