"""`plexigate keys rotate`: rotate a versioned key (added to the `keys` parser by keys.py).

    plexigate keys rotate --state ticket.json [--create ID] [--if-due] [--max-age S]
        [--max-uses N] [--destroy V | --disable V] --store soft --store-dir D [--audit-dir A]

Exit codes: 0 rotated (or nothing due with --if-due), 1 error, 3 HSM unavailable (retry).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from crypto.keystore import HsmUnavailable, KeyStoreError
from crypto.rotation import RotatingKey, RotationPolicy
from gateway.commands._argtypes import int_range, positive_float, positive_int
from gateway.commands._keyopts import add_store_args, open_store

log = logging.getLogger("plexigate.keys")


def add_parser(ksub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = ksub.add_parser("rotate", help="rotate a versioned key (by policy or now)")
    p.add_argument("--state", required=True, help="the key's state file")
    p.add_argument("--create", metavar="KEY_ID", help="create the key if the file is absent")
    p.add_argument("--if-due", action="store_true", help="rotate only if the policy says so")
    p.add_argument("--max-age", type=positive_float, default=7 * 86400.0,
                   help="seconds (default 7d)")
    p.add_argument("--max-uses", type=int_range(1, 2**32), default=2**32,
                   help="seals per version (<= 2^32)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--disable", type=positive_int, metavar="V", help="disable version V instead")
    g.add_argument("--destroy", type=positive_int, metavar="V", help="destroy version V instead")
    add_store_args(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        policy = RotationPolicy(max_age=args.max_age, max_uses=args.max_uses)
        store, audit = open_store(args)
        try:
            path = Path(args.state)
            if not path.exists() and args.create:
                rk = RotatingKey.create(store, path, args.create, policy, audit=audit)
                print(f"created {rk.key_id} v{rk.active_version}")
                return 0
            rk = RotatingKey.load(store, path, policy, audit=audit)
            if args.disable is not None:
                rk.disable(args.disable)
                print(f"{rk.key_id} v{args.disable} disabled")
            elif args.destroy is not None:
                rk.destroy(args.destroy)
                print(f"{rk.key_id} v{args.destroy} destroyed")
            elif args.if_due:
                new = rk.maybe_rotate()
                print(f"{rk.key_id}: " + (f"rotated to v{new}" if new else "not due"))
            else:
                new = rk.rotate(reason="manual")
                print(f"{rk.key_id}: rotated to v{new}")
            for v in rk.state.versions:
                print(f"  v{v.version} {v.state.value}")
        finally:
            if audit is not None:
                audit.close()
            store.close()
    except HsmUnavailable as exc:
        print(f"keys rotate: {exc} (retry later)", file=sys.stderr)
        return 3
    except (KeyStoreError, ValueError, OSError) as exc:
        print(f"keys rotate: {exc}", file=sys.stderr)
        return 1
    return 0
