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
    """An exchange order (channel ``orders``), keyed by ``order_id``."""

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
    """A hedge bet placed after a fill (channel ``bets``), keyed by ``bet_id``."""

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
    """A live score of one fixture (channel ``scores``), keyed by ``fixture_id``."""

    fixture_id: str
    live: bool | None = None
    status_id: int | None = None
    current_period: str | None = None
    current_minute: int | None = None
    scores: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = _extra


@attrs.frozen(slots=True)
class Emergency:
    """Emergency mode on or off (channel ``emergency``)."""

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

