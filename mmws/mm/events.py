"""Events the MM protocol core produces: one frozen class per wire message.

Data events (``OrderEvent`` ... ``EmergencyEvent``) carry the typed ``payload``, the typed
``old`` values of the changed fields (empty for INSERT) and ``changes``. ``received_at`` is the
caller's clock reading when the frame arrived (``time.monotonic()`` in the clients); it is not
part of equality, so a replayed event equals the live one.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar, Union

import attrs

from mmws._display import Shown
from mmws._frozen import EMPTY, FrozenMap
from mmws.lifecycle import (
    Closed,
    Connected,
    Disconnected,
    KeepaliveEvent,
    MalformedFrame,
    Overflow,
    Reconnecting,
    Stale,
)
from mmws.lifecycle import UnknownMessage as UnknownMessage  # also importable here, as before
from mmws.mm.models import Account, Bet, Emergency, Order, Score

__all__ = [
    "AccountEvent",
    "BetEvent",
    "Broadcast",
    "EmergencyEvent",
    "EventKind",
    "GapDetected",
    "Heartbeat",
    "MMStreamEvent",
    "OrderEvent",
    "Pong",
    "ResyncFailed",
    "Resynced",
    "ScoreEvent",
    "ServerErrorEvent",
    "Subscribed",
    "Unsubscribed",
]

P = TypeVar("P")
_EMPTY: Mapping[str, Any] = EMPTY


class EventKind(str, Enum):
    """The ``event`` of a broadcast. An unknown kind stays a plain ``str``."""

    INSERT = "INSERT"
    UPDATE = "UPDATE"

    def __str__(self) -> str:
        return self.value


@attrs.frozen(slots=True)
class Broadcast(Shown, Generic[P]):
    """Base of the five data events.

    ``changes`` maps each attribute named in ``old`` to ``(old value, new value)``; a field the
    payload does not carry reads as ``None`` on the new side.

    Attributes:
        channel: The channel of the subclass, a class attribute: ``"orders"``, ``"bets"``,
            ``"accounts"``, ``"scores"`` or ``"emergency"``.
        event: ``INSERT`` or ``UPDATE``, an :class:`EventKind`; an unknown kind stays a
            plain ``str``.
        payload (Order | Bet | Account | Score | Emergency): The typed payload, by channel.
            An UPDATE's may carry only some fields.
        old: The previous values of the fields the broadcast changed, by attribute name,
            typed like the payload's; empty for an INSERT.
        received_at: When the frame arrived, in seconds of ``time.monotonic()`` (the
            clients' clock); 0.0 for an event built in code. Not part of equality, so a
            replayed event equals the live one.
        frame: The frame as the server sent it (for a relay: see :mod:`mmws.redis`);
            ``None`` for an event built in code. Not part of equality or the repr.
    """

    channel: ClassVar[str] = ""
    event: EventKind | str
    payload: P
    old: Mapping[str, Any] = _EMPTY
    received_at: float = attrs.field(default=0.0, eq=False, repr=False)
    frame: str | bytes | None = attrs.field(default=None, eq=False, repr=False)
    """The frame as the server sent it (for a relay: see :mod:`mmws.redis`); ``None`` for an
    event built in code. Not part of equality or the repr."""

    @property
    def changes(self) -> Mapping[str, tuple[Any, Any]]:
        """Each field named in ``old``, mapped to ``(old value, new value)``; for example
        ``{"order_status": ("PLACED", "FILLED")}``. Empty for an INSERT."""
        payload = self.payload
        return FrozenMap(
            {name: (value, getattr(payload, name, None)) for name, value in self.old.items()}
        )


@attrs.frozen(slots=True)
class OrderEvent(Broadcast[Order]):
    """Channel ``orders``: placement, status changes and fills of your exchange orders.

    Attributes:
        event: ``INSERT`` (a new order) or ``UPDATE``, an :class:`EventKind`; an unknown
            kind stays a plain ``str``.
        payload (Order): The order; an UPDATE's may carry only the fields that changed.
        old: The previous values of the fields the broadcast changed, by attribute name,
            typed like the payload's; empty for an INSERT.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
        frame: The frame as the server sent it; ``None`` for an event built in code. Not
            part of equality or the repr.
    """

    channel: ClassVar[str] = "orders"


@attrs.frozen(slots=True)
class BetEvent(Broadcast[Bet]):
    """Channel ``bets``: hedge bet placement, confirmation and settlement.

    Attributes:
        event: ``INSERT`` (a new bet) or ``UPDATE``, an :class:`EventKind`; an unknown
            kind stays a plain ``str``.
        payload (Bet): The bet; an UPDATE's may carry only the fields that changed.
        old: The previous values of the fields the broadcast changed, by attribute name,
            typed like the payload's; empty for an INSERT.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
        frame: The frame as the server sent it; ``None`` for an event built in code. Not
            part of equality or the repr.
    """

    channel: ClassVar[str] = "bets"


@attrs.frozen(slots=True)
class AccountEvent(Broadcast[Account]):
    """Channel ``accounts``: balance and status of your exchange accounts.

    Attributes:
        event: ``INSERT`` (a new account) or ``UPDATE``, an :class:`EventKind`; an unknown
            kind stays a plain ``str``.
        payload (Account): The account; an UPDATE's may carry only the fields that changed.
        old: The previous values of the fields the broadcast changed, by attribute name,
            typed like the payload's; empty for an INSERT.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
        frame: The frame as the server sent it; ``None`` for an event built in code. Not
            part of equality or the repr.
    """

    channel: ClassVar[str] = "accounts"


@attrs.frozen(slots=True)
class ScoreEvent(Broadcast[Score]):
    """Channel ``scores``: live scores (global). When the consumer falls behind, a newer
    score replaces the queued one with the same :attr:`coalesce_key` (the fixture).

    Attributes:
        event: ``INSERT`` (a fixture's first score) or ``UPDATE``, an :class:`EventKind`; an unknown
            kind stays a plain ``str``.
        payload (Score): The score of one fixture.
        old: The previous values of the fields the broadcast changed, by attribute name,
            typed like the payload's; empty for an INSERT.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
        frame: The frame as the server sent it; ``None`` for an event built in code. Not
            part of equality or the repr.
    """

    channel: ClassVar[str] = "scores"

    @property
    def coalesce_key(self) -> tuple[str, str]:
        """``("scores", fixture_id)``: a newer score replaces a queued one with the same
        key when the consumer falls behind."""
        return ("scores", self.payload.fixture_id)


@attrs.frozen(slots=True)
class EmergencyEvent(Broadcast[Emergency]):
    """Channel ``emergency``: emergency mode on or off (global). Delivered ahead of a backlog.

    Attributes:
        event: ``INSERT`` (emergency mode switched) or ``UPDATE``, an :class:`EventKind`; an unknown
            kind stays a plain ``str``.
        payload (Emergency): Whether emergency mode is on, and why.
        old: The previous values of the fields the broadcast changed, by attribute name,
            typed like the payload's; empty for an INSERT.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
        frame: The frame as the server sent it; ``None`` for an event built in code. Not
            part of equality or the repr.
    """

    channel: ClassVar[str] = "emergency"


@attrs.frozen(slots=True)
class Subscribed(Shown):
    """The server confirmed the subscription (``subscriptionId`` or ``subscription_id``).

    ``channels`` are the channels the server confirmed; ``missing`` those that were asked
    for and not confirmed (empty when the server confirmed everything, or named no
    channels at all).

    Attributes:
        subscription_id: The id the server gave the subscription; ``None`` if it sent none.
        channels: The channels the server confirmed.
        missing: The channels asked for and not confirmed; usually empty.
        line: With ``lines=2`` or more: the number of the line (from 0) this event came
            from, delivered only with ``line_events=True``; ``None`` for the stream's own
            event.
    """

    subscription_id: int | str | None
    channels: tuple[str, ...]
    missing: tuple[str, ...] = ()
    line: int | None = attrs.field(default=None, kw_only=True, repr=False)


@attrs.frozen(slots=True)
class Unsubscribed(Shown):
    """We sent ``unsubscribe``: no more data will come on this connection."""


@attrs.frozen(slots=True)
class Pong(KeepaliveEvent):
    """The server answered our ping. ``rtt`` is in seconds when a ping was outstanding.

    Attributes:
        rtt: The round trip of the ping, in seconds; ``None`` when no ping was outstanding.
    """

    rtt: float | None = None


@attrs.frozen(slots=True)
class Heartbeat(KeepaliveEvent):
    """The server's periodic heartbeat (every 60 s by the docs)."""


@attrs.frozen(slots=True)
class ServerErrorEvent(Shown):
    """An error frame from the server, as an event (the exception is ``error``).

    Named apart from the exception ``mmws.ServerError``; ``mmws.mm.events.ServerError`` is
    kept as an alias of this class for older imports.

    Attributes:
        message: The server's error text (e.g. ``"Invalid API key"``).
        code: The server's error code, if the frame had one; MM sends text only (``None``).
        error: The matching exception (an ``AuthenticationError``, a
            ``ConnectionLimitError`` or another :class:`~mmws.ServerError`); not part of
            equality.
    """

    message: str
    code: str | None = None
    error: Exception | None = attrs.field(default=None, eq=False)


ServerError = ServerErrorEvent  # the name this event had before; kept for older imports


@attrs.frozen(slots=True)
class GapDetected(Shown):
    """With ``state=True``: a broadcast shows that the cached state missed something.

    ``channel`` and ``key`` name the entity (an order id, a bet id, an account's
    ``(exchange, username)``). ``field`` is the first field whose ``old`` value disagrees with
    the cache: ``expected`` is the cached value, ``got`` the broadcast's ``old`` value. For an
    UPDATE of an entity the state does not know, ``field`` is ``None``; for an INSERT that
    repeats a known entity with other content, ``got`` is the new value. The broadcast itself
    is applied anyway (it is newer), ``synced`` turns False and a resync follows.

    Attributes:
        channel: The channel of the entity: ``"orders"``, ``"bets"`` or ``"accounts"``.
        key: The entity's key: an order id, a bet id, or ``(exchange, username)``.
        field: The first field that disagrees; ``None`` for an UPDATE of an unknown entity.
        expected: The value in the cache.
        got: The broadcast's ``old`` value (for a repeated INSERT, the new value).
    """

    channel: str
    key: Any
    field: str | None = None
    expected: Any = None
    got: Any = None


@attrs.frozen(slots=True)
class Resynced(Shown):
    """With ``state=True``: the state was rebuilt from the REST API, and broadcasts that came
    meanwhile were applied on top; it equals the server's again (``synced`` is True).

    ``reason`` is ``"connect"``, ``"reconnect"``, ``"gap"`` or ``"audit"`` (an audit that
    found differences); ``orders``, ``bets`` and ``accounts`` count what REST returned;
    ``duration`` is in seconds.

    Attributes:
        reason: Why the state was rebuilt: ``"connect"``, ``"reconnect"``, ``"gap"`` or
            ``"audit"``.
        orders: How many orders REST returned.
        bets: How many bets REST returned.
        accounts: How many accounts REST returned.
        duration: How long the resync took, in seconds.
    """

    reason: str
    orders: int
    bets: int
    accounts: int
    duration: float


@attrs.frozen(slots=True)
class ResyncFailed(Shown):
    """With ``state=True``: a resync failed (``error``). With ``will_retry`` it is tried
    again with backoff (1 s, 2 s, 4 s ... up to 30 s) and ``synced`` stays False meanwhile;
    without (a refused key), the state stays unsynced until the next reconnect.

    Attributes:
        error: Why the resync failed (an ``MmwsError``, e.g. a ``RestError``).
        will_retry: ``True`` when it is tried again with backoff.
    """

    error: Exception
    will_retry: bool

MMStreamEvent: TypeAlias = Union[  # noqa: UP007 - a runtime alias, readable in the docs
    OrderEvent,
    BetEvent,
    AccountEvent,
    ScoreEvent,
    EmergencyEvent,
    Subscribed,
    Unsubscribed,
    Pong,
    Heartbeat,
    ServerErrorEvent,
    GapDetected,
    Resynced,
    ResyncFailed,
    UnknownMessage,
    Connected,
    Disconnected,
    Reconnecting,
    Stale,
    Overflow,
    MalformedFrame,
    Closed,
]
"""Every event ``MMClient`` can deliver: what ``get()``, iteration and ``on_event`` carry.
Narrow it with ``isinstance``; a misspelt attribute is then a type error."""
