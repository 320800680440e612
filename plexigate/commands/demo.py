"""`plexigate demo`: a gateway and two scripted clients exchanging messages, in one process."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from clients.chat import format_message, safe
from clients.sdk import Client, RequestError, SessionClosed
from crypto.suite import SuitePolicy
from gateway.auth import TokenVerifier
from gateway.config import GatewayConfig
from gateway.keyfiles import init_keys, load_auth_secret, load_credentials, load_root_public
from gateway.server import Gateway
from plexigate.devtoken import issue_token

SCRIPT = [
    ("alice", "hello bob, this line travelled in its own ChaCha20-Poly1305 record"),
    ("bob", "hi alice: our session keys came from X-Wing (ML-KEM-768 + X25519)"),
    ("alice", "and each message key is used once, then the chain key is erased"),
    ("bob", "see you after the rekey"),
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="start a gateway and two scripted clients (no Redis)")
    p.add_argument("--channel", default="lobby")
    p.set_defaults(func=run)


async def demo(channel: str) -> int:
    with tempfile.TemporaryDirectory(prefix="plexigate-demo-") as tmp:
        keys = Path(tmp) / "keys"
        init_keys(keys)
        secret = load_auth_secret(keys)
        policy = SuitePolicy.from_names(
            ["XWING_CHACHA20POLY1305_SHA256", "MLKEM1024X25519_CHACHA20POLY1305_SHA256"]
        )
        gw = Gateway(
            GatewayConfig(port=0, policy=policy),
            load_credentials(keys),
            TokenVerifier(hs256_secrets=(secret,)),
            serve_web_client=True,  # the browser page on GET / of the same port
        )
        await gw.start()
        clients: dict[str, Client] = {}
        try:
            return await _script(gw, load_root_public(keys), secret, channel, clients)
        finally:
            for c in clients.values():
                await c.close()
            await gw.close()


async def _script(
    gw: Gateway, root: bytes, secret: bytes, channel: str, clients: dict[str, Client]
) -> int:
    print(f"* gateway listening on {gw.url} (keys in a temp dir, in-memory stores)")
    for name in ("alice", "bob"):
        c = await Client.connect(gw.url, root, issue_token(name, hs256_secret=secret))
        clients[name] = c
        try:
            await c.join(channel)
        except (RequestError, SessionClosed) as exc:
            print(f"* cannot join {safe(channel)}: {safe(str(exc))}")
            return 1
        print(f"* {name} connected: handshake {c.suite}, authenticated, joined {channel}")
    for sender, text in SCRIPT:
        other = clients["bob" if sender == "alice" else "alice"]
        ack = await clients[sender].publish(channel, text)
        got = await asyncio.wait_for(other.recv(), 5)
        print(f"  {format_message(got)}   (ack {ack['mid']}, seen by {other.user})")
    clients["alice"].rekey()
    await asyncio.sleep(0.2)
    await clients["alice"].publish(channel, "this one is sealed under epoch 1")
    got = await asyncio.wait_for(clients["bob"].recv(), 5)
    print(f"  {format_message(got)}   (after rekey: epoch {clients['alice'].session.epoch})")
    print("* demo done: every line above was decrypted by its recipient")
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(demo(args.channel))
