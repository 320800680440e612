"""`plexigate` command line.

Subcommands are discovered in ``gateway.commands``, ``clients.commands`` and
``loadtest.commands``: each module there defines ``register(subparsers)``. This module is
the only one that sees all layers, so the layers keep their one-way imports.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
from collections.abc import Sequence

COMMAND_PACKAGES = (
    "gateway.commands",
    "clients.commands",
    "loadtest.commands",
    "plexigate.commands",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plexigate",
        description="PlexiChat Gateway: post-quantum secure real-time messaging.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,  # case-insensitive: --log-level debug works
        choices=LOG_LEVELS,
        help="logging level: %(choices)s (default %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Import every module first, so hooks (e.g. keys.EXTRA) are in place before
    # any register() runs.
    modules = []
    for package_name in COMMAND_PACKAGES:
        package = importlib.import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            modules.append(importlib.import_module(f"{package_name}.{info.name}"))
    for module in modules:
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if logging.getLogger().level > logging.DEBUG:
        # websockets logs every open/close at INFO; ours are the lines operators need.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # The safety net: one line (class and message, which name files, never key bytes),
        # the traceback only for --log-level DEBUG.
        if args.log_level == "DEBUG":
            traceback.print_exc(file=sys.stderr)
        message = " ".join(str(exc).split()) or "(no message)"
        print(f"error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
