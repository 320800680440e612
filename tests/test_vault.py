"""Shamir vault share files: subsets, tampering named, x=0/duplicates/foreign refused, CLI."""

from __future__ import annotations

import itertools
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import vault
from crypto.vault import VaultError, VaultRecoverError, VaultShareInvalid

SECRET = bytes(range(32))


def named(files: list[bytes], idx: list[int]) -> list[tuple[str, bytes]]:
    return [(f"share-{i + 1}", files[i]) for i in idx]


def test_every_3_subset_recovers_every_2_subset_fails_loudly() -> None:
    files = vault.split(SECRET, 3, 5)
    for idx in itertools.combinations(range(5), 3):
        assert vault.recover(named(files, list(idx))) == SECRET
    for idx in itertools.combinations(range(5), 2):
        with pytest.raises(VaultRecoverError, match="threshold is 3"):
            vault.recover(named(files, list(idx)))


def test_one_flipped_bit_anywhere_in_any_share_is_detected_and_named() -> None:
    files = vault.split(SECRET, 3, 5, passphrase=b"pw")
    for target in range(5):
        length = len(files[target])
        for bit in range(0, length * 8, 7):  # a spread of bit positions, header and body
            bad = bytearray(files[target])
            bad[bit // 8] ^= 1 << (bit % 8)
            others = [i for i in range(5) if i != target][:2]
            shares = [(f"share-{target + 1}", bytes(bad)),
                      *named(files, others)]
            with pytest.raises(VaultShareInvalid) as info:
                vault.recover(shares, passphrase=b"pw")
            assert info.value.share == f"share-{target + 1}"


def test_x_zero_injection_refused() -> None:
    files = vault.split(SECRET, 3, 5)
    forged = bytearray(files[0])
    forged[24] = 0  # the index byte
    with pytest.raises(VaultShareInvalid, match="index 0") as info:
        vault.recover([("evil", bytes(forged)), *named(files, [1, 2])])
    assert info.value.share == "evil"
    # a re-indexed share fails its AEAD, whichever index it claims
    forged[24] = 4
    with pytest.raises(VaultShareInvalid, match="authentication failed"):
        vault.recover([("evil", bytes(forged)), *named(files, [1, 2])])


def test_duplicate_and_foreign_shares_refused() -> None:
    files = vault.split(SECRET, 3, 5)
    other = vault.split(SECRET, 3, 5)
    with pytest.raises(VaultShareInvalid, match="duplicate share index 1"):
        vault.recover([("a", files[0]), ("b", files[0]), ("c", files[1])])
    with pytest.raises(VaultShareInvalid, match="another vault") as info:
        vault.recover([("a", files[0]), ("b", files[1]), ("foreign", other[2])])
    assert info.value.share == "foreign"


def test_wrong_passphrase_names_first_share() -> None:
    files = vault.split(SECRET, 2, 3, passphrase=b"right")
    with pytest.raises(VaultShareInvalid) as info:
        vault.recover(named(files, [0, 1]), passphrase=b"wrong")
    assert info.value.share == "share-1"


def test_share_values_bound_to_header() -> None:
    files = vault.split(SECRET, 3, 5)
    head = struct.unpack_from(">8s16sBBBH", files[0])
    assert head[0] == b"PXVAULT1" and head[2:] == (1, 3, 5, 1)
    assert SECRET not in files[0]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_defined_error(data: bytes) -> None:
    with pytest.raises(VaultShareInvalid):
        vault.parse_share(data, "fuzz")


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(2, 5), st.integers(0, 3))
def test_random_secrets_roundtrip(secret: bytes, t: int, extra: int) -> None:
    files = vault.split(secret, t, t + extra)
    assert vault.recover(named(files, list(range(extra, extra + t)))) == secret


def test_bad_split_parameters() -> None:
    with pytest.raises(VaultError):
        vault.split(b"", 3, 5)
    with pytest.raises(VaultError):
        vault.split(SECRET, 6, 5)


def test_cli_split_and_recover(tmp_path: Path) -> None:
    env = dict(os.environ, PLEXI_VAULT_PASSPHRASE="cli-pass")
    (tmp_path / "secret").write_bytes(SECRET)
    run = [sys.executable, "-m", "plexigate.cli"] if Path("plexigate/cli.py").exists() else [
        sys.executable, "-m", "gateway.cli"]
    r = subprocess.run([*run, "vault", "split", "--secret-file", str(tmp_path / "secret"),
                        "--out", str(tmp_path / "shares")], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert SECRET.hex() not in r.stdout + r.stderr
    shares = sorted((tmp_path / "shares").iterdir())
    assert len(shares) == 5 and all((p.stat().st_mode & 0o777) == 0o600 for p in shares)
    r = subprocess.run([*run, "vault", "recover", "--out", str(tmp_path / "rec"),
                        *map(str, shares[1:4])], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rec").read_bytes() == SECRET
    r = subprocess.run([*run, "vault", "recover", "--out", str(tmp_path / "rec2"),
                        *map(str, shares[:2])], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "cannot recover" in r.stderr
    assert not (tmp_path / "rec2").exists()
    # an existing output file is not overwritten without --force
    (tmp_path / "rec").write_bytes(b"keep me")
    r = subprocess.run([*run, "vault", "recover", "--out", str(tmp_path / "rec"),
                        *map(str, shares[1:4])], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "refusing to overwrite" in r.stdout
    assert (tmp_path / "rec").read_bytes() == b"keep me"
    r = subprocess.run([*run, "vault", "recover", "--force", "--out", str(tmp_path / "rec"),
                        *map(str, shares[1:4])], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and (tmp_path / "rec").read_bytes() == SECRET
