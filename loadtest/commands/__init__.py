"""Subcommands of `plexigate` (see plexigate/cli.py)."""
