"""The Sans-I/O core of the MM WebSocket: text in, events and text out, no I/O, no clock.

::

    proto = MMProtocol()
    proto.subscribe(api_key, ["orders", "bets"], now=clock())
    for text in proto.data_to_send(): ws.send(text)
    proto.receive_text(frame, now=clock())      # may raise RemoteProtocolError
    for event in proto.events_received(): ...
    if proto.keepalive.dead(now=clock()): ...    # pong overdue or server silent

State table (anything else raises ``LocalProtocolError``)::

    IDLE        --subscribe-->        SUBSCRIBING
    SUBSCRIBING --subscribed-->       SUBSCRIBED
    SUBSCRIBING --error frame-->      FAILED
    SUBSCRIBED  --unsubscribe-->      UNSUBSCRIBED
    any         --connection_lost-->  CLOSED
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Any, Final

from mmws._codec import (
    UNDECODABLE,
    ModelCodec,
    load_object,
    model_codec,
    preview,
    slot_constructor,
    undecodable,
)
from mmws._frozen import EMPTY, MAX_DEPTH, freeze, within_depth
from mmws._keepalive import Keepalive
from mmws._secret import Secret, SecretText
from mmws.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionLimitError,
    LocalProtocolError,
    RemoteProtocolError,
)
from mmws.errors import ServerError as ServerErrorException
from mmws.lifecycle import UnknownMessage
from mmws.mm.events import (
    AccountEvent,
    BetEvent,
    Broadcast,
    EmergencyEvent,
    EventKind,
    Heartbeat,
    OrderEvent,
    Pong,
    ScoreEvent,
    ServerErrorEvent,
    Subscribed,
    Unsubscribed,
)
from mmws.mm.models import Account, Bet, Emergency, Order, Score

__all__ = ["CHANNELS", "MMProtocol", "MMProtocolState"]

CHANNELS: Final = ("orders", "bets", "accounts", "scores", "emergency")

_BROADCASTS: Final[dict[str, tuple[Callable[..., Broadcast[Any]], ModelCodec]]] = {
    "orders": (slot_constructor(OrderEvent), model_codec(Order, {"orderId": "id"})),
    "bets": (slot_constructor(BetEvent), model_codec(Bet, {"betId": "id"})),
    "accounts": (slot_constructor(AccountEvent), model_codec(Account)),
    "scores": (slot_constructor(ScoreEvent), model_codec(Score)),
    "emergency": (slot_constructor(EmergencyEvent), model_codec(Emergency)),
}
"""Per channel: the event's constructor (positional: event, payload, old, received_at,
frame) and the payload's codec."""
_KINDS: Final = {k.value: k for k in EventKind}
_FRAME_LEVELS: Final = MAX_DEPTH + 2
"""How deep a frame may nest: a free-form value (``sentData``, an unknown key, a key of
``old``) sits two objects down (the frame, its ``payload`` or ``old``) and may nest
:data:`~mmws._frozen.MAX_DEPTH` deep itself. Checked before parsing, so that freezing a
free-form value on first read can never fail."""
_LAZY_FROM: Final = 2048
"""Frames longer than this (bytes or characters) have their nesting checked before they
are parsed, and the free-form objects of their broadcasts frozen on first read (a 64 KB
``sentData`` then costs nothing until someone reads it). Shorter ones are frozen at once,
which costs less than the check; the depth rule is the same either way."""
_NO_OLD: Final[Mapping[str, Any]] = EMPTY


class MMProtocolState(str, Enum):
    """The protocol core's state (see the table above). Named ``MMState`` up to mmws 0.1; that
    name is now the state cache, :class:`mmws.MMState`."""

    IDLE = "IDLE"
    SUBSCRIBING = "SUBSCRIBING"
    SUBSCRIBED = "SUBSCRIBED"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    FAILED = "FAILED"
    CLOSED = "CLOSED"


_TRANSITIONS: Final[dict[tuple[MMProtocolState, str], MMProtocolState]] = {
    (MMProtocolState.IDLE, "subscribe"): MMProtocolState.SUBSCRIBING,
    (MMProtocolState.SUBSCRIBING, "subscribed"): MMProtocolState.SUBSCRIBED,
    (MMProtocolState.SUBSCRIBING, "error"): MMProtocolState.FAILED,
    (MMProtocolState.SUBSCRIBED, "unsubscribe"): MMProtocolState.UNSUBSCRIBED,
    **{(state, "connection_lost"): MMProtocolState.CLOSED for state in MMProtocolState},
}
# What the server may send in any state without changing it (a repeated `subscribed`, an
# error frame after the subscription): such frames are events, not transitions.
_SERVER_EVENTS: Final = frozenset({"subscribed", "error"})


_UUID_TEXT: Final = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def validate_api_key(api_key: str | Secret) -> Secret:
    """The key as a :class:`Secret`; ``ConfigError`` (never showing the key) unless it is a
    UUID in its usual 36-character form (``8-4-4-4-12`` hex digits), as the server issues it."""
    # Only Secrets in this frame's locals: the ConfigError's traceback, rendered with its
    # locals by an error tracker, must not show the key (the helper returns, never raises).
    api_key = api_key if isinstance(api_key, Secret) else Secret(api_key)
    problem = _key_problem(api_key)
    if problem is not None:
        raise ConfigError(problem)
    return api_key


def _key_problem(api_key: Secret) -> str | None:
    """Why the key is not acceptable (a sentence that does not show it), or ``None``."""
    raw: object = api_key.reveal()
    if not isinstance(raw, str):
        return f"api_key must be a string (a UUID), got {type(raw).__name__}"
    if _UUID_TEXT.fullmatch(raw):
        return None
    hint = "the key is not shown"
    if raw != raw.strip():
        hint = "it has whitespace around it; " + hint
    elif _UUID_TEXT.fullmatch(_plain_uuid(raw)):
        hint = "write it as 8-4-4-4-12 hex digits, with no braces or urn:uuid: prefix; " + hint
    return f"api_key is not a valid UUID ({len(raw)} characters; {hint})"


def _subscribe_text(field: str, key: Secret, channels: Sequence[str]) -> SecretText:
    return SecretText(
        json.dumps({"type": "subscribe", field: key.reveal(), "channels": list(channels)})
    )


def _plain_uuid(text: str) -> str:
    """``text`` in the 36-character form if :class:`uuid.UUID` reads it, else ``""``."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return ""


def validate_channels(channels: Iterable[str]) -> tuple[str, ...]:
    """The channels as a tuple in the caller's order, without repeats; ``ConfigError`` if bad."""
    if isinstance(channels, str):
        channels = [c.strip() for c in channels.split(",") if c.strip()]
    out: list[str] = []
    for channel in channels:
        if channel not in CHANNELS:
            raise ConfigError(
                f"unknown MM channel {channel!r}; valid channels are {', '.join(CHANNELS)}"
            )
        if channel not in out:
            out.append(channel)
    if not out:
        raise ConfigError(f"no channels given; valid channels are {', '.join(CHANNELS)}")
    return tuple(out)


def classify_error(message: str, code: str | None = None) -> ServerErrorException:
    """Map the documented MM error texts to exception classes (both doc spellings)."""
    text = message.lower().replace("_", "")
    if "apikey required" in text or "invalid apikey" in text or "invalid api key" in text:
        return AuthenticationError(message, code)
    if "connection limit" in text:
        return ConnectionLimitError(message, code)
    return ServerErrorException(message, code)


def _error_text(msg: Mapping[str, Any]) -> str:
    for key in ("message", "error", "detail"):
        value = msg.get(key)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value)
    return "error frame without a message"


class MMProtocol:
    """The MM protocol state machine for one connection. Not thread-safe: one lock outside.

    ``legacy_field_names=True`` sends ``api_key`` (the docs before 2026-04-18) instead of
    ``apiKey``. Both ``subscriptionId`` and ``subscription_id`` are read.

    Args:
        legacy_field_names: Subscribe with ``api_key`` instead of ``apiKey`` (default
            ``False``).
        keepalive: The ping interval and the pong and heartbeat timeouts, which the clients
            build from their options. Default: a ping every 30 s, a 10 s pong timeout and no
            heartbeat limit; the core only keeps the clocks, your code sends the pings.
    """

    def __init__(
        self,
        *,
        legacy_field_names: bool = False,
        keepalive: Keepalive | None = None,
    ) -> None:
        self.legacy_field_names = legacy_field_names
        self.keepalive = keepalive if keepalive is not None else Keepalive()
        self.state = MMProtocolState.IDLE
        self.channels: tuple[str, ...] = ()
        self.confirmed: tuple[str, ...] = ()  # what the server's last `subscribed` named
        self.subscription_id: int | str | None = None
        self._outgoing: list[str] = []
        self._events: list[Any] = []
        self.answered = 0  # replies to our commands so far (a change wakes waiters)

    def __repr__(self) -> str:
        return f"<MMProtocol state={self.state.value} channels={list(self.channels)}>"

    # -- commands ---------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """The connection just opened: start the keepalive clocks."""
        self.keepalive.start(now)

    def subscribe(self, api_key: str | Secret, channels: Sequence[str]) -> None:
        """Queue the subscribe command. Validates the key and channels first (``ConfigError``).

        Args:
            api_key: Your MM API key, a UUID.
            channels: The channels to subscribe to (see :data:`mmws.CHANNELS`).
        """
        key = validate_api_key(api_key)
        chans = validate_channels(channels)
        self._transition("subscribe")
        self.channels = chans
        field = "api_key" if self.legacy_field_names else "apiKey"
        self._outgoing.append(_subscribe_text(field, key, chans))

    def ping(self, now: float) -> None:
        """Queue a ping and start the pong clock.

        Args:
            now: Your clock's reading as the ping goes out, in seconds; the pong's ``rtt``
                is measured from it.
        """
        if self.state in (MMProtocolState.CLOSED, MMProtocolState.FAILED):
            raise LocalProtocolError(f"cannot ping in state {self.state.value}")
        self._outgoing.append('{"type": "ping"}')
        self.keepalive.ping_sent(now)

    def unsubscribe(self) -> None:
        """Queue ``unsubscribe``; no more data will be delivered on this connection."""
        self._transition("unsubscribe")
        self._outgoing.append('{"type": "unsubscribe"}')
        self._events.append(Unsubscribed())

    def connection_lost(self) -> None:
        self._transition("connection_lost")


    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The channels the server's last ``subscribed`` confirmed on this connection."""
        return self.confirmed

    def goodbye(self) -> list[str]:
        """What to send before closing: ``unsubscribe`` when subscribed, else nothing."""
        if self.state is not MMProtocolState.SUBSCRIBED:
            return []
        self.unsubscribe()
        self.events_received()
        return self.data_to_send()

    def close_error(self, code: int, reason: str) -> Exception | None:
        """What a close before ``subscribed`` without an error frame means (the frame shape
        is undocumented): 1008's reason is read like an error text; an empty reason with
        1008 is a refused key (protocols.md A.5). ``None``: an ordinary close (retryable)."""
        if code != 1008:
            return None
        if not reason:
            return AuthenticationError(
                "the server closed the connection with code 1008 before confirming the "
                "subscription, giving no reason: the key was refused"
            )
        classified = classify_error(reason)
        return None if type(classified) is ServerErrorException else classified

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
        """Decode one frame. Raises only :class:`RemoteProtocolError`, whatever the frame
        holds; the next frame decodes normally after it.

        Args:
            text: One text frame from the server, as ``str`` or UTF-8 ``bytes``.
            now: Your clock's reading when the frame arrived, in seconds (the clients pass
                ``time.monotonic()``); it becomes the events' ``received_at``.
        """
        self.keepalive.last_received = now
        try:  # free unless it raises: no extra call on the hot path
            lazy = len(text) > _LAZY_FROM
            if lazy and not within_depth(text, _FRAME_LEVELS):
                raise RemoteProtocolError(f"JSON nested deeper than {MAX_DEPTH} levels",
                                          preview(text))  # fmt: skip
            msg = load_object(text)
            kind = msg.get("type")
            if kind == "broadcast":
                self._events.append(self._broadcast(msg, text, now, lazy))
            elif kind == "pong":
                self._events.append(Pong(self.keepalive.pong_received(now)))
            elif kind == "heartbeat":
                self._events.append(Heartbeat())
            elif kind == "subscribed":
                self._subscribed(msg)
            elif kind == "error":
                self._error(msg)
            elif kind is None:
                raise RemoteProtocolError("frame has no 'type' field", preview(text))
            else:
                self._events.append(UnknownMessage(freeze(msg)))
        except UNDECODABLE as exc:
            raise undecodable(exc, text) from None

    # -- private ----------------------------------------------------------------------------

    def _transition(self, what: str) -> None:
        """Change state through the table; a command not allowed in this state is
        ``LocalProtocolError``, a server event without an entry leaves the state alone."""
        new = _TRANSITIONS.get((self.state, what))
        if new is not None:
            self.state = new
        elif what not in _SERVER_EVENTS:
            raise LocalProtocolError(f"cannot {what} in state {self.state.value}")

    def _broadcast(
        self, msg: dict[str, Any], text: str | bytes, now: float, lazy: bool = False
    ) -> Any:
        channel = msg.get("channel")
        entry = _BROADCASTS.get(channel) if type(channel) is str else None
        if entry is None:
            return UnknownMessage(freeze(msg))
        make, codec = entry
        payload = msg.get("payload")
        if type(payload) is not dict:
            raise RemoteProtocolError(
                f"{channel} broadcast: 'payload' is {type(payload).__name__}, not an object",
                preview(text),
            )
        old = msg.get("old")
        kind = msg.get("event")
        try:
            if type(kind) is str:
                kind = _KINDS.get(kind, kind)
            elif kind is not None:
                raise TypeError(f"'event' is {type(kind).__name__}, not a string")
            model = codec.structure(payload, lazy=lazy)
            if old is None:
                old = _NO_OLD
            elif type(old) is not dict:
                raise TypeError(f"'old' is {type(old).__name__}, not an object")
            else:
                old = codec.structure_old(old) if old else _NO_OLD
        except (TypeError, ValueError, KeyError) as exc:
            detail = exc.args[0] if exc.args else exc
            raise RemoteProtocolError(f"{channel} broadcast: {detail}", preview(text)) from None
        return make(kind, model, old, now, text)

    def _subscribed(self, msg: Mapping[str, Any]) -> None:
        sub_id = freeze(msg.get("subscriptionId", msg.get("subscription_id")))
        channels = msg.get("channels")
        chans = tuple(freeze(c) for c in channels) if isinstance(channels, list) else self.channels
        missing = tuple(c for c in self.channels if c not in chans)
        self._transition("subscribed")
        self.subscription_id = sub_id
        self.confirmed = tuple(c for c in chans if isinstance(c, str))
        self.answered += 1
        self._events.append(Subscribed(sub_id, chans, missing))

    def _error(self, msg: Mapping[str, Any]) -> None:
        text = _error_text(msg)
        code = msg.get("code")
        code = code if isinstance(code, str) else None
        error = classify_error(text, code)
        self._transition("error")
        self.answered += 1
        self._events.append(ServerErrorEvent(text, code, error))
