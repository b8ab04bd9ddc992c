"""Lifecycle events every client puts into its queue, in order with the data.

A consumer that only calls ``get()`` can always tell why data stopped::

    Connected -> Subscribed -> data ... -> Stale? -> Disconnected -> Reconnecting
              -> Connected -> Subscribed -> data ... -> Closed

MM has no sequence numbers and no replay: whatever the server broadcast between
``Disconnected`` and the next ``Subscribed`` is not delivered. Resynchronise from the REST API
when a ``Subscribed`` follows a ``Disconnected`` (its ``Connected`` has ``attempt > 0``; see
the docs' reconnect guide).

With ``MMClient(lines=2)`` (hot standby) these events describe the merged stream: they carry
``line=None``, and ``Disconnected`` comes only when every line is down at once. The events
of one line carry its number in ``line`` (0, 1, ...) and are delivered only with
``line_events=True``; ``health().lines`` shows each line too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from mmws._display import Shown
from mmws.errors import MmwsError

__all__ = [
    "Closed",
    "Connected",
    "Disconnected",
    "KeepaliveEvent",
    "LifecycleEvent",
    "MalformedFrame",
    "Overflow",
    "Reconnecting",
    "Stale",
    "UnknownMessage",
]


@attrs.frozen(slots=True)
class LifecycleEvent(Shown):
    """Base class of the events that describe the connection rather than the data."""


@attrs.frozen(slots=True)
class Connected(LifecycleEvent):
    """The WebSocket is open (the subscription is not confirmed yet). ``url`` is redacted.

    Attributes:
        url: The URL connected to, with the key or token redacted.
        attempt: 0 for the first connection; for a reconnect, the number of the attempt that
            succeeded (from 1).
        line: With ``lines=2`` or more: the number of the line (from 0) this event came
            from, delivered only with ``line_events=True``; ``None`` for the stream's own
            event.
    """

    url: str
    attempt: int = 0
    line: int | None = attrs.field(default=None, kw_only=True, repr=False)


@attrs.frozen(slots=True)
class Disconnected(LifecycleEvent):
    """The connection ended. ``reason`` is a sentence; ``error`` the exception behind it.

    Attributes:
        reason: Why the connection ended, as a sentence.
        will_reconnect: ``True`` when the client reconnects; ``False`` when it closes next
            (a fatal error, or ``reconnect=False``).
        error: The exception behind ``reason`` (an ``MmwsError``); not part of equality.
        line: With ``lines=2`` or more: the number of the line (from 0) this event came
            from, delivered only with ``line_events=True``; ``None`` for the stream's own
            event.
    """

    reason: str
    will_reconnect: bool
    error: MmwsError | None = attrs.field(default=None, eq=False)
    line: int | None = attrs.field(default=None, kw_only=True, repr=False)


@attrs.frozen(slots=True)
class Reconnecting(LifecycleEvent):
    """Attempt number ``attempt`` (from 1) will start after ``delay`` seconds.

    Attributes:
        attempt: The number of the coming attempt, from 1 after each lost connection.
        delay: Seconds until it starts (the backoff, or the server's ``Retry-After``).
        line: With ``lines=2`` or more: the number of the line (from 0) this event came
            from, delivered only with ``line_events=True``; ``None`` for the stream's own
            event.
    """

    attempt: int
    delay: float
    line: int | None = attrs.field(default=None, kw_only=True, repr=False)


@attrs.frozen(slots=True)
class Stale(LifecycleEvent):
    """The server went silent for ``silent_for`` seconds; the connection is being replaced.

    Attributes:
        silent_for: Seconds since anything was last received from the server.
        error: The ``HeartbeatTimeout`` saying which limit passed (``pong_timeout`` or
            ``heartbeat_timeout``); not part of equality.
        line: With ``lines=2`` or more: the number of the line (from 0) this event came
            from, delivered only with ``line_events=True``; ``None`` for the stream's own
            event.
    """

    silent_for: float
    error: MmwsError | None = attrs.field(default=None, eq=False)
    line: int | None = attrs.field(default=None, kw_only=True, repr=False)


@attrs.frozen(slots=True)
class Overflow(LifecycleEvent):
    """The consumer fell behind and ``dropped`` older events of ``channel`` were coalesced
    away (only channels whose latest value supersedes the older ones, such as ``scores``).

    Attributes:
        channel: The channel whose events were coalesced (``"scores"``).
        dropped: How many of its events were coalesced away since the previous
            ``Overflow`` of that channel was taken from the queue.
    """

    channel: str
    dropped: int


@attrs.frozen(slots=True)
class MalformedFrame(LifecycleEvent):
    """The server sent a frame that could not be decoded. The stream goes on.

    Attributes:
        error: Why it could not be decoded: a ``RemoteProtocolError`` whose ``raw`` holds
            the start of the frame. Not part of equality.
    """

    error: MmwsError = attrs.field(eq=False)

    @property
    def raw(self) -> str:
        """The start of the frame, as text (from ``error.raw``; empty if it has none)."""
        return getattr(self.error, "raw", "")


@attrs.frozen(slots=True)
class Closed(LifecycleEvent):
    """The client is closed: the last event. ``error`` is set when a fatal error closed it.

    Attributes:
        error: The fatal error that closed the client (e.g. an ``AuthenticationError``);
            ``None`` after ``close()`` or an ordinary end. Not part of equality.
    """

    error: MmwsError | None = attrs.field(default=None, eq=False)


@attrs.frozen(slots=True)
class KeepaliveEvent(Shown):
    """Base of the events that only prove the connection is alive (``Pong``, ``Heartbeat``,
    ``FeedPong``). The clients consume them (round trip, clock offset) and deliver them only
    with ``deliver_keepalive=True``."""


@attrs.frozen(slots=True)
class UnknownMessage(Shown):
    """A well-formed frame we do not know (a new ``type``, or a broadcast on a new channel),
    from either server. ``raw`` is the whole frame, deep-frozen.

    Attributes:
        raw: The whole frame as a read-only mapping, with the wire's own keys.
    """

    raw: Mapping[str, Any]

    @property
    def type(self) -> Any:
        """The frame's ``type`` field (``None`` if it has none)."""
        return self.raw.get("type")
