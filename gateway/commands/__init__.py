"""Subcommands of `plexigate`.

Each module here defines ``register(subparsers)``, which adds its subcommand(s) with
``set_defaults(func=...)``; ``func(args) -> int`` runs it. Modules are discovered, so a new
subcommand is a new file, not an edit to a shared one.
"""
