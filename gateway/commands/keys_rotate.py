"""`plexigate keys rotate`: rotate a versioned key (added to the `keys` parser by keys.py)."""

from __future__ import annotations

import argparse
import sys


def add_parser(ksub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = ksub.add_parser("rotate", help="rotate a versioned key (work in progress)")
    p.set_defaults(func=_run)


def _run(_args: argparse.Namespace) -> int:
    print("keys rotate: not implemented yet", file=sys.stderr)
    return 1
