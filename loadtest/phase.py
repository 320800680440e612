"""One measured phase: start worker processes, wait until they are connected, go, stop.

The parent never runs an event loop, so forking workers is safe. It samples the server
process (CPU seconds, RSS) around the measured window and shows progress on stderr.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from loadtest.histogram import Histogram
from loadtest.progress import Progress
from loadtest.servers import Target, proc_cpu_s, proc_rss_kb
from loadtest.workers import Control, WorkerSpec, worker_main

READY_TIMEOUT_S = 120.0
_ACTIVE = {"connect", "publisher", "churn"}


@dataclass
class RoleResult:
    done: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None
    first_ns: int = 0
    last_ns: int = 0
    hist: Histogram = field(default_factory=Histogram)

    def add(self, r: dict[str, Any]) -> None:
        self.done += int(r["done"])
        self.errors += int(r["errors"])
        if self.first_error is None and r.get("first_error"):
            self.first_error = r["first_error"]
        for k, v in r["error_kinds"].items():
            self.error_kinds[k] = self.error_kinds.get(k, 0) + v
        if r["first_ns"] and (not self.first_ns or r["first_ns"] < self.first_ns):
            self.first_ns = r["first_ns"]
        self.last_ns = max(self.last_ns, int(r["last_ns"]))
        self.hist.merge(Histogram.from_dict(r["hist"]))


@dataclass
class PhaseResult:
    roles: dict[str, RoleResult]
    t0_ns: int
    elapsed_s: float  # go -> stop
    server_cpu_s: float | None
    rss_before_kb: int | None
    rss_loaded_kb: int | None
    workers: int

    def role(self, name: str) -> RoleResult:
        return self.roles.get(name) or RoleResult()

    def span_s(self, name: str) -> float:
        """Seconds from go to the last event of role ``name`` (at least 1 ms)."""
        r = self.role(name)
        if not r.last_ns:
            return self.elapsed_s
        return max(1e-3, (r.last_ns - self.t0_ns) / 1e9)


def run_phase(
    target: Target,
    specs: list[WorkerSpec],
    label: str,
    duration_s: float,
    uvloop: bool = True,
    show_progress: bool = True,
    grace_s: float = 1.0,
) -> PhaseResult:
    ctx = mp.get_context("fork")
    ctl = Control(ctx.Queue(), ctx.Event(), ctx.Event(), ctx.Value("q", 0), ctx.Value("q", 0))
    procs = [
        ctx.Process(target=worker_main, args=(i, target, spec, ctl, uvloop), daemon=True)
        for i, spec in enumerate(specs)
    ]
    for p in procs:
        p.start()
    results: dict[int, dict[str, Any]] = {}
    loaded: set[int] = set()
    pid = target.pid
    try:
        ready: set[int] = set()
        deadline = time.monotonic() + READY_TIMEOUT_S
        prog = Progress(f"{label}: connecting", READY_TIMEOUT_S, show_progress)
        while len(ready | set(results)) < len(procs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: workers not ready after {READY_TIMEOUT_S}s")
            try:
                msg = ctl.events.get(timeout=0.2)
            except queue.Empty:
                if any(not p.is_alive() for p in procs if p.pid not in ready):
                    dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                    if dead:
                        raise RuntimeError(f"{label}: a worker died early") from None
                continue
            if msg[0] == "ready":
                ready.add(msg[1])
            elif msg[0] == "result":
                results[msg[1]] = msg[2]
            prog.update(len(ready), f"{len(ready)}/{len(procs)} workers ready")
        if show_progress:
            prog.finish(len(ready), "ready")
        rss0 = proc_rss_kb(pid) if pid else None
        cpu0 = proc_cpu_s(pid) if pid else None
        ctl.t0.value = time.monotonic_ns()
        t0 = ctl.t0.value
        ctl.go.set()
        prog = Progress(label, duration_s, show_progress)
        active = {i for i, s in enumerate(specs) if s.role in _ACTIVE}
        idle = {i for i, s in enumerate(specs) if s.role == "idle"}
        rss1: int | None = None
        hard = time.monotonic() + duration_s + 60.0
        while time.monotonic() < hard:
            try:
                msg = ctl.events.get(timeout=0.1)
                if msg[0] == "result":
                    results[msg[1]] = msg[2]
                elif msg[0] == "loaded":
                    loaded.add(msg[1])
            except queue.Empty:
                pass
            prog.update(ctl.progress.value)
            if idle and loaded >= idle:
                time.sleep(0.5)  # let the gateway settle before reading RSS
                rss1 = proc_rss_kb(pid) if pid else None
                break
            if active and active <= set(results):
                break
            if not active and not idle and time.monotonic() - prog.start >= duration_s:
                break
        elapsed = (time.monotonic_ns() - t0) / 1e9
        ctl.stop.set()
        if any(s.role == "subscriber" for s in specs):
            time.sleep(grace_s * 0.8)  # in-flight deliveries still cost server CPU
        cpu1 = proc_cpu_s(pid) if pid else None
        prog.finish(ctl.progress.value, "stopping")
        end = time.monotonic() + grace_s + 45.0
        while len(results) < len(procs) and time.monotonic() < end:
            try:
                msg = ctl.events.get(timeout=0.2)
            except queue.Empty:
                if all(not p.is_alive() for p in procs):
                    break
                continue
            if msg[0] == "result":
                results[msg[1]] = msg[2]
    finally:
        ctl.go.set()
        ctl.stop.set()
        for p in procs:
            p.join(10)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
    roles: dict[str, RoleResult] = {}
    for i, r in results.items():
        roles.setdefault(specs[i].role, RoleResult()).add(r)
    return PhaseResult(
        roles=roles,
        t0_ns=t0,
        elapsed_s=elapsed,
        server_cpu_s=(cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
        rss_before_kb=rss0,
        rss_loaded_kb=rss1,
        workers=len(procs),
    )
