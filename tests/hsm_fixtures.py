"""A real SoftHSM2 token for the whole test session, made by the project's own `hsm init`.

Loaded through ``pytest_plugins`` in tests/conftest.py. If softhsm2 is missing, the fixture
fails (never skips): the tests claim behaviour of a real token.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SOFTHSM_LIB = "/usr/lib/softhsm/libsofthsm2.so"
TEST_PIN = "test-pin-4821"


@dataclass(frozen=True)
class HsmToken:
    directory: Path
    conf: Path
    label: str
    pin: str
    library: str


@pytest.fixture(scope="session")
def hsm_token() -> Iterator[HsmToken]:
    if shutil.which("softhsm2-util") is None or not os.path.exists(SOFTHSM_LIB):
        pytest.fail("softhsm2 is not installed (apt-get install softhsm2); HSM tests need it")
    from gateway.commands.hsm import init_token

    tmp = Path(tempfile.mkdtemp(prefix="plexi-hsm-"))
    conf = init_token(tmp, "plexi-test", TEST_PIN)
    # SoftHSM2 reads its config once, at C_Initialize: set it before the library loads.
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield HsmToken(tmp, conf, "plexi-test", TEST_PIN, SOFTHSM_LIB)
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old
        shutil.rmtree(tmp, ignore_errors=True)
