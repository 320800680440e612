"""`plexigate hsm init`: a SoftHSM2 token in a directory of its own, for development and tests.

The directory gets its own ``softhsm2.conf`` and ``tokens/``; nothing system-wide changes.
PINs never go on a command line: the user PIN comes from ``PLEXI_HSM_PIN`` or ``--pin-file``,
the SO PIN is random and stored in ``so.pin`` (0600); both reach ``softhsm2-util`` through a
pseudo-terminal, which is how it reads PINs when they are not given as arguments.
"""

from __future__ import annotations

import argparse
import os
import secrets
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

from crypto.fileio import atomic_write, private_dir

PIN_ENV = "PLEXI_HSM_PIN"
CONF_ENV = "SOFTHSM2_CONF"


class HsmInitError(RuntimeError):
    """Token creation failed."""


def read_pin(pin_file: str | None) -> str:
    """The user PIN from --pin-file or $PLEXI_HSM_PIN (file wins); never from argv."""
    if pin_file:
        pin = Path(pin_file).read_text().strip()
    else:
        pin = os.environ.get(PIN_ENV, "")
    if not 4 <= len(pin) <= 255:
        raise HsmInitError(
            f"a user PIN of 4..255 characters is required (${PIN_ENV} or --pin-file)"
        )
    return pin


def init_token(directory: Path, label: str, pin: str, timeout: float = 30.0) -> Path:
    """Create a SoftHSM2 token labelled ``label`` in ``directory``; return its config path."""
    util = shutil.which("softhsm2-util")
    if util is None:
        raise HsmInitError("softhsm2-util not found (apt-get install softhsm2)")
    directory = private_dir(Path(directory).resolve())
    tokens = private_dir(directory / "tokens")
    conf = directory / "softhsm2.conf"
    conf_text = (
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    atomic_write(conf, conf_text.encode(), mode=0o600)
    so_pin = secrets.token_hex(16)
    atomic_write(directory / "so.pin", so_pin.encode() + b"\n", mode=0o600)
    env = dict(os.environ, **{CONF_ENV: str(conf)})
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no PINs in it
            [util, "--init-token", "--free", "--label", label],
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        )
        os.close(slave)
        slave = -1
        answers = f"{so_pin}\n{so_pin}\n{pin}\n{pin}\n".encode()
        os.write(master, answers)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            # drain the pty echo so the child never blocks on a full buffer
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    os.read(master, 4096)
                except OSError:
                    break
        try:
            out = proc.communicate(timeout=max(deadline - time.monotonic(), 1.0))[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            raise HsmInitError("softhsm2-util timed out") from None
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    if proc.returncode != 0:
        text = out.decode(errors="replace").replace(pin, "***").replace(so_pin, "***")
        raise HsmInitError(f"softhsm2-util failed ({proc.returncode}): {text.strip()}")
    return conf


def _run_init(args: argparse.Namespace) -> int:
    try:
        pin = read_pin(args.pin_file)
        conf = init_token(Path(args.dir), args.label, pin)
    except (HsmInitError, OSError) as exc:
        print(f"hsm init: {exc}", file=sys.stderr)
        return 1
    if not args.no_keys:
        os.environ[CONF_ENV] = str(conf)
        from crypto.pkcs11store import Pkcs11KeyStore

        store = Pkcs11KeyStore(args.label, pin, library=args.library, create=True)
        for info in store.masters():
            print(f"generated master {info.kind.value} v{info.version} (sensitive, "
                  "non-extractable)", file=sys.stderr)
        store.close()
    print(f"token {args.label!r} created in {conf.parent}; use it with:")
    print(f"export {CONF_ENV}={conf}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("hsm", help="HSM (SoftHSM2) development tokens")
    sub = parser.add_subparsers(dest="hsm_command", metavar="ACTION")
    init = sub.add_parser(
        "init", help="create a SoftHSM2 token in DIR (PIN from $PLEXI_HSM_PIN or --pin-file)"
    )
    init.add_argument("--dir", required=True, help="directory for the token and its config")
    init.add_argument("--label", default="plexi", help="token label (default: plexi)")
    init.add_argument("--pin-file", help="file holding the user PIN (else $PLEXI_HSM_PIN)")
    init.add_argument("--library", default="/usr/lib/softhsm/libsofthsm2.so")
    init.add_argument("--no-keys", action="store_true", help="do not generate master keys")
    init.set_defaults(func=_run_init)

    def _help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)
