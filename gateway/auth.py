"""Client authentication: a bearer JWT from the application's auth service.

Claims: ``sub`` (user id), ``exp`` (required), optional ``nbf``/``iat``, and ``chans``:
a map from channel name or wildcard namespace (``team:*``, ``*``) to the actions granted,
any of ``sub`` (join and read), ``pub`` (publish) and ``hist`` (read history).

Only the algorithms the gateway is configured with are accepted (HS256 with a secret,
EdDSA with Ed25519 public keys); ``alg: none`` and any other algorithm are refused by
PyJWT before a signature is looked at. Tokens are never logged; errors name the class of
failure only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from crypto.errors import CloseCode

MAX_TOKEN_SIZE = 8192
USER_RE = re.compile(r"[A-Za-z0-9_.@:+\-]{1,128}")  # used with fullmatch
MAX_EXP = 2**40  # seconds: year ~36800; beyond is a bug or an attack, not a token
MAX_GRANTS = 256


class Action(StrEnum):
    SUBSCRIBE = "sub"
    PUBLISH = "pub"
    HISTORY = "hist"


class AuthError(Exception):
    close_code: CloseCode = CloseCode.AUTH_FAILED

    def __init__(self, reason: str, code: CloseCode | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.close_code = code


@dataclass(frozen=True, slots=True)
class Principal:
    user: str
    expires_at: int
    grants: tuple[tuple[str, frozenset[Action]], ...]

    def can(self, channel: str, action: Action) -> bool:
        for pattern, actions in self.grants:
            if action in actions and _matches(pattern, channel):
                return True
        return False

    def to_bytes(self) -> bytes:
        """Serialised into resumption tickets (sealed; never sent in the clear)."""
        chans = {p: sorted(a.value for a in acts) for p, acts in self.grants}
        return orjson.dumps({"sub": self.user, "exp": self.expires_at, "chans": chans})

    @classmethod
    def from_bytes(cls, data: bytes) -> Principal:
        try:
            claims = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise AuthError("ticket principal malformed") from None
        if not isinstance(claims, dict):
            raise AuthError("ticket principal malformed")
        return _principal(claims)


def _matches(pattern: str, channel: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(":*"):
        return channel.startswith(pattern[:-1]) and len(channel) > len(pattern) - 1
    return pattern == channel


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    hs256_secrets: tuple[bytes, ...] = ()
    ed25519_keys: tuple[Ed25519PublicKey, ...] = ()
    audience: str | None = None
    leeway_s: int = 30

    def verify(self, token: str, now: float | None = None) -> Principal:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_SIZE:
            raise AuthError("token missing or too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("token malformed") from None
        alg = header.get("alg")
        keys: Sequence[bytes | Ed25519PublicKey]
        if alg == "HS256":
            keys = self.hs256_secrets
        elif alg == "EdDSA":
            keys = self.ed25519_keys
        else:
            raise AuthError("token algorithm not allowed")
        if not keys:
            raise AuthError("token algorithm not configured")
        last: Exception | None = None
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key=key,
                    algorithms=[alg],
                    audience=self.audience,
                    leeway=self.leeway_s,
                    options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
                )
                return _principal(claims)
            except jwt.ExpiredSignatureError:
                raise AuthError("token expired", CloseCode.TOKEN_EXPIRED) from None
            except jwt.InvalidSignatureError as exc:
                last = exc
            except jwt.PyJWTError:
                raise AuthError("token invalid") from None
        raise AuthError("token signature invalid") from last


def _principal(claims: Mapping[str, object]) -> Principal:
    user = claims.get("sub")
    exp = claims.get("exp")
    # User ids end up in logs, replies and other users' screens: a conservative charset
    # (ids, emails, UUIDs) keeps control characters and look-alike tricks out.
    if not isinstance(user, str) or not USER_RE.fullmatch(user):
        raise AuthError("token subject invalid")
    if not isinstance(exp, int) or isinstance(exp, bool) or not 0 < exp < MAX_EXP:
        raise AuthError("token expiry invalid")
    raw = claims.get("chans", {})
    if not isinstance(raw, dict) or len(raw) > MAX_GRANTS:
        raise AuthError("token channel grants invalid")
    grants: list[tuple[str, frozenset[Action]]] = []
    for pattern, actions in raw.items():
        if not isinstance(pattern, str) or not isinstance(actions, list):
            raise AuthError("token channel grants invalid")
        try:
            grants.append((pattern, frozenset(Action(a) for a in actions)))
        except ValueError:
            raise AuthError("token names an unknown action") from None
    return Principal(user, exp, tuple(grants))
