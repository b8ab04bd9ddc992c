"""One connection's state and the client's: the protocol-core interface, the client state
machine (one table), the health snapshot and the open session."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Final, Protocol

import attrs

from mmws._keepalive import Keepalive
from mmws._secret import Secret, SecretSet, SecretURL
from mmws._transport import Transport
from mmws.errors import LocalProtocolError, MmwsError

__all__ = [
    "ClientState",
    "Health",
    "LineHealth",
    "ProtocolCore",
    "Session",
    "check_transition",
    "url_problem",
    "wall",
]


class ClientState(str, Enum):
    """Where a client is; ``health().state`` is its value."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value


_S = ClientState
TRANSITIONS: Final[Mapping[ClientState, frozenset[ClientState]]] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CONNECTING: frozenset({_S.CONNECTED, _S.IDLE, _S.CLOSED}),
    _S.CONNECTED: frozenset({_S.RECONNECTING, _S.CLOSED}),
    _S.RECONNECTING: frozenset({_S.CONNECTED, _S.CLOSED}),
    _S.CLOSED: frozenset({_S.CLOSED}),
}
"""Every move the client makes; anything else is a bug (``LocalProtocolError``)."""


def check_transition(old: ClientState, new: ClientState) -> ClientState:
    if new not in TRANSITIONS[old]:
        raise LocalProtocolError(f"client state cannot go from {old.value} to {new.value}")
    return new


class ProtocolCore(Protocol):
    """What the machinery needs of a Sans-I/O protocol core."""

    keepalive: Keepalive

    def start(self, now: float) -> None: ...
    def receive_text(self, text: str | bytes, now: float) -> None: ...
    def events_received(self) -> list[Any]: ...
    def data_to_send(self) -> Sequence[str | Secret]: ...
    def ping(self, now: float) -> None: ...
    def connection_lost(self) -> None: ...
    def goodbye(self) -> Sequence[str | Secret]: ...
    def close_error(self, code: int, reason: str) -> Exception | None: ...
    @property
    def subscriptions(self) -> tuple[str, ...]: ...
    answered: int


@attrs.frozen(slots=True)
class Health:
    """An immutable snapshot of a client, safe to log: no secret is in it.

    ``subscriptions`` is what the server confirmed on the current connection (MM channels,
    feed topics); empty while disconnected. ``url`` is the URL actually connected, redacted.
    With ``lines=2`` or more: ``lines`` holds each line's :class:`LineHealth`, and
    ``failovers`` counts the times a line went down while another carried the stream, and
    ``held`` the broadcasts held back until another line brought the one before them
    (``state=True``; see ``line_hold``).

    Attributes:
        state: Where the client is: ``"idle"`` (made, not connected yet), ``"connecting"``
            (in ``connect()``), ``"connected"``, ``"reconnecting"`` (the connection was
            lost; waiting or trying again) or ``"closed"`` (for good). With ``lines=2`` or
            more, the best state of any line.
        url: The URL connected to (or to be connected to), with the key or token redacted.
        connected_since: When the current connection opened (an aware UTC ``datetime``;
            while reconnecting, the last one); ``None`` before the first.
        last_message_at: When the last frame arrived (UTC); ``None`` before the first
            connection.
        reconnects: How many times the client reconnected successfully (the first connection
            does not count).
        queue_depth: How many events wait in the queue now.
        dropped: Events coalesced away so far, per channel (only ``scores`` can be), e.g.
            ``{"scores": 3}``.
        last_rtt: The round trip of the last answered ping, in seconds; ``None`` before one.
        last_error: Why the last connection or attempt failed, as text; ``None`` if nothing
            failed yet.
        clock_offset: ``FeedClient`` only: the server's clock minus this machine's, in
            seconds, from the last pong; ``None`` without one (and always on MM).
        subscriptions: What the server confirmed on the current connection: MM channels or
            feed topics (``CHANNEL:scope``); empty while disconnected.
        lines: With ``lines=2`` or more: one :class:`LineHealth` per line; else empty.
        failovers: With ``lines=2`` or more: how often a line went down while another
            carried the stream.
        held: With ``lines=2`` or more and ``state=True``: how many broadcasts were held back
            until another line brought the one before them.
    """

    state: str
    url: str
    connected_since: datetime | None
    last_message_at: datetime | None
    reconnects: int
    queue_depth: int
    dropped: Mapping[str, int]
    last_rtt: float | None
    last_error: str | None
    clock_offset: float | None = None
    subscriptions: tuple[str, ...] = ()
    lines: tuple[LineHealth, ...] = ()
    failovers: int = 0
    held: int = 0


@attrs.frozen
class LineHealth:
    """One connection of a client with ``lines=2`` or more (hot standby).

    ``accepted``: broadcasts this line brought first (delivered from it); ``duplicates``:
    copies it brought after another line; ``lag``: how far behind the first copy its copies
    come, in seconds (smoothed; 0 for the line that is usually first, ``None`` before any).

    Attributes:
        line: The line's number, from 0.
        state: The line's own state: ``"idle"``, ``"connecting"``, ``"connected"``,
            ``"reconnecting"`` or ``"closed"`` (as :attr:`Health.state`).
        url: The URL the line connects to, with the key redacted.
        last_rtt: The round trip of the line's last answered ping, in seconds; ``None``
            before one.
        reconnects: How many times this line reconnected.
        accepted: Broadcasts this line brought first (delivered from it).
        duplicates: Copies this line brought after another line (dropped).
        lag: How far behind the first copy this line's copies come, in seconds (smoothed);
            ``None`` before any copy.
    """

    line: int
    state: str
    url: str
    last_rtt: float | None
    reconnects: int
    accepted: int
    duplicates: int
    lag: float | None


class Session:
    """One open connection and its protocol core."""

    __slots__ = ("dead", "opened_at", "outbox", "protocol", "transport")

    def __init__(self, transport: Transport, protocol: ProtocolCore, opened_at: float) -> None:
        self.transport = transport
        self.protocol = protocol
        self.opened_at = opened_at
        self.dead: MmwsError | None = None
        # texts for the writer thread: (text, is_ping)
        self.outbox: deque[tuple[str | Secret, bool]] = deque()


def url_problem(url: Any, secrets: SecretSet) -> str | None:
    """Why ``url`` is not a WebSocket URL (shown redacted), or ``None``."""
    if url is None:
        return None
    plain = url.reveal() if isinstance(url, SecretURL) else url
    if isinstance(plain, str) and plain.startswith(("ws://", "wss://")):
        return None
    shown = secrets.redact(plain) if isinstance(plain, str) else type(plain).__name__
    return f"url must start with ws:// or wss://, got {shown!r}"


def wall(mono: float | None) -> datetime | None:
    if mono is None:
        return None
    return datetime.fromtimestamp(time.time() - (time.monotonic() - mono), tz=timezone.utc)


