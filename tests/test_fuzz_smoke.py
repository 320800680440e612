"""Run every fuzz target for a few seconds (CI): each must finish without a finding."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
TARGETS = ["fuzz_record", "fuzz_handshake", "fuzz_cert", "fuzz_ops"]


@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_target_runs_clean(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(FUZZ))
    try:
        module = importlib.import_module(name)
        assert module.main(["--seconds", "3", "--seed", "1234"]) == 0
    finally:
        sys.path.remove(str(FUZZ))
    out = capsys.readouterr().out
    assert "no finding" in out and int(out.split(": ")[1].split()[0]) > 100


def test_harness_reports_a_finding() -> None:
    """The harness is not a no-op: a target with a planted bug is caught."""
    sys.path.insert(0, str(FUZZ))
    try:
        harness = importlib.import_module("_harness")

        def check(data: bytes) -> None:
            if len(data) > 3 and data[1] == 0xFF:
                raise IndexError("planted bug")

        assert harness.run("planted", [b"\x00\x00\x00\x00"], check, ["--seconds", "3"]) == 1
    finally:
        sys.path.remove(str(FUZZ))
