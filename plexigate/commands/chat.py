"""`plexigate chat`: the interactive demo chat client."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from clients.chat import run_chat
from gateway.keyfiles import KeyFileError, load_auth_secret, load_root_public
from plexigate.devtoken import check_user, issue_token


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("chat", help="interactive demo chat client")
    p.add_argument("--url", default="ws://127.0.0.1:8765")
    p.add_argument(
        "--keys",
        default=".plexigate/keys",
        help="keys dir: its root.pub is pinned; its dev secret issues a token "
        "when no token is given",
    )
    p.add_argument("--root", help="pinned root public key file (default KEYS/root.pub)")
    p.add_argument("--token-file", help="file holding a JWT (or set PLEXI_TOKEN)")
    p.add_argument(
        "--name", default=os.environ.get("USER", "guest"), help="user name for a development token"
    )
    p.add_argument("--channel", default="lobby")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    keys = Path(args.keys)
    try:
        root = load_root_public(Path(args.root) if args.root else keys)
        if args.token_file:
            token = Path(args.token_file).read_text().strip()
        elif os.environ.get("PLEXI_TOKEN"):
            token = os.environ["PLEXI_TOKEN"]
        else:
            token = issue_token(check_user(args.name), hs256_secret=load_auth_secret(keys))
    except (KeyFileError, OSError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    return asyncio.run(run_chat(args.url, root, token, args.channel))
