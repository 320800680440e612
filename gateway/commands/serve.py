"""`plexigate serve`: run the gateway."""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import logging
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from crypto.audit import AuditLog
from crypto.errors import PlexiError
from crypto.handshake import GatewayCredential
from crypto.kem import KemId
from crypto.keystore import KeyStore, KeyStoreError
from crypto.suite import ALL_SUITES, Level, SuitePolicy
from crypto.ticket import AeadTicketSealer
from gateway import authconfig
from gateway.channel_directory import ChannelDirectory
from gateway.commands import _argtypes, _cluster, _gwkeys
from gateway.config import GatewayConfig, GatewayLimits
from gateway.keyfiles import (
    KeyFileError,
    check_permissions,
    init_keys,
    load_auth_secret,
    load_credentials,
    load_root_public,
    load_ticket_key,
)
from gateway.server import Gateway, install_uvloop
from gateway.stores.tickets import RedisTicketLedger
from gateway.webclient import dev_page_url

log = logging.getLogger("plexigate.serve")
_DEFAULTS = GatewayLimits()  # slotted dataclass: read defaults from an instance
DEFAULT_KEYS = ".plexigate/keys"  # the only keys path serve fills with development keys
MIN_FRAME_BYTES = 4096
MIN_DIRECTORY_BLOCKS = 16


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument(
        "--keys",
        default=DEFAULT_KEYS,
        help=f"keys directory (default {DEFAULT_KEYS}, created with development keys if "
        "missing; any other path must hold keys: plexigate keys init PATH)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_argtypes.port, default=8765, help="0..65535 (0: any free)")
    p.add_argument(
        "--suites",
        default="XWING_CHACHA20POLY1305_SHA256,"
        "MLKEM1024X25519_CHACHA20POLY1305_SHA256,XWING_AES256GCM_SHA256,"
        "MLKEM1024X25519_AES256GCM_SHA256",
        help="comma-separated suite names, most preferred first",
    )
    p.add_argument("--min-level", choices=[lv.name.lower() for lv in Level], default="standard")
    p.add_argument(
        "--handshake-timeout", type=_argtypes.positive_float, default=_DEFAULTS.handshake_timeout_s
    )
    p.add_argument(
        "--max-frame",
        type=_argtypes.int_range(MIN_FRAME_BYTES),
        default=_DEFAULTS.max_frame_bytes,
        help=f"largest WebSocket frame in bytes (at least {MIN_FRAME_BYTES})",
    )
    p.add_argument(
        "--outbound-queue", type=_argtypes.positive_int, default=_DEFAULTS.outbound_queue
    )
    p.add_argument(
        "--publish-rate",
        type=_argtypes.positive_float,
        default=_DEFAULTS.publish_rate_per_s,
        help="per-connection publish token-bucket refill per second (load tests raise it)",
    )
    p.add_argument(
        "--publish-burst", type=_argtypes.positive_int, default=_DEFAULTS.publish_burst
    )
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument(
        "--no-web-client",
        action="store_true",
        help="do not serve the browser client page on a plain GET / (served by default)",
    )
    p.add_argument(
        "--redis",
        metavar="URL",
        help="keep the channel directory's ORAM buckets in this Redis (default: in memory)",
    )
    p.add_argument(
        "--directory-blocks",
        type=_argtypes.power_of_two(MIN_DIRECTORY_BLOCKS),
        default=_DEFAULTS.directory_blocks,
        help="ORAM capacity of the channel directory, in 256-byte blocks (power of two)",
    )
    _gwkeys.add_gateway_store_args(p)  # --keystore soft|pkcs11 ... (absent: development mode)
    _gwkeys.add_rotation_args(p)
    _cluster.add_arguments(p)  # --cluster-key-file (with --redis: clustered node)
    authconfig.add_arguments(p)  # --jwt-*, --max-channels, --rekey-after-*, --max-skew-ms
    p.set_defaults(func=run)


def build_gateway(args: argparse.Namespace) -> Gateway:
    keys = Path(args.keys)
    store, audit = _gwkeys.open_for_serve(args, keys)
    try:
        return _build(args, keys, store, audit)
    except BaseException:
        _gwkeys.close_quietly(store, audit)
        raise


def _build(
    args: argparse.Namespace, keys: Path, store: KeyStore | None, audit: AuditLog | None
) -> Gateway:
    if keys.exists() and not keys.is_dir():
        raise KeyFileError(f"{keys} is not a directory (--keys names a keys directory)")
    if not (keys / "root.key").exists() and not (keys / "root.pub").exists():
        if str(args.keys) != DEFAULT_KEYS:
            # An explicit path without keys is a typo or a missing volume, not a request for
            # a brand-new deployment root that no client pins.
            raise KeyFileError(f"no keys in {keys} (run: plexigate keys init {keys})")
        log.warning("no keys in %s: creating development keys", keys)
        init_keys(keys, store=store)
    check_permissions(keys)
    policy = _policy(args)
    limits = GatewayLimits(
        handshake_timeout_s=args.handshake_timeout,
        max_frame_bytes=args.max_frame,
        outbound_queue=args.outbound_queue,
        publish_rate_per_s=args.publish_rate,
        publish_burst=args.publish_burst,
        directory_blocks=args.directory_blocks,
    )
    config = GatewayConfig(
        host=args.host,
        port=args.port,
        policy=policy,
        limits=authconfig.apply_limits(args, limits),
        session=authconfig.session_limits(args),
    )
    verifier = authconfig.build_verifier(args, lambda: load_auth_secret(keys, store))
    credentials = load_credentials(keys, store)
    check_certificates(credentials, keys)
    runtime = _gwkeys.open_runtime(args, keys, store, audit) if store is not None else None
    cluster = _cluster.open_cluster(args, config.limits.history_per_channel)
    directory = (
        ChannelDirectory.redis(
            args.redis, capacity=args.directory_blocks, namespace=cluster.directory_namespace
        )
        if args.redis
        else None
    )
    web = not getattr(args, "no_web_client", False)  # serve the browser page
    return Gateway(
        config,
        credentials,
        verifier,
        keys=runtime,
        directory=directory,
        bus=cluster.bus,
        history=cluster.history,
        ticket_sealer=_ticket_sealer(keys, store),
        tickets=RedisTicketLedger.from_url(args.redis) if args.redis else None,
        serve_web_client=web,
    )


def _policy(args: argparse.Namespace) -> SuitePolicy:
    level = Level[args.min_level.upper()]
    policy = SuitePolicy.from_names(args.suites.split(","), level)
    if not policy.allowed:
        raise ValueError(
            f"no suite in --suites meets --min-level {args.min_level} "
            f"(allowed at that level: {', '.join(s.name for s in ALL_SUITES if s.level >= level)})"
        )
    return policy


def check_certificates(
    credentials: Mapping[KemId, GatewayCredential], keys: Path, now: float | None = None
) -> None:
    """Refuse to serve with a gateway certificate that clients will refuse."""
    t = int(time.time() if now is None else now)
    for cred in credentials.values():
        cert = cred.certificate
        name = keys / f"gateway-{cert.kem.name.lower()}.cert"
        if t > cert.not_after:
            raise KeyFileError(
                f"certificate {name} expired on {_date(cert.not_after)}; "
                f"run plexigate keys init/rotate"
            )
        if t < cert.not_before:
            raise KeyFileError(
                f"certificate {name} is not valid before {_date(cert.not_before)}; "
                f"check the clock or run plexigate keys init/rotate"
            )


def _date(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (a wildcard or any other name is not)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _dev_secret_in_use(args: argparse.Namespace) -> bool:
    return not (args.jwt_hs256_secret_file or args.jwt_ed25519_public_key)


def _ticket_sealer(keys: Path, store: KeyStore | None) -> AeadTicketSealer | None:
    """Ticket key: derived inside the key store when there is one (it follows the store's
    derive-master rotation), else the keys directory's ticket.key (shared by the nodes
    that share the directory), else None (a per-process key)."""
    if store is not None:
        return AeadTicketSealer.single(store.derive(b"gateway/ticket/v1", 32))
    key = load_ticket_key(keys)
    if key is None:
        log.warning("no %s in %s: tickets resume on this process only", "ticket.key", keys)
        return None
    return AeadTicketSealer.single(key)


def _dev_page_url(args: argparse.Namespace, gateway: Gateway) -> str | None:
    """The page URL with the pinned root and a dev token in its fragment, when the page is
    served and the keys directory's plaintext development secret is what verifies tokens."""
    if gateway.web_client is None or not gateway.web_client.available:
        return None
    if not _dev_secret_in_use(args):
        return None  # real token keys configured: the dev secret is not accepted
    if not is_loopback(args.host):
        return None  # a token that works, printed by a server reachable from elsewhere: no
    keys = Path(args.keys)
    try:
        secret = load_auth_secret(keys)  # no key store: only a plaintext dev secret
        root = load_root_public(keys)
    except (KeyFileError, OSError):
        return None
    return dev_page_url(args.host, gateway.port, root, secret)


async def _serve(args: argparse.Namespace) -> int:
    # Signal handlers first: a supervisor (or a test) may send SIGTERM as soon as it reads
    # the "listening" line, and that must be a clean shutdown, not the default kill.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        gateway = build_gateway(args)
    except (KeyFileError, KeyStoreError, ValueError, PlexiError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:  # e.g. --keys names a file, or a directory we may not read
        log.error("cannot start: %s", _os_error(exc))
        return 1
    try:
        await gateway.start()
    except (OSError, OverflowError) as exc:
        await _close_quietly(gateway)
        log.error("cannot listen on %s:%s: %s", args.host, args.port, _os_error(exc))
        return 1
    # One machine-readable line, so scripts and tests can find the port.
    print(f"plexigate listening on {gateway.url}", flush=True)
    if (url := _dev_page_url(args, gateway)) is not None:
        print(f"browser client (development): {url}", flush=True)
    elif _dev_secret_in_use(args) and not is_loopback(args.host):
        log.warning(
            "development keys/secrets in use on non-loopback address %s: tokens are verified "
            "with the keys directory's development secret (auth-hs256.key); the development "
            "URL is not printed. In production use --jwt-hs256-secret-file or "
            "--jwt-ed25519-public-key (and --keystore)",
            args.host,
        )
    await stop.wait()
    log.info("shutting down")
    await gateway.close()
    return 0


def _os_error(exc: BaseException) -> str:
    """One line for an OSError (socket errors carry odd messages) without a traceback."""
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return "address already in use"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


async def _close_quietly(gateway: Gateway) -> None:
    try:
        await gateway.close()
    except Exception:  # noqa: S110 (startup already failed: report that error, not this)
        pass


def run(args: argparse.Namespace) -> int:
    if not args.no_uvloop:
        install_uvloop()
    return asyncio.run(_serve(args))
