"""Fuzz the inner application protocol parser gateway.ops.parse_request.

Rule: it returns a Request or raises OpError with a non-empty code; nothing else.
"""

from __future__ import annotations

import sys

import _harness

from gateway.ops import OpError, parse_request

SEEDS = [
    b'{"op":"auth","id":1,"token":"eyJhbGciOiJIUzI1NiJ9.e30.sig"}',
    b'{"op":"join","id":2,"channel":"team:ops"}',
    b'{"op":"leave","id":3,"channel":"lobby"}',
    b'{"op":"publish","id":4,"channel":"lobby","body":"hello \\u00e9 \\ud83d\\ude00"}',
    b'{"op":"history","id":5,"channel":"lobby","limit":10}',
    b'{"op":"ping","id":6}',
    b'{"op":"publish","id":7,"channel":"a","body":"\\ud800"}',
    b"[" * 100 + b"]" * 100,
]


def check(data: bytes) -> None:
    try:
        req = parse_request(data, 1024)
    except OpError as exc:
        assert exc.code and isinstance(exc.code, str)
        return
    assert req.op in {"auth", "join", "leave", "publish", "history", "ping"}


def main(argv: list[str] | None = None) -> int:
    return _harness.run("fuzz_ops", SEEDS, check, argv)


if __name__ == "__main__":
    sys.exit(main())
