"""Audit log: every kind of tampering detected (also through `plexigate audit verify`),
write failure refuses the operation, no key bytes or PINs in records or log lines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crypto.audit import AuditLog, AuditSigner, verify_log
from crypto.audited import AuditedKeyStore
from crypto.keyconfig import open_audit_log
from crypto.keystore import AuditVerifyError, AuditWriteError, MasterKind, UnwrapError
from crypto.softstore import SoftKeyStore

REPO = Path(__file__).resolve().parent.parent
CLI = ([sys.executable, "-m", "plexigate.cli"] if (REPO / "plexigate/cli.py").exists()
       else [sys.executable, "-m", "gateway.cli"])


@pytest.fixture()
def logdir(tmp_path: Path) -> tuple[Path, bytes]:
    signer, _seed = AuditSigner.generate()
    log = AuditLog(tmp_path / "audit.log", signer, checkpoint_every=4, fsync=False)
    for i in range(10):
        log.append("derive", key="derive", version=1, detail={"label": f"ticket/{i}"})
    log.close()  # writes a final checkpoint
    pub = signer.public_bytes()
    (tmp_path / "audit.pub").write_bytes(pub)
    return tmp_path, pub


def lines(p: Path) -> list[bytes]:
    return p.read_bytes().splitlines(keepends=True)


def cli_verify(d: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "audit", "verify", "--log", str(d / "audit.log")],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_clean_log_verifies(logdir: tuple[Path, bytes]) -> None:
    d, pub = logdir
    res = verify_log(d / "audit.log", pub)
    assert res.records == 13 and res.checkpoints == 3 and res.unanchored == 0
    r = cli_verify(d)
    assert r.returncode == 0 and "OK" in r.stdout


def tamper_modify(ls: list[bytes]) -> list[bytes]:
    rec = json.loads(ls[5])
    rec["detail"]["label"] = "ticket/evil"
    ls[5] = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return ls


def tamper_modify_rehash(ls: list[bytes]) -> list[bytes]:
    from crypto.audit import record_hash

    rec = json.loads(ls[5])
    rec["op"] = "wrap"
    rec["hash"] = record_hash(rec)  # a consistent record, but the chain breaks after it
    ls[5] = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return ls


CASES = {
    "modified": (tamper_modify, 5),
    "modified-and-rehashed": (tamper_modify_rehash, 6),
    "deleted": (lambda ls: ls[:3] + ls[4:], 3),
    "reordered": (lambda ls: [*ls[:2], ls[3], ls[2], *ls[4:]], 2),
    "truncated-records": (lambda ls: ls[:7], 7),
    "truncated-mid-record": (lambda ls: [*ls[:-1], ls[-1][:40]], 12),
    "emptied": (lambda ls: [], 0),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_each_tampering_detected_by_cli(logdir: tuple[Path, bytes], kind: str) -> None:
    d, pub = logdir
    fn, index = CASES[kind]
    log = d / "audit.log"
    log.write_bytes(b"".join(fn(lines(log))))
    if kind != "emptied":
        with pytest.raises(AuditVerifyError) as info:
            verify_log(log, pub)
        assert info.value.index == index, str(info.value)
    r = cli_verify(d)
    assert r.returncode == 1, r.stdout
    assert "FAILED at record" in r.stderr


def test_forged_checkpoint_detected(logdir: tuple[Path, bytes], tmp_path: Path) -> None:
    d, pub = logdir
    log = d / "audit.log"
    ls = lines(log)
    # re-sign the checkpoint at index 4 with another key claiming the same key id
    other, _ = AuditSigner.generate()
    rec = json.loads(ls[4])
    assert rec["op"] == "checkpoint"
    rec["sig"] = other.sign_hash(rec["hash"])
    ls[4] = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    log.write_bytes(b"".join(ls))
    with pytest.raises(AuditVerifyError, match="forged") as info:
        verify_log(log, pub)
    assert info.value.index == 4
    assert cli_verify(d).returncode == 1


def test_rewritten_log_with_attackers_key_detected(logdir: tuple[Path, bytes]) -> None:
    d, pub = logdir
    attacker, _ = AuditSigner.generate()
    fake = AuditLog(d / "fake.log", attacker, checkpoint_every=4, fsync=False)
    fake.append("derive")
    fake.close()
    with pytest.raises(AuditVerifyError, match="unknown audit key"):
        verify_log(d / "fake.log", pub)


def test_checkpoint_file_tampering_detected(logdir: tuple[Path, bytes]) -> None:
    d, pub = logdir
    ck = d / "audit.log.ckpt"
    rec = json.loads(ck.read_bytes())
    rec["seq"] = 1
    ck.write_bytes(json.dumps(rec).encode())
    with pytest.raises(AuditVerifyError):
        verify_log(d / "audit.log", pub)
    ck.unlink()
    with pytest.raises(AuditVerifyError, match="checkpoint file missing"):
        verify_log(d / "audit.log", pub)


def test_reopen_continues_chain(logdir: tuple[Path, bytes]) -> None:
    d, _pub = logdir
    # a new writer needs the same signer; use a fresh one and check the chain still links
    signer, _ = AuditSigner.generate()
    log = AuditLog(d / "audit2.log", signer, fsync=True)
    log.append("wrap")
    log.close()
    log = AuditLog(d / "audit2.log", signer, fsync=True)
    log.append("unwrap")
    log.close()
    assert verify_log(d / "audit2.log", signer.public_bytes()).records == 4


def test_audit_write_failure_refuses_the_operation(tmp_path: Path) -> None:
    store = SoftKeyStore.create(tmp_path / "ks", b"pw", scrypt_n=2**10)
    signer, _ = AuditSigner.generate()
    log = AuditLog(tmp_path / "audit.log", signer, fsync=False)
    audited = AuditedKeyStore(store, log)
    assert len(audited.derive(b"ok")) == 32
    assert log._fd is not None
    os.close(log._fd)  # the disk goes away under the log
    with pytest.raises(AuditWriteError):
        audited.derive(b"refused")
    with pytest.raises(AuditWriteError):  # stays refused
        audited.wrap(b"data")
    with pytest.raises(AuditWriteError):  # rotation refused before it is attempted
        audited.rotate_master(MasterKind.WRAP)
    assert [m.version for m in store.masters() if m.kind is MasterKind.WRAP] == [1]
    log._fd = None


def test_audit_log_on_unwritable_path_refuses(tmp_path: Path) -> None:
    signer, _ = AuditSigner.generate()
    with pytest.raises(AuditWriteError):
        AuditLog(tmp_path / "missing-dir" / "audit.log", signer)


def test_no_key_bytes_or_pin_in_records_or_log_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    passphrase = b"very-secret-passphrase-9431"
    store = SoftKeyStore.create(tmp_path / "ks", passphrase, scrypt_n=2**10)
    audited = AuditedKeyStore(store, open_audit_log(store, tmp_path / "aud", fsync=False))
    from crypto.rotation import RotatingKey

    secrets_seen: list[bytes] = [passphrase]
    secrets_seen += [k for k in store._keys.values()]
    secrets_seen.append(audited.derive(b"ticket/1"))
    payload = b"x-wing-private-key-material-0123456789"
    secrets_seen.append(payload)
    blob = audited.wrap(payload)
    audited.unwrap(blob)
    with pytest.raises(UnwrapError):
        audited.unwrap(blob[:-1] + b"\0")
    rk = RotatingKey.create(audited, tmp_path / "k.json", "ticket", audit=audited.log)
    rk.rotate()
    audited.rotate_master(MasterKind.DERIVE)
    audited.log.close()
    text = (tmp_path / "aud" / "audit.log").read_bytes()
    text += caplog.text.encode()
    for s in secrets_seen:
        for form in (s, s.hex().encode(), __import__("base64").b64encode(s)):
            assert form not in text
    recs = [json.loads(x) for x in (tmp_path / "aud" / "audit.log").read_bytes().splitlines()]
    ops = [r["op"] for r in recs]
    for op in ("derive", "wrap", "unwrap", "rotate", "generate", "rotate-master", "checkpoint"):
        assert op in ops
    assert any(r["outcome"] == "error" and r["detail"].get("error") == "UnwrapError"
               for r in recs)
    assert verify_log(tmp_path / "aud" / "audit.log",
                      (tmp_path / "aud" / "audit.pub").read_bytes()).records == len(recs)
