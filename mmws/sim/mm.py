"""The server side of the MM WebSocket, one connection at a time. Pure: text in, actions out.

:class:`MMServerSession` decodes what a client sends and answers with :class:`Send`,
:class:`Pong` and :class:`Close` actions; the server (:mod:`mmws.sim.server`) carries them out
(it owns the socket, the clock, the pong delay and the fault switches). The key registry (which
key belongs to which client, how many connections a key has) is shared by all connections, so
the session asks the server through :class:`Registry`.

What the session answers (seed connection flow, protocols.md A.1 to A.5):

=================================================  ============================================
client sends                                       server answers
=================================================  ============================================
``{"type":"subscribe","apiKey":K,"channels":[..]}``  ``{"type":"subscribed","subscriptionId":N,
                                                   "channels":[..]}``; ids count from 1 per
                                                   simulator; a repeated subscribe replaces the
                                                   channels (same id)
... without ``apiKey`` (or empty / null)           error ``apiKey required``, then close
... ``apiKey`` not a UUID string                   error ``Invalid apiKey format``, then close
... key not in ``api_keys``                        error ``Invalid API key``, then close
... key already has ``max_connections_per_key``    error ``Connection limit exceeded``, then close
... ``channels`` missing                           all five channels
... ``channels`` not a list of strings, or empty   error ``channels must be a non-empty list of
                                                   channel names`` (connection stays open)
... an unknown channel name                        error ``Unknown channel: X`` (stays open)
``{"type":"ping"}``                                ``{"type":"pong"}`` (any time, even before
                                                   subscribe)
``{"type":"unsubscribe"}``                         nothing; delivery on this connection stops;
                                                   a later subscribe starts it again
unknown ``type`` / no ``type``                     error ``Unknown message type: X`` /
                                                   ``Missing message type`` (stays open)
text that is not JSON                              error ``invalid JSON`` (stays open)
JSON that is not an object                         error ``message must be a JSON object``
binary frame                                       error ``binary frames are not supported``
=================================================  ============================================

Errors are ``{"type":"error","message":...}``. The four documented auth errors are fatal: the
frame is followed by a close with ``error_close_code`` (default 1008) and the error text as the
reason; ``send_error_frames=False`` leaves the frame out (close only), since the real shape is
undocumented. With ``legacy_field_names=True`` the key is read from ``api_key``, the reply
carries ``subscription_id`` and the first two texts read ``api_key required`` /
``Invalid api_key format`` (the docs before 2026-04-18). The other spelling is not accepted
(a camelCase server answers ``apiKey required`` to a client that sends ``api_key``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import attrs

from mmws.errors import ConfigError
from mmws.mm.protocol import CHANNELS, validate_api_key
from mmws.sim.actions import Action, Close, Pong, Send, encode

__all__ = [
    "ALL_CHANNELS",
    "BURST_EVENTS",
    "ErrorTexts",
    "MMServerSession",
    "Registry",
    "burst_frames",
    "encode_broadcast",
]

ALL_CHANNELS: Final[frozenset[str]] = frozenset(CHANNELS)


def encode_broadcast(
    channel: str, event: str, payload: Mapping[str, Any], old: Mapping[str, Any] | None = None
) -> str:
    frame: dict[str, Any] = {
        "type": "broadcast",
        "channel": channel,
        "event": event,
        "payload": payload,
    }
    if old is not None:
        frame["old"] = old
    return encode(frame)




@attrs.frozen
class ErrorTexts:
    """The documented error texts, in one of the two doc spellings."""

    key_field: str
    key_required: str
    key_format: str
    key_invalid: str = "Invalid API key"
    limit: str = "Connection limit exceeded"

    @classmethod
    def for_names(cls, legacy_field_names: bool) -> ErrorTexts:
        if legacy_field_names:
            return cls("api_key", "api_key required", "Invalid api_key format")
        return cls("apiKey", "apiKey required", "Invalid apiKey format")


class Registry(Protocol):
    """What a session needs to know about the other connections (the server implements it)."""

    def client_for(self, api_key: str) -> str | None:
        """The client name of ``api_key``, or None if the key is unknown."""

    def bind(self, session: MMServerSession, api_key: str) -> int | None:
        """Atomically: bind ``session`` to ``api_key`` unless the key is at its connection
        limit (then None), and return the subscription id."""


class MMServerSession:
    """One MM connection, server side. Only the connection's own thread calls :meth:`receive`.

    State read by other threads (``channels``, ``client``, ``subscribed``) is replaced, never
    mutated, so a reader sees either the old or the new value.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        legacy_field_names: bool = False,
        send_error_frames: bool = True,
        error_close_code: int = 1008,
    ) -> None:
        self._registry = registry
        self._texts = ErrorTexts.for_names(legacy_field_names)
        self._legacy = legacy_field_names
        self._send_error_frames = send_error_frames
        self._close_code = error_close_code
        self.api_key: str | None = None
        self.client: str | None = None
        self.subscription_id: int | None = None
        self.channels: frozenset[str] = frozenset()
        self.subscribed = False
        self.ever_subscribed = False

    def wants(self, channel: str, client: str | None) -> bool:
        """Whether a broadcast on ``channel`` (for ``client``, or any client) goes here."""
        if not self.subscribed or channel not in self.channels:
            return False
        return client is None or channel not in _CLIENT_CHANNELS or self.client == client

    def receive(self, data: str | bytes) -> list[Action]:
        """The actions answering one message from the client."""
        if not isinstance(data, str):
            return [Send(_error("binary frames are not supported"))]
        try:
            msg = json.loads(data)
        except (ValueError, RecursionError):
            return [Send(_error("invalid JSON"))]
        if type(msg) is not dict:
            return [Send(_error("message must be a JSON object"))]
        kind = msg.get("type")
        if kind == "subscribe":
            return self._subscribe(msg)
        if kind == "ping":
            return [Pong()]
        if kind == "unsubscribe":
            self.subscribed = False
            return []
        if kind is None:
            return [Send(_error("Missing message type"))]
        return [Send(_error(f"Unknown message type: {_short(kind)}"))]

    def fatal(self, text: str) -> list[Action]:
        """An auth error: the error frame (unless switched off), then the close."""
        close = Close(self._close_code, text)
        return [Send(_error(text)), close] if self._send_error_frames else [close]

    # -- private ----------------------------------------------------------------------------

    def _subscribe(self, msg: Mapping[str, Any]) -> list[Action]:
        texts = self._texts
        key = msg.get(texts.key_field)
        if key is None or key == "":
            return self.fatal(texts.key_required)
        if not isinstance(key, str):
            return self.fatal(texts.key_format)
        try:
            validate_api_key(key)
        except ConfigError:
            return self.fatal(texts.key_format)
        if self._registry.client_for(key) is None:
            return self.fatal(texts.key_invalid)
        channels = _channels(msg.get("channels", CHANNELS))
        if isinstance(channels, str):
            return [Send(_error(channels))]
        previous = self.channels
        self.channels = frozenset(channels)
        sub_id = self._registry.bind(self, key)
        if sub_id is None:
            self.channels = previous
            return self.fatal(texts.limit)
        id_field = "subscription_id" if self._legacy else "subscriptionId"
        reply = {"type": "subscribed", id_field: sub_id, "channels": list(channels)}
        return [Send(encode(reply))]


_CLIENT_CHANNELS: Final = frozenset({"orders", "bets", "accounts"})


def _channels(value: Any) -> tuple[str, ...] | str:
    """The requested channels in order without repeats, or the error text."""
    if not isinstance(value, (list, tuple)) or not value:
        return "channels must be a non-empty list of channel names"
    out: list[str] = []
    for name in value:
        if not isinstance(name, str):
            return "channels must be a non-empty list of channel names"
        if name not in ALL_CHANNELS:
            return f"Unknown channel: {_short(name)}"
        if name not in out:
            out.append(name)
    return tuple(out)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:40]


def _error(message: str) -> str:
    return encode({"type": "error", "message": message})


BURST_EVENTS: Final = ("UPDATE", "INSERT")


def burst_frames(count: int, *, first_id: int = 1, event: str = "UPDATE") -> Sequence[str]:
    """``count`` order-fill broadcasts (the seed's fill example), ``orderId`` first_id, +1...

    Every frame is a full, valid ``orders`` UPDATE with ``old`` (``event="INSERT"``: an
    INSERT, without ``old``), so a client decodes it the normal way; only ``orderId``
    differs, so a reader can check order and completeness. Another ``event`` is a
    ``ConfigError``.
    """
    if event not in BURST_EVENTS:
        raise ConfigError(f"event must be 'UPDATE' or 'INSERT', got {event!r}")
    event = BURST_EVENTS[BURST_EVENTS.index(event)]  # the plain str (not an EventKind)
    head = (
        f'{{"type":"broadcast","channel":"orders","event":"{event}","payload":{{"orderId":'
    )
    tail = encode(
        {
            "fixtureId": "id1000000861624412",
            "outcomeId": 161,
            "exchange": "polymarket",
            "exchangeOrderId": "0x1a2b3c",
            "orderStatus": "FILLED",
            "matchedStatus": "FULLY_MATCHED",
            "orderCents": 0.45,
            "orderStake": 100.0,
            "matchedStake": 100.0,
            "matchedAt": "2026-02-15T10:30:05Z",
        }
    )
    old = encode({"orderStatus": "PLACED", "matchedStatus": "NOT_MATCHED", "matchedStake": 0})
    rest = "," + tail[1:] + (',"old":' + old + "}" if event == "UPDATE" else "}")
    return [f"{head}{i}{rest}" for i in range(first_id, first_id + count)]
