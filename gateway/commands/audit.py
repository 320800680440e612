"""`plexigate audit verify`: check the key-operation audit log for tampering.

    plexigate audit verify --log A/audit.log --pubkey A/audit.pub [--checkpoint A/audit.log.ckpt]

Exit 0 and a summary if the chain and every signed checkpoint verify; exit 1 naming the
first bad record otherwise (modified, deleted, reordered, truncated, forged checkpoint).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crypto.audit import verify_log
from crypto.keystore import AuditVerifyError


def _verify(args: argparse.Namespace) -> int:
    log = Path(args.log)
    pub = Path(args.pubkey) if args.pubkey else log.with_name("audit.pub")
    for path, what in ((log, "audit log"), (pub, "audit public key")):
        if not path.is_file():
            print(f"audit verify: cannot verify: no {what} at {path}", file=sys.stderr)
            return 1
    try:
        result = verify_log(log, pub.read_bytes(),
                            Path(args.checkpoint) if args.checkpoint else None)
    except AuditVerifyError as exc:
        print(f"audit verify: FAILED at record {exc.index}: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"audit verify: cannot verify: {exc}", file=sys.stderr)
        return 1
    print(f"audit verify: OK: {result.records} records, {result.checkpoints} signed "
          f"checkpoints, anchored through record {result.anchored_through}, "
          f"{result.unanchored} after the last checkpoint")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("audit", help="key-operation audit log")
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    vp = sub.add_parser("verify", help="verify the hash chain and signed checkpoints")
    vp.add_argument("--log", required=True, help="audit log file")
    vp.add_argument("--pubkey", help="audit public key (default: audit.pub next to the log)")
    vp.add_argument("--checkpoint", help="latest checkpoint (default: <log>.ckpt)")
    vp.set_defaults(func=_verify)

    def _help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)
