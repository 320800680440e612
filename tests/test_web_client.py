"""The browser client (clients/web): JS known answers under node, and headless Chromium
against a real gateway on loopback.

* ``node clients/web/test/kat.mjs``: the JS X-Wing against the draft vectors, the JS key
  schedule / ratchet / records against tests/vectors/plexichat_v1.json, and the JS
  certificate check on certificates made here by crypto/cert.py (genuine and broken).
* the committed bundle is what ``npm run build`` makes from the sources.
* the gateway's process_request hook serves the page with a strict CSP and leaves
  WebSocket upgrades to the handshake.
* Chromium (Playwright, /usr/bin/chromium) opens the page served by the gateway, does the
  handshake in JS, authenticates, joins, and exchanges messages both ways with a Python SDK
  client; a wrong pinned root or a tampered certificate is refused with close code 4005.

Node and the node_modules are required, not optional: a missing tool FAILS these tests
with the command to install it (.ci/run installs them).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pki import HS256_SECRET, pki, token
from playwright.async_api import expect

from clients.sdk import Client
from crypto.cert import SIG_CONTEXT, GatewayCertificate, RootKey, _tbs, compute_key_id
from crypto.handshake import GatewayCredential
from crypto.kem import KEMS, XWING, KemId
from crypto.session import SessionLimits
from gateway.auth import TokenVerifier
from gateway.config import GatewayConfig
from gateway.server import Gateway
from gateway.webclient import CONTENT_SECURITY_POLICY

REPO = Path(__file__).resolve().parent.parent
WEB = REPO / "clients" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = "install with: apt-get install -y nodejs npm && (cd clients/web && npm ci)"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not installed; the browser client's tests need it ({INSTALL_HINT})")
    if not (WEB / "node_modules" / "@noble" / "post-quantum").is_dir():
        pytest.fail(f"clients/web/node_modules is missing ({INSTALL_HINT})")
    return node


# -- node known-answer tests -------------------------------------------------------------


def _signed(root: RootKey, kem_id: int, key_id: bytes, nb: int, na: int, pk: bytes) -> bytes:
    """A certificate signed over exactly these fields (lets a test sign bad contents)."""
    kem = KEMS[KemId(kem_id)]
    tbs = _tbs(kem, key_id, nb, na, pk)
    sig = root._key.sign(tbs, SIG_CONTEXT)
    return tbs + struct.pack(">H", len(sig)) + sig


def _cert_cases(tmp_path: Path) -> Path:
    p = pki()
    now = int(time.time())
    cases: list[dict[str, Any]] = []
    for kem_id, cred in p.credentials.items():
        cert = cred.certificate
        cases.append(
            {
                "name": f"genuine {cert.kem.name}",
                "cert": cert.to_bytes().hex(),
                "expect": "ok",
                "kem_id": int(kem_id),
                "key_id": cert.key_id.hex(),
            }
        )
    good = p.credentials[KemId.XWING].certificate
    raw = good.to_bytes()
    pk = good.public_key
    other_root = RootKey.from_seed(bytes(range(1, 33)))

    def bad(name: str, data: bytes, reason: str, root: bytes | None = None) -> None:
        case: dict[str, Any] = {"name": name, "cert": data.hex(), "expect": "reject"}
        case["reason"] = reason
        if root is not None:
            case["root_public"] = root.hex()
        cases.append(case)

    flipped_sig = bytearray(raw)
    flipped_sig[-1] ^= 1
    bad("flipped signature byte", bytes(flipped_sig), "signature")
    longer = replace(good, not_after=good.not_after + 1)  # same signature, other contents
    bad("tampered not_after", longer.to_bytes(), "signature")
    flipped_pk = bytearray(raw)
    flipped_pk[60] ^= 1  # inside the public key
    bad("flipped public key byte", bytes(flipped_pk), "signature")
    bad("wrong pinned root", raw, "signature", other_root.public_bytes())
    bad("signed by another root", other_root.certify(XWING, pk, now - 10, now + 10).to_bytes(),
        "signature")
    bad("expired", _signed(p.root, 1, compute_key_id(XWING, pk), now - 100, now - 10, pk),
        "validity")
    bad("not yet valid", _signed(p.root, 1, compute_key_id(XWING, pk), now + 100, now + 200, pk),
        "validity")
    bad("key id mismatch", _signed(p.root, 1, bytes(16), now - 10, now + 10, pk), "key id")
    unreduced = bytearray(pk)
    unreduced[0] = 0xFF
    unreduced[1] |= 0x0F  # first ML-KEM coefficient = 4095 >= q
    ur = bytes(unreduced)
    bad("unreduced ML-KEM key", _signed(p.root, 1, compute_key_id(XWING, ur), now - 10,
        now + 10, ur), "malformed")
    bad("trailing byte", raw + b"\x00", "length")
    bad("truncated", raw[:-1], "length")
    bad("bad magic", b"PXC2" + raw[4:], "not a PlexiChat")
    bad("unknown KEM", raw[:4] + b"\x00\x09" + raw[6:], "unknown KEM")
    path = tmp_path / "cert-cases.json"
    path.write_text(json.dumps({"root_public": p.root_public.hex(), "now": now, "certs": cases}))
    return path


def test_js_known_answers(tmp_path: Path) -> None:
    node = _node()
    cases = _cert_cases(tmp_path)
    proc = subprocess.run(
        [node, str(WEB / "test" / "kat.mjs"), str(cases)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"kat.mjs failed:\n{proc.stdout}\n{proc.stderr}"
    assert "ok x-wing draft vectors" in proc.stdout
    assert "plexichat_v1.json" in proc.stdout
    assert "ok certificates from the Python code (15 cases)" in proc.stdout
    assert "KAT OK" in proc.stdout


def test_committed_bundle_is_the_build_of_the_sources(tmp_path: Path) -> None:
    _node()
    script = json.loads((WEB / "package.json").read_text())["scripts"]["build"]
    args = [a for a in shlex.split(script) if not a.startswith("--outfile=")]
    out = tmp_path / "bundle.js"
    esbuild = WEB / "node_modules" / ".bin" / args[0]
    proc = subprocess.run(
        [str(esbuild), *args[1:], f"--outfile={out}"],
        capture_output=True, text=True, timeout=120, cwd=WEB,
    )
    assert proc.returncode == 0, proc.stderr
    committed = (WEB / "dist" / "plexichat.bundle.js").read_bytes()
    assert out.read_bytes() == committed, "dist/plexichat.bundle.js is stale: run npm run build"


# -- a gateway that serves the page --------------------------------------------------------


@asynccontextmanager
async def web_gateway(
    *,
    serve_web_client: bool = True,
    credentials: dict[KemId, GatewayCredential] | None = None,
    session: SessionLimits | None = None,
) -> AsyncIterator[Gateway]:
    config = GatewayConfig(port=0, session=session or SessionLimits())
    gw = Gateway(
        config,
        credentials or pki().credentials,
        TokenVerifier(hs256_secrets=(HS256_SECRET,)),
        serve_web_client=serve_web_client,
    )
    await gw.start()
    try:
        yield gw
    finally:
        await gw.close()


async def _http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(10):
        raw = await reader.read()  # the gateway closes after the response
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


async def test_gateway_serves_the_page_with_csp_and_still_speaks_plexichat() -> None:
    async with web_gateway() as gw:
        status, headers, body = await _http_get(gw.port, "/")
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'self'; connect-src 'self';" in CONTENT_SECURITY_POLICY
        assert headers["x-content-type-options"] == "nosniff"
        assert b'src="/app.js"' in body
        for path, ctype in (
            ("/app.js", "text/javascript; charset=utf-8"),
            ("/plexichat.bundle.js", "text/javascript; charset=utf-8"),
            ("/style.css", "text/css; charset=utf-8"),
        ):
            status, headers, body = await _http_get(gw.port, path)
            assert (status, headers["content-type"]) == (200, ctype), path
            assert int(headers["content-length"]) == len(body) > 100
        assert (await _http_get(gw.port, "/../pyproject.toml"))[0] == 404
        assert (await _http_get(gw.port, "/favicon.ico"))[0] == 404
        # The same port still runs the PlexiChat handshake for WebSocket upgrades.
        async with await Client.connect(gw.url, pki().root_public, token("py")) as c:
            await c.ping()
    async with web_gateway(serve_web_client=False) as gw:
        status, _, _ = await _http_get(gw.port, "/")
        assert status == 426  # no page: only the WebSocket handshake


# -- headless Chromium -----------------------------------------------------------------------


@asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("playwright missing: pip install -e '.[test]'")
    async with async_playwright() as pw:
        ctx = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        ctx.set_default_timeout(20_000)
        try:
            yield ctx
        finally:
            await ctx.close()


def _page_url(gw: Gateway, root: bytes, tok: str) -> str:
    # Root key and token in the fragment: never sent to the server, never in its logs.
    return f"http://127.0.0.1:{gw.port}/#root={root.hex()}&token={tok}&channel=lobby"


async def _open(ctx: Any, url: str) -> tuple[Any, list[str]]:
    page = await ctx.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console {msg.type}: {msg.text}")
        if msg.type == "error"
        else None,
    )
    await page.goto(url)
    return page, problems


async def test_browser_chats_with_a_python_client(tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    # The gateway asks for a rekey after 6 records it sent: the browser answers REKEY_REQUEST.
    limits = SessionLimits(rekey_after_records=6)
    async with asyncio.timeout(90), web_gateway(session=limits) as gw, chromium(tmp_path) as ctx:
        page, problems = await _open(ctx, _page_url(gw, pki().root_public, token("alice")))
        # (expect() polls from Playwright's own world: the page's CSP forbids eval there)
        await expect(page.locator("#status")).to_have_text("connected")
        assert await page.text_content("#suite") == "XWING_CHACHA20POLY1305_SHA256"
        assert await page.text_content("#user") == "alice"
        key_id = pki().credentials[KemId.XWING].certificate.key_id.hex()
        assert await page.text_content("#keyid") == key_id
        assert "token=" not in page.url  # the fragment was removed from the address bar
        await page.click("#join")
        await page.wait_for_selector("#log li:has-text('joined #lobby')")

        async with await Client.connect(gw.url, pki().root_public, token("bob")) as bob:
            await bob.join("lobby")
            for i in range(4):
                # browser -> Python
                line = f"from the browser {i}: ünïcödé ✓ <b>not bold</b>"
                await page.fill("#line", line)
                await page.press("#line", "Enter")
                got = await asyncio.wait_for(bob.recv(), 10)
                assert (got.sender, got.channel, got.body) == ("alice", "lobby", line)
                # Python -> browser
                reply = f"from python {i} \"quoted\" & <i>escaped</i>"
                await bob.publish("lobby", reply)
                item = page.locator("#log li", has_text=f"from python {i} ")
                await item.wait_for()
                assert (await item.locator(".from").text_content()) == "bob:"
                text = await item.text_content()
                assert text is not None and text.endswith(reply)  # shown as text, not markup
            assert await page.locator("#log b, #log i").count() == 0
            # The gateway's REKEY_REQUEST moved the browser's session to a new epoch, and
            # messages still flow in both directions under it.
            epoch = int(await page.text_content("#epoch") or "0")
            assert epoch >= 1
            await page.click("#rekey")  # and the browser can start one itself
            await expect(page.locator("#epoch")).to_have_text(str(epoch + 1))
            await page.fill("#line", "after the browser's own rekey")
            await page.press("#line", "Enter")
            got = await asyncio.wait_for(bob.recv(), 10)
            assert got.body == "after the browser's own rekey"
            await bob.publish("lobby", "python again")
            await page.locator("#log li", has_text="python again").wait_for()
            await page.screenshot(path=str(shots / "chat.png"), full_page=True)
        assert problems == []  # no CSP violation, no script error
    print(f"screenshot: {shots / 'chat.png'}")
    if dest := os.environ.get("PLEXICHAT_SCREENSHOT_DIR"):
        shutil.copy(shots / "chat.png", Path(dest) / "chat.png")


def _tampered_credential() -> dict[KemId, GatewayCredential]:
    cred = pki().credentials[KemId.XWING]
    cert = cred.certificate
    # One changed byte of the signed contents, signature kept: GatewayCredential only checks
    # that the public key matches, so the gateway will send this certificate.
    tampered = GatewayCertificate(
        cert.kem, cert.key_id, cert.not_before, cert.not_after + 1, cert.public_key,
        cert.signature,
    )
    return {KemId.XWING: GatewayCredential(cred.private_key, tampered)}


@pytest.mark.parametrize("case", ["wrong pinned root", "tampered certificate"])
async def test_browser_refuses_an_unverified_gateway(tmp_path: Path, case: str) -> None:
    if case == "wrong pinned root":
        root = RootKey.from_seed(bytes(range(1, 33))).public_bytes()
        creds = None
    else:
        root = pki().root_public
        creds = _tampered_credential()
    async with (
        asyncio.timeout(60),
        web_gateway(credentials=creds) as gw,
        chromium(tmp_path) as ctx,
    ):
        page, problems = await _open(ctx, _page_url(gw, root, token("mallory-victim")))
        await page.wait_for_selector("#error:not([hidden])")
        error = await page.text_content("#error")
        assert error is not None and "close code 4005" in error, error
        assert await page.text_content("#status") == "refused"
        assert await page.text_content("#suite") == "-"
        assert await page.is_disabled("#send")
        shot = tmp_path / f"refused-{case.replace(' ', '-')}.png"
        await page.screenshot(path=str(shot))
        if dest := os.environ.get("PLEXICHAT_SCREENSHOT_DIR"):
            shutil.copy(shot, Path(dest) / shot.name)
        assert gw.sessions == 0  # nobody authenticated
        assert problems == []


async def test_serve_prints_a_dev_url_that_the_browser_can_use(tmp_path: Path) -> None:
    from gateway.commands.serve import _dev_page_url, build_gateway
    from gateway.keyfiles import init_keys
    from plexigate.cli import build_parser

    keys = str(tmp_path / "keys")
    init_keys(Path(keys))  # development keys (with a dev secret)
    args = build_parser().parse_args(["serve", "--keys", keys, "--port", "0"])
    gw = build_gateway(args)
    await gw.start()
    try:
        url = _dev_page_url(args, gw)
        assert url is not None and url.startswith(f"http://127.0.0.1:{gw.port}/#root=")
        assert "?" not in url  # root and token only in the fragment
        async with asyncio.timeout(60), chromium(tmp_path) as ctx:
            page, problems = await _open(ctx, url)
            await expect(page.locator("#status")).to_have_text("connected")
            assert await page.text_content("#user") == "browser"
            assert problems == []
    finally:
        await gw.close()
    off = build_parser().parse_args(["serve", "--keys", keys, "--port", "0", "--no-web-client"])
    gw = build_gateway(off)
    await gw.start()
    try:
        assert gw.web_client is None and _dev_page_url(off, gw) is None
        assert (await _http_get(gw.port, "/"))[0] == 426
    finally:
        await gw.close()
