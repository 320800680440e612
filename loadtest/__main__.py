"""`python -m loadtest SCENARIO [options]`: the same as `plexigate loadtest`."""

from __future__ import annotations

import argparse
import logging
import sys

from loadtest.cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
