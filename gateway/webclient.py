"""Serve the browser client over plain HTTP on the gateway's own port (development aid).

The gateway is a WebSocket server; ``websockets`` lets a ``process_request`` hook answer a
request before the opening handshake. :class:`WebClient` answers a plain (non-upgrade) GET
of ``/``, ``/app.js``, ``/style.css``, ``/favicon.svg`` and ``/plexichat.bundle.js`` with
the static files of ``clients/web`` and a strict Content-Security-Policy; every WebSocket
upgrade goes on to the PlexiChat handshake untouched. A non-upgrade GET of any other path
gets a 404 instead of the 426 the handshake would give.

The files are read once, at construction. The page takes the pinned root key and the token
from the URL fragment (``#root=<hex>&token=<jwt>``), which browsers never send to a server,
so neither appears in a request line or a log. Only the files listed here are served: no
path from the request reaches the file system.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

log = logging.getLogger("plexigate.webclient")

# Scripts, styles and the WebSocket only from this origin; nothing inline, no plugins, no
# framing, no <base> tricks, no form posts anywhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

# URL path -> (file relative to the web root, content type)
ROUTES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
    "/plexichat.bundle.js": ("dist/plexichat.bundle.js", "text/javascript; charset=utf-8"),
}


def default_web_root() -> Path:
    """``clients/web`` next to the installed ``gateway`` package (found without importing it)."""
    spec = importlib.util.find_spec("clients")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "web"
    return Path(__file__).resolve().parent.parent / "clients" / "web"


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str


def _is_upgrade(request: Request) -> bool:
    upgrade = request.headers.get("Upgrade", "")
    return "websocket" in upgrade.lower()


class WebClient:
    """The ``process_request`` hook: static browser client for plain GETs, else the handshake."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_web_root()
        self.files: dict[str, StaticFile] = {}
        for path, (name, ctype) in ROUTES.items():
            try:
                self.files[path] = StaticFile((self.root / name).read_bytes(), ctype)
            except OSError:
                log.warning("web client file %s missing under %s: not served", name, self.root)

    @property
    def available(self) -> bool:
        """True when the page, the app and the bundle are all there."""
        return all(p in self.files for p in ("/", "/app.js", "/plexichat.bundle.js"))

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        if _is_upgrade(request):
            return None  # a WebSocket: on to the PlexiChat handshake
        path = request.path.split("?", 1)[0]
        static = self.files.get(path)
        if static is None:
            return _response(404, "Not Found", b"not found\n", "text/plain; charset=utf-8")
        return _response(200, "OK", static.body, static.content_type)


def _response(status: int, reason: str, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    return Response(status, reason, headers, body)


def dev_page_url(
    host: str,
    port: int,
    root_public_key: bytes,
    hs256_secret: bytes,
    user: str = "browser",
    ttl_s: int = 3600,
) -> str:
    """A ready page URL for development: pinned root key and a fresh dev token in the fragment.

    The fragment stays in the browser (the page reads it, then removes it from the address
    bar), so neither reaches the gateway's request log. The token is signed with the keys
    directory's development HS256 secret, with every grant (as ``plexigate token`` does).
    """
    now = int(time.time())
    claims = {"sub": user, "iat": now, "exp": now + ttl_s, "chans": {"*": ["sub", "pub", "hist"]}}
    token = jwt.encode(claims, hs256_secret, algorithm="HS256")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 (a wildcard bind: browse to loopback)
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/#root={root_public_key.hex()}&token={token}"
