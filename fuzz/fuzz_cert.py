"""Fuzz the gateway certificate: parse, then verify against the pinned root.

Rule: from_bytes returns or raises CertificateError; verify of anything but the genuine
certificate raises CertificateError (nothing else, and never passes).
"""

from __future__ import annotations

import sys
import time

import _harness
from _seeds import deployment

from crypto.cert import GatewayCertificate
from crypto.errors import CertificateError

ROOT, CREDS = deployment()
GENUINE = {c.certificate.to_bytes() for c in CREDS.values()}
SEEDS = sorted(GENUINE)
NOW = int(time.time())


def check(data: bytes) -> None:
    try:
        cert = GatewayCertificate.from_bytes(data)
    except CertificateError:
        return
    try:
        cert.verify(ROOT, NOW)
    except CertificateError:
        return
    assert cert.to_bytes() in GENUINE, "a modified certificate verified"


def main(argv: list[str] | None = None) -> int:
    return _harness.run("fuzz_cert", SEEDS, check, argv)


if __name__ == "__main__":
    sys.exit(main())
