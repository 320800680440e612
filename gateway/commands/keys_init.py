"""`plexigate keys init DIR`: make a root key, gateway keys, certificates, auth secret."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.commands import keys
from gateway.keyfiles import KeyFileError, init_keys


def _run(args: argparse.Namespace) -> int:
    try:
        init_keys(Path(args.dir), validity_s=args.days * 86400, force=args.force)
    except KeyFileError as exc:
        print(f"error: {exc}")
        return 1
    print(f"keys written to {args.dir}; clients pin {Path(args.dir) / 'root.pub'}")
    return 0


def _add(ksub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = ksub.add_parser("init", help="create root key, gateway keys and certificates")
    p.add_argument("dir", help="keys directory (created, mode 0700)")
    p.add_argument("--days", type=int, default=365, help="certificate validity in days")
    p.add_argument("--force", action="store_true", help="replace existing keys")
    p.set_defaults(func=_run)


if _add not in keys.EXTRA:
    keys.EXTRA.insert(0, _add)
