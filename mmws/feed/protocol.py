"""The Sans-I/O core of the Soccer Football Info feed: commands out, events in, no I/O.

::

    proto = FeedProtocol(scope_style="seed")
    request = proto.subscribe("ODDS", "match:12345")
    for text in proto.data_to_send(): ws.send(text)
    proto.receive_text(frame, now=clock())
    request.done, request.error             # set once the server answered
    for event in proto.events_received(): ...

Replies are matched to requests by topic (``topicKey``, or channel + scope + id) when they
name one. The documented error frame names none, so an error that names no topic answers the
oldest pending request. Requests carry no id on the wire; this is the best the protocol
allows, and it is exact as long as the server answers in order.

Scope styles (protocols.md B.2): ``"seed"`` sends ``"scope": "match:12345"``; ``"split"``
sends ``"scope": "match", "id": "12345"``. Replies in either style are understood.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Final, Literal

import attrs

from mmws._codec import UNDECODABLE, load_object, parse_timestamp, preview, undecodable
from mmws._frozen import EMPTY, FrozenMap, freeze
from mmws._keepalive import Keepalive
from mmws._ratelimit import SlidingWindow as SlidingWindow  # its older import path
from mmws.errors import ConfigError, LocalProtocolError, RemoteProtocolError, SubscriptionError
from mmws.feed.events import (
    BatchUpdate,
    FeedError,
    FeedEvent,
    FeedPong,
    FeedSubscribed,
    FeedUnsubscribed,
    MatchEvent,
    OddsRealtimeUpdate,
    OddsUpdate,
    StatsRealtimeUpdate,
    StatsUpdate,
)
from mmws.lifecycle import UnknownMessage

__all__ = ["FEED_CHANNELS", "FeedProtocol", "FeedState"]

FEED_CHANNELS: Final = (
    "MAIN",
    "STATS",
    "ODDS",
    "STATS_REALTIME",
    "ODDS_REALTIME",
    "MAIN_REALTIME",
)
ScopeStyle = Literal["seed", "split"]

_SCOPE_RE: Final = re.compile(r"^(?:all|(match|league):([A-Za-z0-9_.\-]{1,64}))$")
_EVENT_CLASSES: Final[dict[str, type[FeedEvent]]] = {
    "match_start": MatchEvent,
    "goal": MatchEvent,
    "halftime": MatchEvent,
    "second_half_start": MatchEvent,
    "match_end": MatchEvent,
    "stats_update": StatsUpdate,
    "odds_update": OddsUpdate,
    "stats_update_realtime": StatsRealtimeUpdate,
    "odds_update_realtime": OddsRealtimeUpdate,
    "batch_update": BatchUpdate,
}
_CONTROL: Final = frozenset({"subscribed", "unsubscribed", "error", "pong"})
_MAX_TS_MS: Final = 253402300800000  # 10000-01-01T00:00:00Z in ms: later is no timestamp


def validate_channel(channel: str) -> str:
    if channel not in FEED_CHANNELS:
        raise ConfigError(
            f"unknown feed channel {channel!r}; valid channels are {', '.join(FEED_CHANNELS)}"
        )
    return channel


def validate_scope(scope: str) -> str:
    if not isinstance(scope, str) or not _SCOPE_RE.match(scope):
        raise ConfigError(
            f"invalid feed scope {scope!r}; use 'all', 'match:<id>' or 'league:<id>' "
            "(ids: letters, digits, '_', '-', '.')"
        )
    return scope


def topic_of(channel: str, scope: str) -> str:
    """``("ODDS", "match:12345")`` -> ``"ODDS:match:12345"``: the server's ``topicKey``."""
    return f"{channel}:{scope}"


@attrs.define(slots=True, eq=False)
class Request:
    """One subscribe or unsubscribe command awaiting its reply."""

    action: str
    channel: str
    scope: str
    done: bool = False
    error: SubscriptionError | None = None
    lost: bool = False  # the connection ended before the reply: no answer, not a refusal

    @property
    def topic(self) -> str:
        return topic_of(self.channel, self.scope)


def _ms_to_datetime(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            return parse_timestamp(value)
        except ValueError:
            return None
    return None


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


class FeedState(str, Enum):
    """A feed protocol core's state: ``OPEN`` until the connection is lost, then
    ``CLOSED``."""

    OPEN = "OPEN"
    CLOSED = "CLOSED"


_FEED_TRANSITIONS: Final[dict[tuple[FeedState, str], FeedState]] = {
    (FeedState.OPEN, "connection_lost"): FeedState.CLOSED,
    (FeedState.CLOSED, "connection_lost"): FeedState.CLOSED,
}


class FeedProtocol:
    """The feed protocol for one connection. Not thread-safe: one lock outside.

    Args:
        scope_style: How a scope goes on the wire: ``"seed"`` (the default) sends
            ``"scope": "match:12345"``, ``"split"`` sends ``"scope": "match", "id": "12345"``.
        keepalive: The ping interval and the pong and heartbeat timeouts, which the clients
            build from their options. Default: a ping every 30 s, a 10 s pong timeout and no
            heartbeat limit; the core only keeps the clocks, your code sends the pings.
    """

    def __init__(self, *, scope_style: ScopeStyle = "seed", keepalive: Keepalive | None = None):
        if scope_style not in ("seed", "split"):
            raise ConfigError(f"scope_style must be 'seed' or 'split', got {scope_style!r}")
        self.scope_style = scope_style
        self.keepalive = keepalive if keepalive is not None else Keepalive()
        self.state = FeedState.OPEN
        self.active: dict[str, tuple[str, str]] = {}
        self._pending: deque[Request] = deque()
        self._outgoing: list[str] = []
        self.answered = 0  # replies to our commands so far (a change wakes waiters)
        self._events: list[Any] = []

    def __repr__(self) -> str:
        return f"<FeedProtocol active={list(self.active)} pending={len(self._pending)}>"

    # -- commands ---------------------------------------------------------------------------

    def start(self, now: float) -> None:
        self.keepalive.start(now)

    def subscribe(self, channel: str, scope: str) -> Request:
        """Queue a subscribe command. Validates the channel and scope first (``ConfigError``).

        Args:
            channel: One of :data:`mmws.FEED_CHANNELS`, e.g. ``"ODDS"``.
            scope: ``"all"``, ``"match:<id>"`` or ``"league:<id>"``.

        Returns:
            The request: its ``done`` turns ``True`` when the server answers, and its
            ``error`` is then the ``SubscriptionError`` of a refusal, or ``None``.
        """
        return self._command("subscribe", channel, scope)

    def unsubscribe(self, channel: str, scope: str) -> Request:
        """Queue an unsubscribe command, for exactly the channel and scope subscribed.

        Args:
            channel: The channel, as subscribed.
            scope: The scope, as subscribed.

        Returns:
            The request, answered like :meth:`subscribe`'s.
        """
        return self._command("unsubscribe", channel, scope)

    def ping(self, now: float) -> None:
        """Queue a ping and start the pong clock.

        Args:
            now: Your clock's reading as the ping goes out, in seconds; the pong's ``rtt``
                is measured from it.
        """
        self._check_open()
        self._outgoing.append('{"action": "ping"}')
        self.keepalive.ping_sent(now)

    @property
    def closed(self) -> bool:
        return self.state is FeedState.CLOSED

    def connection_lost(self) -> None:
        """Fail every pending request: its reply will never come on this connection."""
        self.state = _FEED_TRANSITIONS[(self.state, "connection_lost")]
        while self._pending:
            request = self._pending.popleft()
            request.done = request.lost = True
            request.error = SubscriptionError("the connection closed before the reply", None)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The topics the server confirmed on this connection."""
        return tuple(self.active)

    def goodbye(self) -> list[str]:
        """What to send before closing: nothing (the server forgets a closed connection)."""
        return []

    def close_error(self, code: int, reason: str) -> Exception | None:
        """The feed's closes during the handshake are ordinary closes (retryable)."""
        return None


    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- I/O surface ------------------------------------------------------------------------

    def data_to_send(self) -> list[str]:
        """The texts to send, in order; the buffer is emptied."""
        out, self._outgoing = self._outgoing, []
        return out

    def events_received(self) -> list[Any]:
        """The events decoded so far, in order; the buffer is emptied."""
        out, self._events = self._events, []
        return out

    def receive_text(self, text: str | bytes, now: float) -> None:
        """Decode one frame; raises only ``RemoteProtocolError``, whatever the frame holds.

        Args:
            text: One text frame from the server, as ``str`` or UTF-8 ``bytes``.
            now: Your clock's reading when the frame arrived, in seconds (the clients pass
                ``time.monotonic()``); it becomes the events' ``received_at``.
        """
        self.keepalive.last_received = now
        try:  # free unless it raises: no extra call on the hot path
            msg = load_object(text)
            kind = msg.get("type")
            if not isinstance(kind, str):
                raise RemoteProtocolError("frame has no string 'type' field", preview(text))
            if kind in _CONTROL:
                self._control(kind, msg, now)
            else:
                self._events.append(self._data_event(kind, msg, now))
        except UNDECODABLE as exc:
            raise undecodable(exc, text) from None

    # -- private ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise LocalProtocolError("the connection is closed")

    def _command(self, action: str, channel: str, scope: str) -> Request:
        self._check_open()
        validate_channel(channel)
        validate_scope(scope)
        body: dict[str, Any] = {"action": action, "channel": channel}
        if self.scope_style == "split" and scope != "all":
            kind, _, ident = scope.partition(":")
            body["scope"] = kind
            body["id"] = ident
        else:
            body["scope"] = scope
        request = Request(action, channel, scope)
        self._pending.append(request)
        self._outgoing.append(json.dumps(body))
        return request

    def _reply_topic(self, msg: Mapping[str, Any]) -> str | None:
        topic = msg.get("topicKey")
        if isinstance(topic, str):
            return topic
        channel, scope = msg.get("channel"), msg.get("scope")
        if not isinstance(channel, str) or not isinstance(scope, str):
            return None
        ident = msg.get("id")
        if scope in ("match", "league") and ident is not None:
            scope = f"{scope}:{ident}"
        return topic_of(channel, scope)

    def _match(self, topic: str | None, action: str | None) -> Request | None:
        """The pending request this reply answers: by topic, else the oldest."""
        if topic is not None:
            for request in self._pending:
                if request.topic == topic and (action is None or request.action == action):
                    self._pending.remove(request)
                    self.answered += 1
                    return request
        if self._pending and (topic is None or action is None):
            self.answered += 1
            return self._pending.popleft()
        return None

    def _control(self, kind: str, msg: dict[str, Any], now: float) -> None:
        if kind == "pong":
            ts = msg.get("ts")
            # Milliseconds since the epoch; anything else (a string, 10**400, a negative
            # time) is not a server time: the pong still counts, without a clock reading.
            server_ts = ts if type(ts) is int and 0 <= ts < _MAX_TS_MS else None
            self._events.append(FeedPong(server_ts, self.keepalive.pong_received(now)))
            return
        topic = self._reply_topic(msg)
        message = _opt_str(msg.get("message")) or ""
        if kind == "error":
            code = _opt_str(msg.get("code"))
            request = self._match(topic, None)
            error = SubscriptionError(message or "error without a message", code)
            if request is None:
                self._events.append(FeedError(code, error.message, topic, error))
                return
            request.done, request.error = True, error
            return
        action = "subscribe" if kind == "subscribed" else "unsubscribe"
        request = self._match(topic, action)
        if request is not None:
            request.done = True
            channel, scope, topic = request.channel, request.scope, request.topic
        else:  # a confirmation we did not ask for: report what it names
            channel = _opt_str(msg.get("channel")) or ""
            scope = (topic or "").partition(":")[2]
            topic = topic or ""
        if kind == "subscribed":
            if topic:
                self.active[topic] = (channel, scope)
            self._events.append(FeedSubscribed(channel, scope, topic, message))
        else:
            self.active.pop(topic, None)
            self._events.append(FeedUnsubscribed(channel, scope, topic, message))

    def _data_event(self, kind: str, msg: dict[str, Any], now: float) -> Any:
        channel = msg.get("channel")
        if not isinstance(channel, str):
            return UnknownMessage(freeze(msg))
        event_type = msg.get("eventType") if kind == "event" else kind
        if not isinstance(event_type, str):
            event_type = kind
        scope = _opt_str(msg.get("scope"))
        ident = _opt_str(msg.get("id"))
        match_id = _opt_str(msg.get("matchId")) or (ident if scope == "match" else None)
        league_id = _opt_str(msg.get("leagueId")) or (ident if scope == "league" else None)
        frozen = freeze(msg)
        data = frozen.get("data")
        cls = _EVENT_CLASSES.get(event_type, FeedEvent)
        return cls(
            channel,
            event_type,
            match_id,
            league_id,
            _ms_to_datetime(msg.get("ts")),
            data if isinstance(data, FrozenMap) else EMPTY,
            scope,
            _opt_str(msg.get("eventId")),
            frozen,
            now,
        )
