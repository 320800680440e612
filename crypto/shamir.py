"""Shamir secret sharing over GF(2^8), byte by byte.

Field: GF(256) with the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11B); multiplication and
division through log/exp tables over the generator 3, so no data-dependent loop counts.
A secret of L bytes is split into n shares (x, y) where x in 1..255 is the share index and y
is L bytes: y[j] = f_j(x) for a random polynomial f_j of degree t-1 with f_j(0) = secret[j].
Coefficients come from `secrets` and are uniform over all 256 values (zero allowed; the
leading coefficient is not forced non-zero, which would bias the distribution).

:func:`combine` checks its inputs (x != 0, distinct x, equal lengths, at least ``threshold``
shares) and raises :class:`ShamirError` otherwise. It cannot tell a wrong share from a right
one: integrity is the vault's job (crypto/vault.py), which authenticates every share and
checks a commitment to the recovered secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

_POLY = 0x11B


def _build_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    exp = [0] * 512
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        # multiply x by the generator 3: x*2 ^ x
        x2 = x << 1
        if x2 & 0x100:
            x2 ^= _POLY
        x = x2 ^ x
    for i in range(255, 512):
        exp[i] = exp[i - 255]
    return tuple(exp), tuple(log)


_EXP, _LOG = _build_tables()


def gf_mul(a: int, b: int) -> int:
    """Product in GF(256)."""
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_div(a: int, b: int) -> int:
    """Quotient a / b in GF(256); b must be non-zero."""
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(256)")
    if a == 0:
        return 0
    return _EXP[(_LOG[a] - _LOG[b]) % 255]


class ShamirError(ValueError):
    """Bad parameters or shares given to split/combine."""


@dataclass(frozen=True, slots=True)
class Share:
    """One share: index x in 1..255 and y, as long as the secret."""

    x: int
    y: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.x, int) or not 1 <= self.x <= 255:
            raise ShamirError(f"share index must be in 1..255, got {self.x!r}")
        if not isinstance(self.y, bytes) or not self.y:
            raise ShamirError("share value must be non-empty bytes")


def split(secret: bytes, threshold: int, count: int) -> list[Share]:
    """Split ``secret`` into ``count`` shares, any ``threshold`` of which recover it."""
    if not isinstance(secret, bytes):
        raise TypeError("secret must be bytes")
    if not secret:
        raise ShamirError("secret must not be empty")
    if not 2 <= threshold <= count <= 255:
        raise ShamirError(f"need 2 <= threshold <= count <= 255, got t={threshold} n={count}")
    # coeffs[j] = [secret[j], c1, ..., c_{t-1}] for byte j
    coeffs = [
        [b] + [secrets.randbelow(256) for _ in range(threshold - 1)] for b in secret
    ]
    shares = []
    for x in range(1, count + 1):
        out = bytearray(len(secret))
        for j, poly in enumerate(coeffs):
            acc = 0
            for c in reversed(poly):  # Horner
                acc = gf_mul(acc, x) ^ c
            out[j] = acc
        shares.append(Share(x, bytes(out)))
    return shares


def combine(shares: Sequence[Share], threshold: int) -> bytes:
    """Recover the secret from at least ``threshold`` shares (Lagrange at x = 0)."""
    if threshold < 2:
        raise ShamirError("threshold must be at least 2")
    if len(shares) < threshold:
        raise ShamirError(f"need {threshold} shares, got {len(shares)}")
    xs = [s.x for s in shares]
    for s in shares:
        if s.x == 0:  # unreachable through Share, kept for defence in depth
            raise ShamirError("share index 0 refused")
    if len(set(xs)) != len(xs):
        raise ShamirError(f"duplicate share index in {sorted(xs)}")
    length = len(shares[0].y)
    if any(len(s.y) != length for s in shares):
        raise ShamirError("shares have different lengths")
    use = list(shares[:threshold])
    out = bytearray(length)
    for i, si in enumerate(use):
        # Lagrange basis l_i(0) = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR
        num, den = 1, 1
        for j, sj in enumerate(use):
            if i != j:
                num = gf_mul(num, sj.x)
                den = gf_mul(den, sj.x ^ si.x)
        li = gf_div(num, den)
        for k in range(length):
            out[k] ^= gf_mul(si.y[k], li)
    return bytes(out)
