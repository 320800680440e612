"""`plexigate keys ...`: key management actions, one sub-subcommand each.

This module owns the ``keys`` parser only. Actions are added through hooks in ``EXTRA``:
each hook receives the ``keys`` sub-subparsers object and adds one action (with
``set_defaults(func=...)``). ``rotate`` lives in :mod:`gateway.commands.keys_rotate`;
other actions (e.g. ``init``) append their own hook to ``EXTRA`` below.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def _add_rotate(ksub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.commands import keys_rotate

    keys_rotate.add_parser(ksub)


# Hooks adding `keys` actions. Append yours; order is the order in `plexigate keys -h`.
EXTRA: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_rotate,
]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("keys", help="key management (rotate, ...)")
    ksub = parser.add_subparsers(dest="keys_command", metavar="ACTION")
    for hook in EXTRA:
        hook(ksub)

    def _help(_args: Any) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)
