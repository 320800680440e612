"""Scenarios: each runs the plaintext baseline and the secure gateway in the same run,
with the same worker layout, and returns figures for both plus their ratios.

Every scenario is bounded: ``duration_s`` per measured phase (and ``count`` where it
applies), a fixed number of sessions, and the hard deadlines in ``phase``/``workers``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.histogram import Histogram
from loadtest.phase import PhaseResult, run_phase
from loadtest.redis_server import RedisServerError, redis_server
from loadtest.report import _fmt, _get_any, ratio
from loadtest.servers import (
    ServerProcess,
    Target,
    baseline_process,
    gateway_process,
    read_keys,
    workdir,
)
from loadtest.workers import WorkerSpec

KINDS = ("plain", "secure")
SCENARIOS = ("connect-rate", "relay", "fan-out", "idle", "churn", "sweep")


class ScenarioError(Exception):
    """A scenario cannot run with these options (the message says why)."""


@dataclass
class Options:
    duration_s: float = 5.0
    count: int = 0
    workers: int = 2
    concurrency: int = 4
    window: int = 32
    sizes: tuple[int, ...] = (10, 100, 1000)
    sessions: int = 1000
    rates: tuple[float, ...] = (250, 500, 1000, 2000, 4000)
    churn_rate: float = 500.0
    url: str | None = None
    keys: Path | None = None
    gateway_pid: int | None = None
    store: str = "memory"
    uvloop: bool = True
    progress: bool = True
    profile_dir: Path | None = None
    keep_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def lat(h: Histogram) -> dict[str, float | int | None]:
    """Latency summary in microseconds."""
    return h.summary(1e-3)


@contextlib.contextmanager
def server(
    kind: str, opts: Options, scenario: str, redis_url: str | None = None
) -> Iterator[Target]:
    """The server for ``kind``: started here, or (secure only) the one at ``opts.url``;
    with ``redis_url`` the gateway is a clustered node on that Redis."""
    if kind == "secure" and opts.url is not None:
        if opts.keys is None:
            raise ScenarioError("--url needs --keys (the directory with root.pub and the secret)")
        root, secret = read_keys(opts.keys)
        yield Target("secure", opts.url, root, secret, opts.gateway_pid)
        return
    with workdir(opts.keep_dir) as wd:
        prof = None
        if opts.profile_dir is not None:
            opts.profile_dir.mkdir(parents=True, exist_ok=True)
            prof = opts.profile_dir / f"{scenario}-{kind}.prof"
        proc: ServerProcess = (
            gateway_process(wd, prof, opts.uvloop, redis_url)
            if kind == "secure"
            else baseline_process(wd, prof, opts.uvloop)
        )
        with proc:
            url = proc.start()
            if kind == "secure":
                root, secret = read_keys(wd / "keys")
                yield Target("secure", url, root, secret, proc.pid)
            else:
                yield Target("plain", url, pid=proc.pid)


def _phase(target: Target, specs: list[WorkerSpec], label: str, opts: Options) -> PhaseResult:
    return run_phase(target, specs, label, opts.duration_s, opts.uvloop, opts.progress)


def _per(x: float, y: float | None) -> float | None:
    return round(x / y, 3) if y else None


def _errors(p: PhaseResult) -> dict[str, Any]:
    return {
        name: {"errors": r.errors, "kinds": r.error_kinds, "first": r.first_error}
        for name, r in p.roles.items()
        if r.errors
    }


# -- connect-rate ----------------------------------------------------------------------
def connect_rate(kind: str, opts: Options) -> dict[str, Any]:
    with server(kind, opts, "connect-rate") as target:
        count = (opts.count + opts.workers - 1) // opts.workers if opts.count else 0
        specs = [
            WorkerSpec("connect", duration_s=opts.duration_s, count=count,
                       concurrency=opts.concurrency, extra={"full": kind == "secure"})
            for _ in range(opts.workers)
        ]  # fmt: skip
        p = _phase(target, specs, f"connect-rate {kind}", opts)
    r = p.role("connect")
    span = p.span_s("connect")
    return {
        "connects": r.done,
        "seconds": round(span, 3),
        "rate_per_s": round(r.done / span, 1),
        "latency_us": lat(r.hist),
        "server_cpu_s": p.server_cpu_s,
        "server_cpu_us_per_connect": _per((p.server_cpu_s or 0) * 1e6, r.done),
        "errors": _errors(p),
    }


# -- relay -------------------------------------------------------------------------------
def _relay_specs(opts: Options, rate: float, channel: str = "relay") -> list[WorkerSpec]:
    return [
        WorkerSpec("publisher", channel=channel, duration_s=opts.duration_s, count=opts.count,
                   window=opts.window, rate=rate),
        WorkerSpec("subscriber", sessions=1, channel=channel, duration_s=opts.duration_s),
    ]  # fmt: skip


def _relay_figures(p: PhaseResult) -> dict[str, Any]:
    pub, sub = p.role("publisher"), p.role("subscriber")
    span = p.span_s("subscriber")
    return {
        "published": pub.done,
        "delivered": sub.done,
        "seconds": round(span, 3),
        "throughput_per_s": round(sub.done / span, 1),
        "latency_us": lat(sub.hist),
        "ack_latency_us": lat(pub.hist) if pub.hist.count else None,
        "server_cpu_s": p.server_cpu_s,
        "delivered_per_cpu_s": _per(sub.done, p.server_cpu_s),
        "server_cpu_us_per_message": _per((p.server_cpu_s or 0) * 1e6, sub.done),
        "errors": _errors(p),
    }


def relay(kind: str, opts: Options, redis_url: str | None = None) -> dict[str, Any]:
    with server(kind, opts, "relay", redis_url) as target:
        label = f"relay {kind}" + (" (redis store)" if redis_url else "")
        p = _phase(target, _relay_specs(opts, 0.0), label, opts)
    return _relay_figures(p)


STORE_ROWS = (("delivered msgs / s", "throughput_per_s"), ("latency p50 (us)", "latency_us.p50"),
              ("latency p99 (us)", "latency_us.p99"),
              ("server CPU per msg (us)", "server_cpu_us_per_message"))  # fmt: skip


def relay_redis(opts: Options) -> dict[str, Any]:
    """Relay with the gateway on a Redis store (own redis-server, ``serve --redis
    --cluster-key-file``: pub/sub fan-out + Streams history + ORAM directory), next to the
    plaintext baseline and the in-memory gateway of the same run."""
    if opts.url is not None:
        raise ScenarioError("--store redis starts its own gateway and redis-server (no --url)")
    try:
        with redis_server("plexigate-loadtest-redis-", quiet=not opts.progress) as url:
            out = {"plain": relay("plain", opts), "secure": relay("secure", opts, url)}
    except RedisServerError as exc:
        raise ScenarioError(str(exc)) from None
    out["secure_memory"] = relay("secure", opts)
    out["store_ratios"] = {
        label: ratio(_get_any(out["secure"], path), _get_any(out["secure_memory"], path))
        for label, path in STORE_ROWS
    }
    return out


def store_table(result: dict[str, Any]) -> str:
    """Redis store versus in-memory store, both secure, same run."""
    lines = ["== relay: redis store vs memory store (secure gateway, same run) ==",
             f"{'':<24}  {'memory':>12}  {'redis':>12}  {'ratio r/m':>9}"]  # fmt: skip
    for label, path in STORE_ROWS:
        m = _get_any(result.get("secure_memory", {}), path)
        r = _get_any(result.get("secure", {}), path)
        q = result.get("store_ratios", {}).get(label)
        lines.append(f"{label:<24}  {_fmt(m):>12}  {_fmt(r):>12}  {_fmt(q):>9}")
    return "\n".join(lines)


# -- fan-out -----------------------------------------------------------------------------
def fan_out(kind: str, opts: Options) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with server(kind, opts, "fan-out") as target:
        for size in opts.sizes:
            procs = max(1, min(opts.workers, size // 10 or 1))
            per = [size // procs + (1 if i < size % procs else 0) for i in range(procs)]
            ch = f"fan{size}"
            specs = [
                WorkerSpec(
                    "publisher",
                    channel=ch,
                    duration_s=opts.duration_s,
                    count=opts.count,
                    window=max(1, opts.window // 16),
                )
            ]
            specs += [WorkerSpec("subscriber", sessions=n, channel=ch, duration_s=opts.duration_s,
                                 extra={"grace_s": 2.0}) for n in per]  # fmt: skip
            p = _phase(target, specs, f"fan-out {size} {kind}", opts)
            pub, sub = p.role("publisher"), p.role("subscriber")
            span = p.span_s("subscriber")
            out[str(size)] = {
                "members": size,
                "published": pub.done,
                "delivered": sub.done,
                "seconds": round(span, 3),
                "deliveries_per_s": round(sub.done / span, 1),
                "messages_per_s": round(pub.done / span, 1),
                "latency_us": lat(sub.hist),
                "server_cpu_s": p.server_cpu_s,
                "delivered_per_cpu_s": _per(sub.done, p.server_cpu_s),
                "errors": _errors(p),
            }
    return out


# -- idle --------------------------------------------------------------------------------
def idle(kind: str, opts: Options) -> dict[str, Any]:
    warm = 10
    with server(kind, opts, "idle") as target:
        if target.pid is None:
            raise ScenarioError("idle needs the gateway's pid (--gateway-pid with --url)")
        per = [opts.sessions // opts.workers + (1 if i < opts.sessions % opts.workers else 0)
               for i in range(opts.workers)]  # fmt: skip
        specs = [WorkerSpec("idle", sessions=n, warm=warm, duration_s=opts.duration_s)
                 for n in per]  # fmt: skip
        p = run_phase(target, specs, f"idle {kind}", 120.0, opts.uvloop, opts.progress)
    r = p.role("idle")
    delta = (p.rss_loaded_kb or 0) - (p.rss_before_kb or 0)
    return {
        "sessions": r.done,
        "rss_before_kb": p.rss_before_kb,
        "rss_loaded_kb": p.rss_loaded_kb,
        "rss_delta_kb": delta,
        "kb_per_session": _per(delta, r.done),
        "errors": _errors(p),
    }


# -- churn -------------------------------------------------------------------------------
def churn(kind: str, opts: Options) -> dict[str, Any]:
    with server(kind, opts, "churn") as target:
        specs = _relay_specs(opts, opts.churn_rate, "churn")
        specs.append(WorkerSpec("churn", channel="churn", duration_s=opts.duration_s,
                                concurrency=max(1, opts.concurrency // 2)))  # fmt: skip
        p = _phase(target, specs, f"churn {kind}", opts)
    fig = _relay_figures(p)
    c = p.role("churn")
    span = p.span_s("churn")
    fig.update(
        {
            "offered_rate_per_s": opts.churn_rate,
            "churn_cycles": c.done,
            "churn_per_s": round(c.done / span, 1),
            "churn_cycle_us": lat(c.hist),
        }
    )
    return fig


# -- sweep (latency versus offered load, for the plot) ----------------------------------
def sweep(kind: str, opts: Options) -> dict[str, Any]:
    points = []
    with server(kind, opts, "sweep") as target:
        for rate in opts.rates:
            p = _phase(target, _relay_specs(opts, rate, f"sweep{int(rate)}"),
                       f"sweep {int(rate)}/s {kind}", opts)  # fmt: skip
            fig = _relay_figures(p)
            fig["offered_per_s"] = rate
            points.append(fig)
    return {"points": points}


RUNNERS: dict[str, Callable[[str, Options], dict[str, Any]]] = {
    "connect-rate": connect_rate,
    "relay": relay,
    "fan-out": fan_out,
    "idle": idle,
    "churn": churn,
    "sweep": sweep,
}


def run_scenario(name: str, opts: Options) -> dict[str, Any]:
    """Baseline first, then the gateway, one after the other (never competing for CPU)."""
    runner = RUNNERS[name]
    if name != "relay" and opts.store != "memory":
        raise ScenarioError("--store applies to the relay scenario only")
    if name == "relay" and opts.store == "redis":
        return relay_redis(opts)
    if opts.store != "memory":
        raise ScenarioError(f"unknown store {opts.store!r}")
    kinds = opts.extra.get("kinds", KINDS)
    return {kind: runner(kind, opts) for kind in kinds}
