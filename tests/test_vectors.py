"""Published vectors through the primitives and the hybrid KEM code the product uses.

Sources (copies under tests/vectors/, else ../shared/vectors/):
X-Wing draft vectors; Wycheproof ML-KEM-768/1024 (decaps, encaps-key modulus, keygen seed),
ML-DSA-65 verify, X25519, ChaCha20-Poly1305, HKDF-SHA256; and the NIST ML-KEM / ML-DSA
KAT files shipped in ``cryptography-vectors``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import vector_path
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from session_helpers import connect, deployment, failures, make_pair

from crypto.cert import GatewayCertificate, RootKey
from crypto.errors import CertificateError, CloseCode
from crypto.handshake import ClientHandshake
from crypto.kem import MLKEM1024_X25519, XWING, HybridKem, HybridPrivateKey, KemError
from crypto.keyschedule import hkdf_extract
from crypto.messages import ClientHello, ServerHello
from crypto.suite import SUITES_BY_ID, AeadId, SuitePolicy

# -- loading ------------------------------------------------------------------------------


def _json(*parts: str) -> Any:
    return json.loads(vector_path(*parts).read_text())


def _wycheproof(name: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    data = _json("wycheproof", name)
    for group in data["testGroups"]:
        for test in group["tests"]:
            yield group, test


def _h(s: str) -> bytes:
    return bytes.fromhex(s)


def _kat(path: Path) -> list[dict[str, str]]:
    """Parse a NIST .rsp file into one dict per ``count = N`` block."""
    blocks: list[dict[str, str]] = []
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(" = ")
        if not sep:
            continue
        if key == "count":
            blocks.append({})
        elif blocks:
            blocks[-1][key] = value
    return blocks


def _cv_dir() -> Path:
    import cryptography_vectors

    return Path(os.path.dirname(cryptography_vectors.__file__)) / "asymmetric"


def _x25519_pub(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _hybrid_from_mlkem(kem: HybridKem, sk_m: Any) -> HybridPrivateKey:
    """A hybrid private key whose ML-KEM half is a vector's key (X25519 half fresh)."""
    sk_x = X25519PrivateKey.generate()
    pk = sk_m.public_key().public_bytes_raw() + _x25519_pub(sk_x)
    return HybridPrivateKey(kem, b"\x00" * 32, sk_m, sk_x, pk)


# -- X-Wing draft vectors ----------------------------------------------------------------

XWING_VECTORS = _json("xwing", "test-vectors.json")


@pytest.mark.parametrize("vec", XWING_VECTORS, ids=lambda v: v["seed"][:8])
def test_xwing_draft_vector_keygen_and_decaps(vec: dict[str, str]) -> None:
    key = XWING.from_seed(_h(vec["sk"]))
    assert key.public_bytes == _h(vec["pk"])
    assert key.decapsulate(_h(vec["ct"])) == _h(vec["ss"])
    # the public key loads, and a fresh encapsulation to it round-trips
    ss, ct = XWING.public_key(_h(vec["pk"])).encapsulate()
    assert key.decapsulate(ct) == ss


def test_xwing_vector_decaps_detects_any_flipped_x25519_byte() -> None:
    vec = XWING_VECTORS[0]
    key = XWING.from_seed(_h(vec["sk"]))
    ct = bytearray(_h(vec["ct"]))
    ct[-1] ^= 0x01  # X25519 half: different point, different secret
    assert key.decapsulate(bytes(ct)) != _h(vec["ss"])


# -- Wycheproof ML-KEM --------------------------------------------------------------------

MLKEM_DECAPS = {
    "mlkem_768_test.json": (mlkem.MLKEM768PrivateKey, XWING),
    "mlkem_1024_test.json": (mlkem.MLKEM1024PrivateKey, MLKEM1024_X25519),
}


@pytest.mark.parametrize("name", sorted(MLKEM_DECAPS))
def test_wycheproof_mlkem_decaps(name: str) -> None:
    cls, kem = MLKEM_DECAPS[name]
    counts = {"valid": 0, "invalid": 0}
    for _, t in _wycheproof(name):
        seed, c, k = _h(t["seed"]), _h(t["c"]), _h(t["K"])
        if t["result"] == "valid":
            sk = cls.from_seed_bytes(seed)
            assert sk.public_key().public_bytes_raw() == _h(t["ek"]), t["tcId"]
            assert sk.decapsulate(c) == k, t["tcId"]
            # the same ML-KEM half through crypto.kem's hybrid decapsulation
            hybrid = _hybrid_from_mlkem(kem, sk)
            eph = X25519PrivateKey.generate()
            ct_x = _x25519_pub(eph)
            ss_x = eph.exchange(X25519PublicKey.from_public_bytes(hybrid.public_bytes[-32:]))
            expect = kem.combine(k, ss_x, ct_x, hybrid.public_bytes[-32:])
            assert hybrid.decapsulate(c + ct_x) == expect, t["tcId"]
            counts["valid"] += 1
        else:  # wrong-size ciphertext or private seed: refused, never a secret
            with pytest.raises(ValueError):
                sk = cls.from_seed_bytes(seed)
                sk.decapsulate(c)
            if len(seed) == 64:
                hybrid = _hybrid_from_mlkem(kem, cls.from_seed_bytes(seed))
                with pytest.raises(KemError):
                    hybrid.decapsulate(c + bytes(32))
            counts["invalid"] += 1
    assert counts["valid"] > 100 and counts["invalid"] > 30


def test_wycheproof_mlkem768_encaps_key_checks_item02() -> None:
    """Checklist item 2: encapsulation keys with a coefficient >= q are refused on load."""
    x_pub = _x25519_pub(X25519PrivateKey.generate())
    modulus_cases = 0
    for _, t in _wycheproof("mlkem_768_encaps_test.json"):
        ek = _h(t["ek"])
        if t["result"] == "valid":
            pk = XWING.public_key(ek + x_pub)
            assert pk.raw[:1184] == ek
            continue
        with pytest.raises(KemError):
            XWING.public_key(ek + x_pub)
        with pytest.raises(ValueError):
            mlkem.MLKEM768PublicKey.from_public_bytes(ek)
        if len(ek) == 1184:
            modulus_cases += 1
    assert modulus_cases >= 100


def test_wycheproof_mlkem768_keygen_from_seed() -> None:
    n = 0
    for _, t in _wycheproof("mlkem_768_keygen_seed_test.json"):
        sk = mlkem.MLKEM768PrivateKey.from_seed_bytes(_h(t["seed"]))
        assert sk.public_key().public_bytes_raw() == _h(t["ek"]), t["tcId"]
        assert sk.private_bytes_raw() == _h(t["seed"])
        n += 1
    assert n == 100


# -- NIST KAT files from cryptography-vectors ------------------------------------------


@pytest.mark.parametrize(
    ("fname", "cls"),
    [
        ("kat_MLKEM_768.rsp", mlkem.MLKEM768PrivateKey),
        ("kat_MLKEM_1024.rsp", mlkem.MLKEM1024PrivateKey),
    ],
)
def test_nist_kat_mlkem(fname: str, cls: Any) -> None:
    blocks = _kat(_cv_dir() / "MLKEM" / fname)
    assert len(blocks) == 1000
    for b in blocks:
        sk = cls.from_seed_bytes(_h(b["d"]) + _h(b["z"]))
        assert sk.public_key().public_bytes_raw() == _h(b["pk"])
        assert sk.decapsulate(_h(b["ct"])) == _h(b["ss"])
        # ct_n is a malformed ciphertext: implicit rejection gives ss_n, no exception
        assert sk.decapsulate(_h(b["ct_n"])) == _h(b["ss_n"])


def test_nist_kat_mldsa65_keygen_and_verify_through_root_key() -> None:
    blocks = _kat(_cv_dir() / "MLDSA" / "kat_MLDSA_65_det_pure.rsp")
    assert len(blocks) == 100
    for b in blocks:
        root = RootKey.from_seed(_h(b["xi"]))
        assert root.public_bytes() == _h(b["pk"])
        msg, sm = _h(b["msg"]), _h(b["sm"])
        sig = sm[: len(sm) - len(msg)]
        assert len(sig) == 3309 and sm[len(sig) :] == msg
        pub = mldsa.MLDSA65PublicKey.from_public_bytes(_h(b["pk"]))
        pub.verify(sig, msg, _h(b["ctx"]))
        with pytest.raises(InvalidSignature):
            pub.verify(sig, msg + b"\x00", _h(b["ctx"]))


def test_wycheproof_mldsa65_verify() -> None:
    seen = {"valid": 0, "invalid": 0}
    for group, t in _wycheproof("mldsa_65_verify_test.json"):
        sig, msg = _h(t["sig"]), _h(t["msg"])
        ctx = _h(t["ctx"]) if "ctx" in t else None
        try:
            pub = mldsa.MLDSA65PublicKey.from_public_bytes(_h(group["publicKey"]))
            pub.verify(sig, msg, ctx)
            ok = True
        except (InvalidSignature, ValueError):
            ok = False
        assert ok is (t["result"] == "valid"), t["tcId"]
        seen[t["result"]] += 1
    assert seen["valid"] > 50 and seen["invalid"] > 50


def test_wycheproof_mldsa65_malformed_root_key_gives_certificate_error() -> None:
    cert = deployment().credentials[XWING.kem_id].certificate
    bad_keys = {
        group["publicKey"]
        for group, t in _wycheproof("mldsa_65_verify_test.json")
        if "IncorrectPublicKeyLength" in t.get("flags", [])
    }
    assert bad_keys
    for hexkey in bad_keys:
        with pytest.raises(CertificateError):
            cert.verify(_h(hexkey), cert.not_before + 1)


# -- Wycheproof X25519, and low-order points through the hybrid KEM (item 3) ---------------


def _low_order_points() -> list[bytes]:
    pts = {
        _h(t["public"])
        for _, t in _wycheproof("x25519_test.json")
        if "ZeroSharedSecret" in t["flags"]
    }
    assert len(pts) >= 10
    return sorted(pts)


def test_wycheproof_x25519_primitive() -> None:
    n = 0
    for _, t in _wycheproof("x25519_test.json"):
        priv = X25519PrivateKey.from_private_bytes(_h(t["private"]))
        pub = X25519PublicKey.from_public_bytes(_h(t["public"]))
        if _h(t["shared"]) == bytes(32):
            with pytest.raises(ValueError):
                priv.exchange(pub)
        else:
            assert priv.exchange(pub) == _h(t["shared"]), t["tcId"]
        n += 1
    assert n == 518


@pytest.mark.parametrize("kem", [XWING, MLKEM1024_X25519], ids=lambda k: k.name)
def test_wycheproof_x25519_low_order_points_raise_kem_error(kem: HybridKem) -> None:
    key = kem.generate()
    mlkem_pk = key.public_bytes[: kem.mlkem_pk_size]
    for point in _low_order_points():
        with pytest.raises(KemError):
            kem.public_key(mlkem_pk + point).encapsulate()
        ct = bytes(kem.mlkem_ct_size) + point
        with pytest.raises(KemError):
            key.decapsulate(ct)


def _replace_share_x25519(frame: bytes, point: bytes) -> bytes:
    ch = ClientHello.from_bytes(frame)
    shares = tuple((kid, pk[:-32] + point) for kid, pk in ch.shares)
    return ClientHello(ch.client_time_ms, ch.suites, shares).to_bytes()


def _replace_sh_ct_x25519(frame: bytes, point: bytes) -> bytes:
    sh = ServerHello.from_bytes(frame)
    return ServerHello(
        sh.suite, sh.server_time_ms, sh.ciphertext[:-32] + point, sh.certificate
    ).to_bytes()


@pytest.mark.parametrize("where", ["client_hello_share", "server_hello_ciphertext", "client_kem"])
def test_wycheproof_x25519_low_order_points_abort_handshake_item03(where: str) -> None:
    for point in _low_order_points()[:6]:

        def tamper(direction: str, index: int, frame: bytes, point: bytes = point) -> bytes:
            if where == "client_hello_share" and (direction, index) == ("c2s", 0):
                return _replace_share_x25519(frame, point)
            if where == "server_hello_ciphertext" and (direction, index) == ("s2c", 0):
                return _replace_sh_ct_x25519(frame, point)
            if where == "client_kem" and (direction, index) == ("c2s", 1):
                mac_at = len(frame) - 32
                return frame[: mac_at - 32] + point + frame[mac_at:]
            return frame

        pair = connect(make_pair(), tamper)
        assert not pair.established
        victim = pair.client_events if where == "server_hello_ciphertext" else pair.server_events
        (fail,) = failures(victim)
        assert fail.code == CloseCode.HANDSHAKE_FAILED


def test_low_order_point_in_a_certified_gateway_key_aborts_client() -> None:
    """Even a root-signed certificate whose X25519 half is low order never yields a session."""
    d = deployment()
    point = _low_order_points()[0]
    real = d.credentials[XWING.kem_id].certificate
    bad = d.root.certify(XWING, real.public_key[:-32] + point, real.not_before, real.not_after)
    policy = SuitePolicy()
    hs = ClientHandshake(d.root_public, policy)
    hello = ClientHello.from_bytes(hs.hello(0))
    eph_pk = XWING.public_key(dict(hello.shares)[XWING.kem_id])
    _, ct = eph_pk.encapsulate()
    suite = policy.allowed[0]
    sh = ServerHello(suite.suite_id, 0, ct, bad.to_bytes()).to_bytes()
    from crypto.errors import HandshakeFailed

    with pytest.raises(HandshakeFailed):
        hs.on_server_hello(sh, 0, real.not_before + 10)


# -- Wycheproof ChaCha20-Poly1305 and HKDF through the primitives we use -----------------


def test_wycheproof_chacha20_poly1305_via_suite_factory() -> None:
    aead = SUITES_BY_ID[0x0101].aead_factory()
    assert SUITES_BY_ID[0x0101].aead is AeadId.CHACHA20_POLY1305
    seen = {"valid": 0, "invalid": 0}
    for _, t in _wycheproof("chacha20_poly1305_test.json"):
        key, iv, aad = _h(t["key"]), _h(t["iv"]), _h(t["aad"])
        ct_tag = _h(t["ct"]) + _h(t["tag"])
        if t["result"] == "valid":
            box = aead(key)
            assert box.encrypt(iv, _h(t["msg"]), aad) == ct_tag, t["tcId"]
            assert box.decrypt(iv, ct_tag, aad) == _h(t["msg"]), t["tcId"]
        else:
            with pytest.raises((InvalidTag, ValueError)):
                aead(key).decrypt(iv, ct_tag, aad)
        seen[t["result"]] += 1
    assert seen["valid"] > 200 and seen["invalid"] > 50


def test_wycheproof_hkdf_sha256_via_keyschedule_extract() -> None:
    n = 0
    for _, t in _wycheproof("hkdf_sha256_test.json"):
        prk = hkdf_extract(_h(t["salt"]), _h(t["ikm"]))
        if t["result"] == "valid":
            okm = HKDFExpand(hashes.SHA256(), t["size"], _h(t["info"])).derive(prk)
            assert okm == _h(t["okm"]), t["tcId"]
        else:
            with pytest.raises(ValueError):
                HKDFExpand(hashes.SHA256(), t["size"], _h(t["info"])).derive(prk)
        n += 1
    assert n == 86


def test_certificate_roundtrip_with_kat_root_key() -> None:
    b = _kat(_cv_dir() / "MLDSA" / "kat_MLDSA_65_det_pure.rsp")[0]
    root = RootKey.from_seed(_h(b["xi"]))
    key = XWING.generate()
    cert = root.certify(XWING, key.public_bytes, 100, 200)
    parsed = GatewayCertificate.from_bytes(cert.to_bytes())
    parsed.verify(_h(b["pk"]), 150)
    with pytest.raises(CertificateError):
        parsed.verify(_h(b["pk"]), 201)
