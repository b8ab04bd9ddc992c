"""What the simulator shows of itself: received messages, connections, counters, bursts."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

logger = logging.getLogger("mmws.sim")

__all__ = ["BurstResult", "ConnectionInfo", "ReceivedMessage", "RestRequest", "SimStats"]


@attrs.frozen
class ReceivedMessage:
    """One message a client sent: ``data`` (``str``; ``bytes`` for a binary frame) and when it
    was read (``time.monotonic()``).

    ``size`` is the message's length (characters, or bytes for a binary frame). A message
    longer than the simulator's ``max_recorded_size`` is not kept whole: ``data`` then holds
    only its first 256 characters (bytes) and ``truncated`` is True.
    """

    connection_id: int
    data: str | bytes
    at: float
    size: int = attrs.field()
    truncated: bool = False

    @size.default
    def _size(self) -> int:
        return len(self.data)

    @property
    def json(self) -> Any:
        """The message decoded as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.data)


@attrs.frozen
class ConnectionInfo:
    """A snapshot of one connection (open or closed). ``endpoint`` is ``"mm"`` or ``"feed"``.

    MM fields: ``api_key``, ``client``, ``subscribed``, ``subscription_id``, ``channels``,
    ``skipped`` (broadcasts not sent to this connection because of
    :meth:`~mmws.sim.Simulator.skip_broadcasts`).
    Feed fields: ``token``, ``topics`` (topic keys), ``command_times`` (arrival of the
    commands, ``time.monotonic()``; the last ``max_recorded_messages``), ``rate_limited``
    (commands refused by the rate limit).

    ``received`` holds the last ``max_recorded_messages`` messages of the connection (see
    :class:`ReceivedMessage` for long ones).

    Per-connection faults: ``delay`` (seconds added to each frame queued to it, see
    :meth:`~mmws.sim.Simulator.delay_connection`; 0: none), ``half_open`` (see
    :meth:`~mmws.sim.Simulator.half_open`). ``closing``: the server has cut it or started to
    close it (it stays open, that is ``closed_at`` is None, until its server side has
    finished).
    """

    id: int
    endpoint: str
    path: str
    opened_at: float
    closed_at: float | None
    close_code: int | None
    frames_sent: int
    received: tuple[ReceivedMessage, ...]
    api_key: str | None = None
    client: str | None = None
    subscribed: bool = False
    subscription_id: int | None = None
    channels: tuple[str, ...] = ()
    skipped: int = 0
    token: str | None = None
    topics: tuple[str, ...] = ()
    command_times: tuple[float, ...] = ()
    rate_limited: int = 0
    delay: float = 0.0
    half_open: bool = False
    closing: bool = False

    @property
    def open(self) -> bool:
        return self.closed_at is None


@attrs.frozen
class SimStats:
    """Counters since the simulator started.

    A connection is opened (and active) from the moment its WebSocket upgrade is accepted,
    before the 101 response goes out, and active until its server side has finished, which
    can be a moment after a cut or close."""

    connections_opened: int
    connections_active: int
    frames_sent: int
    commands_received: int
    handshakes_rejected: int
    http_responses: int
    restarts: int
    listening: bool


@attrs.frozen
class BurstResult:
    """The last :meth:`Simulator.burst`: frames written (all connections), the connections,
    and ``time.monotonic()`` at the first and after the last write. With ``rate``, frame ``i``
    (``orderId`` i, from 1) was due at ``started_at + (i - 1) / rate``."""

    frames: int
    connections: int
    started_at: float
    finished_at: float
    rate: float | None



def _read_only(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen
class RestRequest:
    """One request to the simulator's MM REST API (``/api/v1/...``): the ``path``, the
    ``query`` string's parameters (read-only; a repeated one keeps its last value, a value
    that is one of the simulator's secrets shows as ``***``), the HTTP ``status`` answered
    and when (``time.monotonic()``). The ``X-API-Key`` header is never kept."""

    path: str
    query: Mapping[str, str] = attrs.field(converter=_read_only, hash=False)
    status: int
    at: float
