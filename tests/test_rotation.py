"""Rotating keys: fake clock, usage counter, old ciphertexts, disabled/destroyed, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flaky_store import FlakyStore

from crypto.keystore import (
    HsmUnavailable,
    KeyDestroyed,
    KeyDisabled,
)
from crypto.rotation import (
    MAX_AES_GCM_USES,
    ROTATION_STEPS,
    OpenError,
    RotatingKey,
    RotationPolicy,
    VersionState,
)
from crypto.softstore import SoftKeyStore

REPO = Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def store(tmp_path: Path) -> SoftKeyStore:
    return SoftKeyStore.create(tmp_path / "ks", b"pw", scrypt_n=2**10)


def test_fake_clock_drives_time_rotation(store: SoftKeyStore, tmp_path: Path) -> None:
    clock = Clock()
    rk = RotatingKey.create(store, tmp_path / "k.json", "ticket",
                            RotationPolicy(max_age=3600), clock=clock)
    c1 = rk.seal(b"one")
    clock.t += 3599
    assert rk.maybe_rotate() is None
    clock.t += 1
    assert rk.due() == "age"
    assert rk.maybe_rotate() == 2
    assert rk.active_version == 2 and rk.maybe_rotate() is None
    assert rk.open(c1) == b"one"  # old ciphertexts still open
    c2 = rk.seal(b"two")
    assert c2[1:5] == b"\0\0\0\2"


def test_usage_counter_drives_rotation_and_never_exceeds_limit(
    store: SoftKeyStore, tmp_path: Path
) -> None:
    rk = RotatingKey.create(store, tmp_path / "k.json", "storage",
                            RotationPolicy(max_uses=10, use_block=4))
    blobs = [rk.seal(b"m%d" % i) for i in range(35)]
    versions = [int.from_bytes(b[1:5], "big") for b in blobs]
    for v in set(versions):
        assert versions.count(v) <= 10
    assert versions[:10] == [1] * 10 and versions[10] == 2
    assert rk.active_version == 4
    assert all(rk.open(b) == b"m%d" % i for i, b in enumerate(blobs[10:], start=10))
    with pytest.raises(KeyDisabled):  # v1 retired: keep_enabled=3 -> v2..v4 usable
        rk.open(blobs[0])


def test_gcm_limit_enforced_by_policy() -> None:
    assert RotationPolicy().max_uses == MAX_AES_GCM_USES == 2**32
    with pytest.raises(ValueError):
        RotationPolicy(max_uses=2**32 + 1)


def test_uses_survive_restart_conservatively(store: SoftKeyStore, tmp_path: Path) -> None:
    rk = RotatingKey.create(store, tmp_path / "k.json", "t",
                            RotationPolicy(max_uses=100, use_block=16))
    for _ in range(3):
        rk.seal(b"x")
    again = RotatingKey.load(store, tmp_path / "k.json", RotationPolicy(max_uses=100))
    assert again.uses == 16  # the whole reserved block counts as used


def test_disabled_and_destroyed_fail_clearly(store: SoftKeyStore, tmp_path: Path) -> None:
    rk = RotatingKey.create(store, tmp_path / "k.json", "t")
    c1 = rk.seal(b"v1 data")
    rk.rotate()
    with pytest.raises(Exception, match="active"):
        rk.disable(2)
    rk.disable(1)
    with pytest.raises(KeyDisabled, match="t v1 is disabled"):
        rk.open(c1)
    rk.enable(1)
    assert rk.open(c1) == b"v1 data"
    rk.destroy(1)
    with pytest.raises(KeyDestroyed, match="t v1 is destroyed"):
        rk.open(c1)
    reloaded = RotatingKey.load(store, tmp_path / "k.json")
    assert reloaded.state.get(1).wrapped is None
    with pytest.raises(KeyDestroyed):
        reloaded.open(c1)
    c2 = reloaded.seal(b"v2 data")
    with pytest.raises(OpenError):
        reloaded.open(c2[:-1] + bytes([c2[-1] ^ 1]))
    assert b"v1 data" not in (tmp_path / "k.json").read_bytes()


def test_hsm_down_keeps_loaded_keys_working_and_rotation_fails_retryably(
    store: SoftKeyStore, tmp_path: Path
) -> None:
    flaky = FlakyStore(store)
    rk = RotatingKey.create(flaky, tmp_path / "k.json", "t")
    c = rk.seal(b"before")
    flaky.down = True
    assert rk.open(c) == b"before"  # key material already unwrapped
    assert rk.open(rk.seal(b"during")) == b"during"
    with pytest.raises(HsmUnavailable) as info:
        rk.rotate()
    assert info.value.retryable
    assert rk.active_version == 1  # nothing half applied
    assert RotatingKey.load(flaky, tmp_path / "k.json").active_version == 1


CRASH_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {repo!r})
    from crypto.softstore import SoftKeyStore
    from crypto.rotation import RotatingKey
    step = sys.argv[1]
    def hook(s):
        if s == step:
            os.kill(os.getpid(), signal.SIGKILL)
    store = SoftKeyStore.open({ks!r}, b"pw")
    rk = RotatingKey.load(store, {state!r}, hook=hook)
    rk.rotate(reason="crash-test")
    print("survived")
""")


@pytest.mark.parametrize("step", ROTATION_STEPS)
def test_process_killed_at_each_rotation_step_recovers_one_active(
    store: SoftKeyStore, tmp_path: Path, step: str
) -> None:
    state = tmp_path / "k.json"
    rk = RotatingKey.create(store, state, "ticket")
    old = rk.seal(b"sealed before the crash")
    script = CRASH_SCRIPT.format(repo=str(REPO), ks=str(tmp_path / "ks"), state=str(state))
    proc = subprocess.run([sys.executable, "-c", script, step], capture_output=True,
                          timeout=60, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    recovered = RotatingKey.load(store, state)
    actives = [v for v in recovered.state.versions if v.state is VersionState.ACTIVE]
    assert len(actives) == 1
    assert not any(v.state is VersionState.PENDING for v in recovered.state.versions)
    expected = 1 if step in ("generated", "pending-written") else 2
    assert recovered.active_version == expected
    assert recovered.open(old) == b"sealed before the crash"
    assert recovered.open(recovered.seal(b"after")) == b"after"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    # and rotation continues normally afterwards
    assert recovered.rotate() == expected + 1  # a rolled-back v2 number is reused


def test_cli_keys_rotate(tmp_path: Path) -> None:
    env = dict(os.environ, PLEXI_KEYSTORE_PASSPHRASE="cli-pw")
    base = [sys.executable, "-m", "plexigate.cli"] if (REPO / "plexigate/cli.py").exists() \
        else [sys.executable, "-m", "gateway.cli"]
    common = ["--store", "soft", "--store-dir", str(tmp_path / "ks"),
              "--audit-dir", str(tmp_path / "audit")]
    state = str(tmp_path / "t.json")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, "keys", "rotate", "--state", state, *args, *common],
                              env=env, capture_output=True, text=True, timeout=60, cwd=REPO)

    r = run("--create", "ticket", "--create-store")
    assert r.returncode == 0, r.stderr
    r = run()
    assert r.returncode == 0 and "rotated to v2" in r.stdout, r.stderr
    r = run("--if-due")
    assert r.returncode == 0 and "not due" in r.stdout
    r = run("--destroy", "1")
    assert r.returncode == 0 and "v1 destroyed" in r.stdout
    assert "cli-pw" not in r.stdout + r.stderr
