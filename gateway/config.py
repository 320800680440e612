"""Gateway configuration: one frozen object, every limit with a documented default."""

from __future__ import annotations

from dataclasses import dataclass, field

from crypto.session import SessionLimits
from crypto.suite import SuitePolicy


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    max_frame_bytes: int = 65_536 + 38  # one record with a 64 KiB payload
    handshake_timeout_s: float = 10.0  # TCP accept to authenticated session
    outbound_queue: int = 1024  # records queued to one slow reader before it is closed
    max_channels_per_connection: int = 64
    max_connections_per_user: int = 16
    publish_rate_per_s: float = 200.0  # token bucket refill
    publish_burst: int = 400
    max_body_bytes: int = 16_384
    history_per_channel: int = 100
    history_max_bytes: int = 64 * 1024 * 1024  # in-memory history, all channels together
    history_max_channels: int = 10_000  # channels with in-memory history (LRU beyond)
    idle_timeout_s: float = 300.0  # no frame from the client for this long: close
    ticket_lifetime_s: int = 24 * 3600  # resumption tickets; never beyond the token's expiry
    # ORAM accesses per second per user for directory calls (join/leave 16, members 256,
    # channels 32, settings 4): bounds the event-loop CPU one user can spend there.
    directory_accesses_per_s: float = 1000.0
    directory_accesses_burst: int = 4000
    directory_blocks: int = 2**14  # ORAM capacity of the channel directory (256-byte blocks)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    policy: SuitePolicy = field(default_factory=SuitePolicy)
    session: SessionLimits = field(default_factory=SessionLimits)
    limits: GatewayLimits = field(default_factory=GatewayLimits)
