"""`plexigate token`: issue a development token signed with the keys directory's secret."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.keyfiles import KeyFileError, load_auth_secret
from plexigate.devtoken import issue_token, parse_grants


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("token", help="issue a development JWT (HS256, keys dir secret)")
    p.add_argument("--keys", default=".plexigate/keys")
    p.add_argument("--user", required=True)
    p.add_argument(
        "--grant",
        action="append",
        default=[],
        help="CHANNEL=ACTIONS, actions from sub,pub,hist; CHANNEL may be "
        "'ns:*' or '*' (repeatable; default '*=sub,pub,hist')",
    )
    p.add_argument("--ttl", type=int, default=3600, help="seconds until expiry")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        grants = parse_grants(args.grant) if args.grant else {"*": ["sub", "pub", "hist"]}
        secret = load_auth_secret(Path(args.keys))
    except (ValueError, KeyFileError) as exc:
        print(f"error: {exc}")
        return 1
    print(issue_token(args.user, grants, args.ttl, hs256_secret=secret))
    return 0
