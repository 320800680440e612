"""Inner application protocol: JSON objects carried in APPLICATION records.

Parsing is strict: an unknown op, a missing or ill-typed field, or an oversized value gives
:class:`OpError` with a stable code that is returned to the client in an ``error`` reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

CHANNEL_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")  # used with fullmatch
MAX_REQUEST_ID = 2**53


class OpError(Exception):
    def __init__(self, code: str, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Request:
    op: str
    id: int | None
    channel: str | None = None
    body: str | None = None
    token: str | None = None
    limit: int | None = None
    settings: dict[str, Any] | None = None


_CHANNEL_OPS = {"join", "leave", "publish", "history", "members", "settings", "set_settings"}
_ALL_OPS = _CHANNEL_OPS | {"auth", "ping", "channels"}
MAX_SETTINGS_BYTES = 512


def parse_request(data: bytes, max_body: int) -> Request:
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise OpError("bad_request", "payload is not JSON") from None
    if not isinstance(obj, dict):
        raise OpError("bad_request", "payload is not an object")
    rid = obj.get("id")
    if rid is not None and (
        not isinstance(rid, int) or isinstance(rid, bool) or not 0 <= rid < MAX_REQUEST_ID
    ):
        raise OpError("bad_request", "id must be a non-negative integer")
    op = obj.get("op")
    if not isinstance(op, str) or op not in _ALL_OPS:
        raise OpError("unknown_op", "unknown op", rid)
    channel = obj.get("channel")
    if op in _CHANNEL_OPS:
        if not isinstance(channel, str) or not CHANNEL_RE.fullmatch(channel):
            raise OpError("bad_channel", "channel name invalid", rid)
    body = obj.get("body")
    if op == "publish":
        if not isinstance(body, str):
            raise OpError("bad_request", "body must be a string", rid)
        # Counted as the gateway will send it (JSON-escaped), so a body of control
        # characters cannot expand past the record limit after it was accepted.
        if len(orjson.dumps(body)) > max_body:
            raise OpError("too_large", "body too large", rid)
    token = obj.get("token")
    if op == "auth" and not isinstance(token, str):
        raise OpError("bad_request", "token must be a string", rid)
    limit = obj.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise OpError("bad_request", "limit must be a non-negative integer", rid)
    settings = obj.get("settings")
    if op == "set_settings":
        if not isinstance(settings, dict):
            raise OpError("bad_request", "settings must be an object", rid)
        if len(orjson.dumps(settings)) > MAX_SETTINGS_BYTES:
            raise OpError("too_large", "settings too large", rid)
    return Request(
        op,
        rid,
        channel,
        body if op == "publish" else None,
        token if op == "auth" else None,
        limit,
        settings if op == "set_settings" else None,
    )


def encode(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)
