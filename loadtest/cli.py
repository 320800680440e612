"""Arguments and the run loop shared by `plexigate loadtest` and `python -m loadtest`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from loadtest.report import RESULTS_DIR, add_ratios, machine, table, write_json
from loadtest.scenarios import SCENARIOS, Options, ScenarioError, run_scenario, store_table

ALL = ("connect-rate", "relay", "fan-out", "idle", "churn", "sweep")


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", choices=(*SCENARIOS, "all"), help="what to measure")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measured phase")
    p.add_argument(
        "--count",
        type=int,
        default=0,
        help="stop a phase after this many connects/publishes (0: duration only)",
    )
    p.add_argument("--workers", type=int, default=2, help="client processes per role set")
    p.add_argument("--concurrency", type=int, default=4, help="connects in flight per worker")
    p.add_argument("--window", type=int, default=32, help="relay publishes awaiting acks")
    p.add_argument("--sizes", type=_ints, default=(10, 100, 1000), help="fan-out channel sizes")
    p.add_argument("--sessions", type=int, default=1000, help="idle sessions")
    p.add_argument(
        "--rates",
        type=_floats,
        default=(250, 500, 1000, 2000, 4000),
        help="sweep: offered relay rates (messages/s)",
    )
    p.add_argument(
        "--churn-rate",
        type=float,
        default=500.0,
        help="churn: relay load (messages/s) carried while sessions churn",
    )
    p.add_argument("--url", help="secure gateway to test instead of starting one (loopback)")
    p.add_argument("--keys", type=Path, help="with --url: keys dir (root.pub, auth-hs256.key)")
    p.add_argument("--gateway-pid", type=int, help="with --url: pid to sample for CPU and RSS")
    p.add_argument(
        "--store",
        choices=("memory", "redis"),
        default="memory",
        help="relay: gateway store; redis starts a redis-server and runs the gateway with "
        "--redis --cluster-key-file, reported next to the memory store of the same run",
    )
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the servers under cProfile, write DIR/<scenario>-<kind>.prof",
    )
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="directory for JSON")
    p.add_argument("--plot", type=Path, help="sweep: PNG path (default: next to the JSON)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")  # fmt: skip


def options_from(args: argparse.Namespace) -> Options:
    if args.url is not None and not args.url.startswith(
        ("ws://127.", "ws://localhost", "ws://[::1]")
    ):
        raise ScenarioError("--url must be a loopback ws:// address")
    bounded = args.duration > 0 and args.duration <= 600
    if not bounded:
        raise ScenarioError("--duration must be in (0, 600] seconds")
    return Options(
        duration_s=args.duration, count=args.count, workers=max(1, args.workers),
        concurrency=max(1, args.concurrency), window=max(1, args.window), sizes=args.sizes,
        sessions=max(1, args.sessions), rates=args.rates, churn_rate=args.churn_rate,
        url=args.url, keys=args.keys, gateway_pid=args.gateway_pid, store=args.store,
        uvloop=not args.no_uvloop, progress=not args.quiet, profile_dir=args.profile,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        opts = options_from(args)
        names = ALL if args.scenario == "all" else (args.scenario,)
        if args.store != "memory" and args.scenario != "relay":
            raise ScenarioError("--store applies to the relay scenario only")
        for name in names:
            started = time.time()
            result: dict[str, Any] = run_scenario(name, opts)
            result["ratios"] = add_ratios(name, result)
            payload = {
                "scenario": name,
                "started": started,
                "wall_s": round(time.time() - started, 1),
                "machine": machine(),
                "options": {k: v for k, v in vars(args).items() if k != "func"},
                "result": result,
            }
            path = write_json(name, payload, args.results)
            print(table(name, result))
            if "store_ratios" in result:
                print(store_table(result))
            print(f"results: {path}")
            if name == "sweep":
                from loadtest.plot import plot_sweep

                png = plot_sweep(result, args.plot or path.with_suffix(".png"))
                print(f"plot: {png}")
            if opts.profile_dir is not None:
                print(f"profiles: {opts.profile_dir}/{name}-{{plain,secure}}.prof")
            sys.stdout.flush()
    except ScenarioError as exc:
        print(f"plexigate loadtest: {exc}", file=sys.stderr)
        return 2
    return 0
