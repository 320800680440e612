"""A reader that stops reading is closed with SLOW_CONSUMER (4030), with bounded memory,
while the other subscribers of the same channel keep receiving everything (real sockets)."""

from __future__ import annotations

import asyncio

import pytest
from gateway_helpers import running_gateway

from clients.sdk import SessionClosed
from gateway.config import GatewayConfig, GatewayLimits
from gateway.connection import Connection

QUEUE = 16
BODY = "x" * 8000
N = 1500


async def test_stalled_reader_closed_4030_others_keep_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peak: dict[int, int] = {}
    real_enqueue = Connection._enqueue

    def enqueue(self: Connection, data: bytes) -> None:
        real_enqueue(self, data)
        peak[id(self)] = max(peak.get(id(self), 0), self._queue.qsize())

    monkeypatch.setattr(Connection, "_enqueue", enqueue)
    config = GatewayConfig(
        port=0,
        limits=GatewayLimits(outbound_queue=QUEUE, publish_rate_per_s=1e6, publish_burst=10**6),
    )
    async with running_gateway(config) as gw:
        grants = {"flood": ["sub", "pub"]}
        slow = await gw.client(gw.token("slow", grants))
        fast = await gw.client(gw.token("fast", grants))
        pub = await gw.client(gw.token("pub", grants))
        await slow.join("flood")
        await fast.join("flood")
        slow_conn = next(c for c in gw.connections() if c.user == "slow")
        fast_conn = next(c for c in gw.connections() if c.user == "fast")

        slow._ws.transport.pause_reading()  # stop reading; TCP and gateway buffers fill

        received: list[str] = []

        async def drain_fast() -> None:
            while len(received) < N:
                received.append((await fast.recv()).body)

        reader = asyncio.create_task(drain_fast())
        for i in range(N):
            await pub.publish("flood", f"{i}:{BODY}")
        await asyncio.wait_for(reader, 30)

        assert [r.split(":", 1)[0] for r in received] == [str(i) for i in range(N)]
        assert slow_conn.closing and slow_conn._close[0] == 4030
        assert gw.gateway.metrics.counters.get("close_4030") == 1
        assert peak[id(slow_conn)] <= QUEUE
        assert peak[id(fast_conn)] <= QUEUE
        assert not fast_conn.closing

        # When the stalled client reads again it finds the close code, not a silent reset.
        slow._ws.transport.resume_reading()
        with pytest.raises(SessionClosed) as info:
            for _ in range(N + 1):
                await asyncio.wait_for(slow.recv(), 10)
        assert info.value.code == 4030
