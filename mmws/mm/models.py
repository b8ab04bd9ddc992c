"""Typed payloads of the MM WebSocket, one frozen class per channel.

Attribute names are the wire's camelCase keys in snake_case. UPDATE payloads can be partial,
so every attribute but the identity key (``Order.order_id``, ``Bet.bet_id``,
``Score.fixture_id``) defaults to ``None``. Keys we do not know are kept, read-only, in
``extra`` with the wire's spelling. Enumerated values become members of the ``str`` enums
below; a value we do not know stays a plain ``str`` (``PARTIAL`` was documented once and
removed again). Free-form nested objects (``Bet.sent_data``, ``Bet.received_data``,
``Score.scores``) stay mappings with the wire's own keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import attrs

from mmws._frozen import EMPTY

__all__ = [
    "Account",
    "Bet",
    "BetStatus",
    "Emergency",
    "MatchedStatus",
    "Order",
    "OrderStatus",
    "Score",
    "SettlementStatus",
    "TradingStatus",
]

_EMPTY: Mapping[str, Any] = EMPTY


class OrderStatus(str, Enum):
    """``orderStatus`` of an exchange order (protocols.md A.4)."""

    PENDING_PLACEMENT = "PENDING_PLACEMENT"
    PLACED = "PLACED"
    FILLED = "FILLED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    def __str__(self) -> str:
        return self.value


class MatchedStatus(str, Enum):
    """``matchedStatus`` of an exchange order."""

    NOT_MATCHED = "NOT_MATCHED"
    PARTIALLY_MATCHED = "PARTIALLY_MATCHED"
    FULLY_MATCHED = "FULLY_MATCHED"

    def __str__(self) -> str:
        return self.value


class SettlementStatus(str, Enum):
    """``settlementStatus`` of an order or bet. Bets send it lowercase; both spellings map here."""

    UNDECIDED = "UNDECIDED"
    WON = "WON"
    LOST = "LOST"
    VOID = "VOID"
    HALF_WON = "HALF_WON"
    HALF_LOST = "HALF_LOST"

    def __str__(self) -> str:
        return self.value


class BetStatus(str, Enum):
    """``betStatus`` of a hedge bet: lowercase on the wire; ``MATCHED`` is from older docs."""

    PLACED = "placed"
    PENDING = "pending"
    DECLINED = "declined"
    MATCHED = "matched"
    WON = "won"
    LOST = "lost"

    def __str__(self) -> str:
        return self.value


# ``extra`` is deep-frozen when decoded (the codec hands in a FrozenMap, or for a long
# broadcast frame a LazyFrozenMap, frozen as it is read); no attrs converter here, since
# one would run on every frame of the hot path.
_extra = attrs.field(default=_EMPTY, kw_only=True, repr=False)


@attrs.frozen(slots=True)
class Order:
    """An exchange order (channel ``orders``), keyed by ``order_id``.

    Attributes:
        order_id: The order's id (``orderId``), its key.
        fixture_id: The fixture (match) it trades, e.g. ``"id1000000861624412"``.
        outcome_id: The market outcome it trades, e.g. ``161``.
        player_id: The player of a player-prop market; 0 otherwise (REST).
        exchange: The exchange it is on, e.g. ``"polymarket"`` or ``"kalshi"``.
        account: The exchange account's username (REST).
        exchange_order_id: The order's id on the exchange.
        exchange_outcome_id: The outcome's id on the exchange (REST).
        order_status: ``PENDING_PLACEMENT``, ``PLACED``, ``FILLED``, ``FAILED``,
            ``CANCELLED`` or ``EXPIRED`` (an :class:`OrderStatus`, or a plain ``str`` for an
            unknown value).
        matched_status: ``NOT_MATCHED``, ``PARTIALLY_MATCHED`` or ``FULLY_MATCHED`` (a
            :class:`MatchedStatus`).
        order_cents: The order's price, 0.01 to 0.99.
        order_stake: The stake the order asks for.
        matched_stake: The stake filled so far.
        back: ``True`` for a buy (REST).
        side: ``"buy"`` or ``"sell"``, from ``back`` (REST).
        settlement_status: ``UNDECIDED``, ``WON``, ``LOST``, ``VOID``, ``HALF_WON`` or
            ``HALF_LOST`` (a :class:`SettlementStatus`).
        settled_at: When it was settled (an aware UTC ``datetime``) (REST).
        bookmaker_outcome_price: The bookmaker's decimal odds that triggered the order.
        bookmaker_outcome_limit: The bookmaker's stake limit on that outcome.
        bookmaker_outcome_active: Whether the bookmaker's outcome is still offered (REST).
        created_at: When the order was created (an aware UTC ``datetime``).
        matched_at: When it was matched.
        updated_at: When it last changed.
        extra: Fields the library does not know, read-only, with the wire's spelling.
    """

    order_id: int
    fixture_id: str | None = None
    outcome_id: int | None = None
    player_id: int | None = None
    exchange: str | None = None
    account: str | None = None
    exchange_order_id: str | None = None
    exchange_outcome_id: str | None = None
    order_status: OrderStatus | str | None = None
    matched_status: MatchedStatus | str | None = None
    order_cents: float | None = None
    order_stake: float | None = None
    matched_stake: float | None = None
    back: bool | None = None
    side: str | None = None
    settlement_status: SettlementStatus | str | None = None
    settled_at: datetime | None = None
    bookmaker_outcome_price: float | None = None
    bookmaker_outcome_limit: float | None = None
    bookmaker_outcome_active: bool | None = None
    created_at: datetime | None = None
    matched_at: datetime | None = None
    updated_at: datetime | None = None
    extra: Mapping[str, Any] = _extra


@attrs.frozen(slots=True)
class Bet:
    """A hedge bet placed after a fill (channel ``bets``), keyed by ``bet_id``.

    Attributes:
        bet_id: The bet's id (``betId``), its key.
        order_id: The exchange order whose fill it hedges.
        client: The client it belongs to.
        bookmaker: The bookmaker it was placed with, e.g. ``"pinnacle"``.
        bookmaker_bet_id: The bet's id at the bookmaker (REST).
        placed_price: The decimal odds it was placed at.
        placed_stake: The stake placed.
        bet_status: ``placed``, ``pending``, ``declined``, ``matched``, ``won`` or ``lost``
            (a :class:`BetStatus`; lowercase on the wire).
        settlement_status: A :class:`SettlementStatus` (bets send it lowercase).
        sent_data: What was sent to the bookmaker, with the bookmaker's own keys.
        received_data: What the bookmaker answered, with its own keys.
        placed_at: When it was placed (an aware UTC ``datetime``).
        settled_at: When it was settled.
        extra: Fields the library does not know, read-only, with the wire's spelling.
    """

    bet_id: int
    order_id: int | None = None
    client: str | None = None
    bookmaker: str | None = None
    bookmaker_bet_id: str | None = None
    placed_price: float | None = None
    placed_stake: float | None = None
    bet_status: BetStatus | str | None = None
    settlement_status: SettlementStatus | str | None = None
    sent_data: Mapping[str, Any] | None = None
    received_data: Mapping[str, Any] | None = None
    placed_at: datetime | None = None
    settled_at: datetime | None = None
    extra: Mapping[str, Any] = _extra


@attrs.frozen(slots=True)
class Account:
    """An exchange account's balance and status (channel ``accounts``).

    The docs show no WebSocket example; the fields follow the REST ``AccountResponse``
    [ASSUMPTION], so even the identity (``exchange``, ``username``) is optional here.

    Attributes:
        exchange: The exchange, e.g. ``"polymarket"``; with ``username``, the key.
        username: The account's username on the exchange.
        client: The client it belongs to.
        active: Whether the account is active (the only account status).
        balance: The balance on the exchange.
        max_outcome_stake: The largest stake allowed on one outcome.
        bookmaker: The bookmaker linked to the account.
        note: A free-text note.
        created_at: When the account was created (an aware UTC ``datetime``).
        updated_at: When it last changed.
        extra: Fields the library does not know, read-only, with the wire's spelling.
    """

    exchange: str | None = None
    username: str | None = None
    client: str | None = None
    active: bool | None = None
    balance: float | None = None
    max_outcome_stake: float | None = None
    bookmaker: str | None = None
    note: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extra: Mapping[str, Any] = _extra


@attrs.frozen(slots=True)
class Score:
    """A live score of one fixture (channel ``scores``), keyed by ``fixture_id``.

    Attributes:
        fixture_id: The fixture, e.g. ``"id1000000861624412"``; the key.
        live: Whether the fixture is being played now.
        status_id: The fixture's status code.
        current_period: The period, as text, e.g. ``"2nd Half"``.
        current_minute: The minute of play.
        scores: The scores, with the wire's keys, e.g. ``{"home": 2, "away": 1,
            "period1Home": 1}`` (the keys vary by sport).
        extra: Fields the library does not know, read-only, with the wire's spelling.
    """

    fixture_id: str
    live: bool | None = None
    status_id: int | None = None
    current_period: str | None = None
    current_minute: int | None = None
    scores: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = _extra


@attrs.frozen(slots=True)
class Emergency:
    """Emergency mode on or off (channel ``emergency``).

    Attributes:
        emergency: ``True`` while emergency mode is on (trading stopped).
        reason: Why it was switched, e.g. ``"Manual trigger"``.
        triggered_at: When it was switched (an aware UTC ``datetime``).
        extra: Fields the library does not know, read-only, with the wire's spelling.
    """

    emergency: bool | None = None
    reason: str | None = None
    triggered_at: datetime | None = None
    extra: Mapping[str, Any] = _extra


@attrs.frozen(slots=True)
class TradingStatus:
    """Whether the client may trade now (REST ``GET /api/v1/trading/status``).

    The ``manual_*`` fields are the client's own pause and stop switches; the ``system_*``
    fields and ``emergency_active`` are the operator's. ``system_duration_seconds`` is how
    long the system block has lasted.

    Attributes:
        client: The client's id.
        client_name: The client's name.
        odds_format: ``"american"``, ``"decimal"``, ``"hong_kong"`` or ``"fractional"``.
        status: One word for it all: ``"live"``, ``"manual_paused"``, ``"manual_stopped"``,
            ``"soft_paused"``, ``"system_stopped"`` or ``"emergency"``.
        trading_active: Whether the client may trade now.
        manual_paused: Whether the client paused trading.
        manual_paused_at: When it paused (an aware UTC ``datetime``).
        manual_paused_reason: Why it paused.
        manual_stopped: Whether the client stopped trading.
        manual_stopped_at: When it stopped.
        manual_stopped_reason: Why it stopped.
        system_trading_blocked: Whether the operator blocks trading.
        emergency_active: Whether emergency mode is on.
        system_stopped: Whether the operator stopped trading.
        soft_paused: Whether trading is paused automatically (stale data or lag), until it
            recovers by itself.
        system_reason: The operator's reason.
        system_duration_seconds: How long the system block has lasted, in seconds.
        extra: Fields the library does not know, read-only, with the wire's spelling.
    """

    client: str | None = None
    client_name: str | None = None
    odds_format: str | None = None
    status: str | None = None
    trading_active: bool | None = None
    manual_paused: bool | None = None
    manual_paused_at: datetime | None = None
    manual_paused_reason: str | None = None
    manual_stopped: bool | None = None
    manual_stopped_at: datetime | None = None
    manual_stopped_reason: str | None = None
    system_trading_blocked: bool | None = None
    emergency_active: bool | None = None
    system_stopped: bool | None = None
    soft_paused: bool | None = None
    system_reason: str | None = None
    system_duration_seconds: float | None = None
    extra: Mapping[str, Any] = _extra

