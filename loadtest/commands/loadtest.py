"""`plexigate loadtest SCENARIO`: drive client processes against the gateway and a
plaintext baseline in the same run (see loadtest/cli.py and BENCHMARKS.md)."""

from __future__ import annotations

import argparse

from loadtest.cli import add_arguments, run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("loadtest", help="load-test the gateway against a plaintext baseline")
    add_arguments(p)
    p.set_defaults(func=run)
