"""Client worker processes: each runs its own event loop (uvloop) and one role.

Roles (``WorkerSpec.role``):

* ``connect``   open and close full sessions in a loop, ``concurrency`` at a time
* ``publisher`` one connection; closed loop (``window`` publishes awaiting their acks) or
                open loop (``rate`` per second, timestamps from the schedule, so a stalled
                server shows up as latency instead of being hidden: no coordinated omission)
* ``subscriber`` ``sessions`` connections joined to ``channel``; records the latency of
                every message (send time is in the body; CLOCK_MONOTONIC is system-wide)
* ``idle``      ``warm`` sessions, then (on go) ``sessions`` more, held until stop
* ``churn``     connect, auth, join, close in a loop while other roles carry load

Protocol with the parent (over ``ctl.events``): ("ready", wid) once connected,
("loaded", wid) for idle, ("result", wid, dict) at the end. The parent sets ``ctl.go`` to
start (``ctl.t0`` holds the monotonic start in ns) and ``ctl.stop`` to finish. Every loop
also has its own deadline, so a worker stops by itself even if the parent dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

from loadtest.drivers import PlainDriver, SecureDriver, open_session
from loadtest.histogram import Histogram
from loadtest.servers import Target

BODY_SIZE = 256
_PROGRESS_EVERY = 64


@dataclass
class WorkerSpec:
    role: str
    sessions: int = 1
    channel: str = "lt"
    duration_s: float = 5.0
    count: int = 0  # 0: no count limit (duration only)
    window: int = 32
    rate: float = 0.0  # open loop when > 0
    concurrency: int = 4
    warm: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Control:
    """Shared between the parent and its workers (multiprocessing primitives)."""

    events: Any  # multiprocessing.Queue
    go: MpEvent
    stop: MpEvent
    t0: Any  # multiprocessing.Value('q'): monotonic ns at go
    progress: Any  # multiprocessing.Value('q'): events done so far


def make_body(t_ns: int, seq: int) -> str:
    head = f"{t_ns:020d}:{seq:010d}:"
    return head + "x" * (BODY_SIZE - len(head))


def body_time(body: str) -> int:
    return int(body[:20])


class Worker:
    def __init__(self, wid: int, target: Target, spec: WorkerSpec, ctl: Control) -> None:
        self.wid = wid
        self.target = target
        self.spec = spec
        self.ctl = ctl
        self.hist = Histogram()
        self.done = 0
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.first_error: str | None = None
        self.first_ns = 0
        self.last_ns = 0
        self._unreported = 0
        # Hard deadline: generous, but a worker never outlives a lost parent for long.
        self.hard_deadline = time.monotonic() + spec.duration_s + 120.0

    # -- helpers ----------------------------------------------------------------------
    def tick(self, n: int = 1) -> None:
        self.done += n
        self._unreported += n
        if self._unreported >= _PROGRESS_EVERY:
            with self.ctl.progress.get_lock():
                self.ctl.progress.value += self._unreported
            self._unreported = 0

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        kind = type(exc).__name__
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
        if self.first_error is None:
            self.first_error = "".join(traceback.format_exception(exc)[-6:])

    def user(self, i: int) -> str:
        return f"lt{os.getpid()}-{self.wid}-{i}"

    async def wait_event(self, ev: MpEvent) -> bool:
        while not ev.is_set():
            if time.monotonic() > self.hard_deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def stopping(self, deadline: float) -> bool:
        return self.ctl.stop.is_set() or time.monotonic() >= deadline

    def result(self) -> dict[str, Any]:
        with self.ctl.progress.get_lock():
            self.ctl.progress.value += self._unreported
        self._unreported = 0
        return {
            "role": self.spec.role,
            "done": self.done,
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "first_error": self.first_error,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "hist": self.hist.to_dict(),
        }

    async def open_many(self, n: int, offset: int = 0) -> list[SecureDriver | PlainDriver]:
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> SecureDriver | PlainDriver | None:
            async with sem:
                try:
                    return await open_session(self.target, self.user(offset + i))
                except Exception as exc:
                    self.error(exc)
                    return None

        got = await asyncio.gather(*(one(i) for i in range(n)))
        return [d for d in got if d is not None]

    # -- roles ------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        role = getattr(self, f"role_{self.spec.role.replace('-', '_')}")
        try:
            await role()
        except Exception as exc:
            self.error(exc)
        return self.result()

    async def role_connect(self) -> None:
        self.ctl.events.put(("ready", self.wid))
        if not await self.wait_event(self.ctl.go):
            return
        deadline = time.monotonic() + self.spec.duration_s
        full = bool(self.spec.extra.get("full", self.target.kind == "secure"))
        counter = iter(range(10**9))

        async def loop() -> None:
            while not self.stopping(deadline):
                if self.spec.count and self.done >= self.spec.count:
                    return
                i = next(counter)
                t = time.monotonic_ns()
                try:
                    drv = await open_session(self.target, self.user(i), full=full)
                except Exception as exc:
                    self.error(exc)
                    await asyncio.sleep(0.01)
                    continue
                self.hist.record(time.monotonic_ns() - t)
                self.tick()
                with contextlib.suppress(Exception):
                    await drv.close()

        await asyncio.gather(*(loop() for _ in range(self.spec.concurrency)))
        self.last_ns = time.monotonic_ns()

    async def role_publisher(self) -> None:
        drv = await open_session(self.target, self.user(0))
        self.ctl.events.put(("ready", self.wid))
        try:
            if not await self.wait_event(self.ctl.go):
                return
            deadline = time.monotonic() + self.spec.duration_s
            self.first_ns = time.monotonic_ns()
            if self.spec.rate > 0:
                await self._open_loop(drv, deadline)
            else:
                await self._closed_loop(drv, deadline)
            self.last_ns = time.monotonic_ns()
            await asyncio.sleep(0.05)  # let the writer flush the tail
        finally:
            with contextlib.suppress(Exception):
                await drv.close()

    async def _closed_loop(self, drv: SecureDriver | PlainDriver, deadline: float) -> None:
        ch = self.spec.channel
        seq = iter(range(10**12))

        async def lane() -> None:
            while not self.stopping(deadline):
                if self.spec.count and self.done >= self.spec.count:
                    return
                t = time.monotonic_ns()
                try:
                    await drv.publish(ch, make_body(t, next(seq)))
                except Exception as exc:
                    self.error(exc)
                    return
                self.hist.record(time.monotonic_ns() - t)  # publish -> ack
                self.tick()

        await asyncio.gather(*(lane() for _ in range(self.spec.window)))

    async def _open_loop(self, drv: SecureDriver | PlainDriver, deadline: float) -> None:
        ch = self.spec.channel
        interval_ns = 1e9 / self.spec.rate
        start = time.monotonic_ns()
        sent = 0
        while not self.stopping(deadline):
            if self.spec.count and sent >= self.spec.count:
                break
            due = int((time.monotonic_ns() - start) / interval_ns) + 1
            if self.spec.count:
                due = min(due, self.spec.count)
            while sent < due:
                drv.publish_nowait(ch, make_body(start + int(sent * interval_ns), sent))
                sent += 1
                self.tick()
            await asyncio.sleep(0.0005)

    async def role_subscriber(self) -> None:
        drivers = await self.open_many(self.spec.sessions)
        sem = asyncio.Semaphore(16)

        async def join(d: SecureDriver | PlainDriver) -> None:
            async with sem:
                await d.join(self.spec.channel)

        await asyncio.gather(*(join(d) for d in drivers))
        self.ctl.events.put(("ready", self.wid))
        try:
            if not await self.wait_event(self.ctl.go):
                return
            grace = float(self.spec.extra.get("grace_s", 1.0))
            hard = time.monotonic() + self.spec.duration_s + grace + 30.0
            stop_seen: list[float] = []

            async def reader(d: SecureDriver | PlainDriver) -> None:
                while True:
                    body = await d.recv_body()
                    now = time.monotonic_ns()
                    self.hist.record(now - body_time(body))
                    if not self.first_ns:
                        self.first_ns = now
                    self.last_ns = now
                    self.tick()

            tasks = [asyncio.create_task(reader(d)) for d in drivers]
            while time.monotonic() < hard:
                if any(t.done() for t in tasks):
                    for t in tasks:
                        if t.done() and t.exception() is not None:
                            self.error(t.exception())  # type: ignore[arg-type]
                    tasks = [t for t in tasks if not t.done()]
                    if not tasks:
                        break
                if self.ctl.stop.is_set():
                    if not stop_seen:
                        stop_seen.append(time.monotonic())
                    elif time.monotonic() - stop_seen[0] > grace:
                        break
                await asyncio.sleep(0.01)
            for t in tasks:
                t.cancel()
        finally:
            await asyncio.gather(*(d.close() for d in drivers), return_exceptions=True)

    async def role_idle(self) -> None:
        drivers = await self.open_many(self.spec.warm)
        self.ctl.events.put(("ready", self.wid))
        try:
            if not await self.wait_event(self.ctl.go):
                return
            more = await self.open_many(self.spec.sessions, offset=self.spec.warm)
            drivers += more
            self.done = len(more)
            self.ctl.events.put(("loaded", self.wid))
            await self.wait_event(self.ctl.stop)
        finally:
            await asyncio.gather(*(d.close() for d in drivers), return_exceptions=True)

    async def role_churn(self) -> None:
        self.ctl.events.put(("ready", self.wid))
        if not await self.wait_event(self.ctl.go):
            return
        deadline = time.monotonic() + self.spec.duration_s
        counter = iter(range(10**9))

        async def loop() -> None:
            while not self.stopping(deadline):
                t = time.monotonic_ns()
                try:
                    drv = await open_session(self.target, self.user(next(counter)))
                    await drv.join(self.spec.channel + "-churn")
                    await drv.close()
                except Exception as exc:
                    self.error(exc)
                    await asyncio.sleep(0.01)
                    continue
                self.hist.record(time.monotonic_ns() - t)
                self.tick()

        await asyncio.gather(*(loop() for _ in range(self.spec.concurrency)))
        self.last_ns = time.monotonic_ns()


def worker_main(wid: int, target: Target, spec: WorkerSpec, ctl: Control, uvloop: bool) -> None:
    """Process entry point."""
    factory = None
    if uvloop:
        with contextlib.suppress(ImportError):
            import uvloop as _uvloop

            factory = _uvloop.new_event_loop
    worker = Worker(wid, target, spec, ctl)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(worker.run())
    except BaseException as exc:  # report, never hang the parent
        worker.error(exc)
        result = worker.result()
    ctl.events.put(("result", wid, result))
