"""Shamir over GF(256): field arithmetic, every threshold subset, refusals."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import shamir
from crypto.shamir import ShamirError, Share, combine, gf_div, gf_mul, split


def test_field_known_products() -> None:
    # AES field (FIPS-197 section 4.2 example): {57} x {83} = {c1}
    assert gf_mul(0x57, 0x83) == 0xC1
    assert gf_mul(0x57, 0x13) == 0xFE
    for a in range(1, 256):
        assert gf_mul(a, gf_div(1, a)) == 1
        assert gf_div(gf_mul(a, 0x1D), 0x1D) == a


def test_all_3_of_5_subsets_recover_and_2_subsets_refused() -> None:
    secret = os.urandom(32)
    shares = split(secret, 3, 5)
    for subset in itertools.combinations(shares, 3):
        assert combine(list(subset), 3) == secret
    for subset in itertools.combinations(shares, 2):
        with pytest.raises(ShamirError, match="need 3 shares"):
            combine(list(subset), 3)


def test_x_zero_and_duplicates_refused() -> None:
    shares = split(b"secret!", 2, 3)
    with pytest.raises(ShamirError, match=r"1\.\.255"):
        Share(0, b"\x01" * 7)
    with pytest.raises(ShamirError, match="duplicate"):
        combine([shares[0], shares[0]], 2)
    with pytest.raises(ShamirError, match="lengths"):
        combine([shares[0], Share(2, b"x")], 2)


def test_bad_parameters() -> None:
    with pytest.raises(ShamirError):
        split(b"s", 1, 3)
    with pytest.raises(ShamirError):
        split(b"s", 4, 3)
    with pytest.raises(ShamirError):
        split(b"s", 2, 256)
    with pytest.raises(ShamirError):
        split(b"", 2, 3)


def test_coefficients_uniform_including_zero() -> None:
    # With t=2, share 1 of secret byte 0 is the coefficient itself: all 256 values appear.
    seen = {split(b"\x00", 2, 2)[0].y[0] for _ in range(4000)}
    assert 0 in seen and len(seen) == 256
    assert shamir.secrets is not None  # coefficients come from `secrets`


@settings(max_examples=60, deadline=None)
@given(secret=st.binary(min_size=1, max_size=48), t=st.integers(2, 6),
       extra=st.integers(0, 4), data=st.data())
def test_random_split_combine(secret: bytes, t: int, extra: int, data: st.DataObject) -> None:
    n = t + extra
    shares = split(secret, t, n)
    subset = data.draw(st.permutations(shares)).__getitem__(slice(0, t))
    assert combine(list(subset), t) == secret
    if t > 2:
        # t-1 shares interpolated as if the threshold were t-1 give a different value
        # (almost always); the API refuses to try with fewer than t.
        with pytest.raises(ShamirError):
            combine(list(subset[: t - 1]), t)
