"""Software key store: scrypt-encrypted 0600 files, atomic writes, same API as PKCS#11."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crypto.keystore import KeyNotFound, KeyPolicyViolation, MasterKind, UnwrapError
from crypto.softstore import SoftKeyStore, WrongPassphrase

N = 2**10  # fast scrypt for tests; production default is 2**15


def test_files_private_encrypted_and_reopenable(tmp_path: Path) -> None:
    s = SoftKeyStore.create(tmp_path / "ks", b"pass", scrypt_n=N)
    d = s.derive(b"ticket/1")
    blob = s.wrap(b"long-term key", b"aad")
    s.close()
    files = sorted((tmp_path / "ks").iterdir())
    assert {p.name for p in files} == {"store.json", "master-wrap-v1.key",
                                       "master-derive-v1.key"}
    for p in files:
        assert p.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ks").stat().st_mode & 0o777 == 0o700
    s2 = SoftKeyStore.open(tmp_path / "ks", b"pass")
    assert s2.derive(b"ticket/1") == d
    assert s2.unwrap(blob, b"aad") == b"long-term key"
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path / "ks"))


def test_wrong_passphrase_and_loose_permissions(tmp_path: Path) -> None:
    SoftKeyStore.create(tmp_path / "ks", b"pass", scrypt_n=N).close()
    with pytest.raises(WrongPassphrase):
        SoftKeyStore.open(tmp_path / "ks", b"nope")
    os.chmod(tmp_path / "ks" / "master-wrap-v1.key", 0o644)
    with pytest.raises(KeyPolicyViolation, match="readable by others"):
        SoftKeyStore.open(tmp_path / "ks", b"pass")


def test_swapped_key_files_refused(tmp_path: Path) -> None:
    SoftKeyStore.create(tmp_path / "ks", b"pass", scrypt_n=N).close()
    ks = tmp_path / "ks"
    a, b = ks / "master-wrap-v1.key", ks / "master-derive-v1.key"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    with pytest.raises(WrongPassphrase):
        SoftKeyStore.open(ks, b"pass")


def test_master_rotation_keeps_old_blobs(tmp_path: Path) -> None:
    s = SoftKeyStore.create(tmp_path / "ks", b"pass", scrypt_n=N)
    old = s.wrap(b"data")
    assert s.rotate_master(MasterKind.WRAP) == 2
    assert s.unwrap(old) == b"data" and s.wrap(b"x")[1:5] == b"\0\0\0\2"
    with pytest.raises(UnwrapError):
        s.unwrap(old[:-1] + bytes([old[-1] ^ 1]))
    with pytest.raises(KeyNotFound):
        s.derive(b"x", version=9)
    s2 = SoftKeyStore.open(tmp_path / "ks", b"pass")
    assert [(m.kind.value, m.version, m.active) for m in s2.masters()] == [
        ("derive", 1, True), ("wrap", 1, False), ("wrap", 2, True)]
    assert s2.unwrap(old) == b"data"


def test_derivation_matches_the_documented_construction(tmp_path: Path) -> None:
    import hashlib
    import hmac

    s = SoftKeyStore.create(tmp_path / "ks", b"pass", scrypt_n=N)
    key = s._keys[(MasterKind.DERIVE, 1)]
    b1 = hmac.new(key, b"plexi/derive/v1\x01\x00\x28lbl", hashlib.sha256).digest()
    b2 = hmac.new(key, b"plexi/derive/v1\x02\x00\x28lbl", hashlib.sha256).digest()
    assert s.derive(b"lbl", 40) == (b1 + b2)[:40]
    for bad in (0, 65):
        with pytest.raises(ValueError):
            s.derive(b"lbl", bad)
    with pytest.raises(TypeError):
        s.derive("lbl", 32)  # type: ignore[arg-type]
