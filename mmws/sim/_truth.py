"""The simulator's ground truth of the MM state: what its REST API answers and what a
client's state cache must end up equal to. Pure: no I/O, no threads, no clock.

:class:`Truth` keeps, per client, the orders by ``orderId``, the bets by ``betId`` and the
accounts by ``(exchange, username)``, and for everyone the scores by ``fixtureId`` and the
emergency switch, all as camelCase wire dicts. It is fed every MM broadcast the simulator
queues, and merges them with its own code (it is the independent oracle a client's cache is
checked against, so it shares none of the client's merge logic):

- ``INSERT``: the row becomes a copy of the payload (replacing any row of that key);
- ``UPDATE``: every key of the payload is written into the row, explicit ``null``\\ s
  included; an unknown key creates the row from the payload;
- another ``event`` changes nothing;
- ``orders``, ``bets`` and ``accounts`` apply to the owning client; with no client (a
  broadcast to every subscriber) to every client;
- a payload the client's decoder refuses (a wrong type, no identity key) changes nothing: a
  client cannot apply it either, and the real server's database never holds such a row.

Rows are replaced on every change, never changed in place, so a row handed out stays as it
was. The owner (the simulator) serialises every call with its own lock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import date
from typing import Any, Final

from mmws._codec import UNDECODABLE, ModelCodec, model_codec, parse_timestamp
from mmws.mm.models import Account, Bet, Emergency, Order, Score
from mmws.mm.state import StateSnapshot
from mmws.sim.scenario import CLIENT_CHANNELS

__all__ = ["OPEN_STATUSES", "Truth", "is_open", "paginate"]

# The same codecs (and identity aliases) as the client core's (mmws.mm.protocol): model_codec
# keeps the first one built per class, so both sides decode alike whichever is built first.
ORDER_CODEC: Final = model_codec(Order, {"orderId": "id"})
BET_CODEC: Final = model_codec(Bet, {"betId": "id"})
ACCOUNT_CODEC: Final = model_codec(Account)
SCORE_CODEC: Final = model_codec(Score)
EMERGENCY_CODEC: Final = model_codec(Emergency)
_CODECS: Final[dict[str, ModelCodec]] = {
    "orders": ORDER_CODEC,
    "bets": BET_CODEC,
    "accounts": ACCOUNT_CODEC,
    "scores": SCORE_CODEC,
    "emergency": EMERGENCY_CODEC,
}

OPEN_STATUSES: Final = frozenset({"PENDING_PLACEMENT", "PLACED"})
"""The ``orderStatus`` values of an order that still rests on the exchange."""
_OPEN_SPELLINGS: Final = OPEN_STATUSES | {s.lower() for s in OPEN_STATUSES}

Row = dict[str, Any]


def is_open(row: Mapping[str, Any]) -> bool:
    """Whether an order row rests on the exchange: ``orderStatus`` PENDING_PLACEMENT or
    PLACED, upper or lower case (the spellings the client's decoder reads as those)."""
    return row.get("orderStatus") in _OPEN_SPELLINGS


def _id(payload: Mapping[str, Any], key: str) -> int | None:
    value = payload.get(key, payload.get("id"))
    return value if type(value) is int else None


def _account_key(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    exchange, username = payload.get("exchange"), payload.get("username")
    if type(exchange) is str and type(username) is str:
        return exchange, username
    return None


def _fixture(payload: Mapping[str, Any]) -> str | None:
    value = payload.get("fixtureId")
    return value if type(value) is str else None


_KEYS: Final[dict[str, Callable[[Mapping[str, Any]], Any]]] = {
    "orders": lambda p: _id(p, "orderId"),
    "bets": lambda p: _id(p, "betId"),
    "accounts": _account_key,
    "scores": _fixture,
    "emergency": lambda p: "emergency",
}


def _merge(rows: dict[Any, Row], key: Any, event: str, payload: Mapping[str, Any]) -> None:
    old = rows.get(key)
    if event == "INSERT" or old is None:
        rows[key] = dict(payload)
    else:
        rows[key] = {**old, **payload}


def _day(value: Any) -> date | None:
    try:
        when = parse_timestamp(value)
    except (TypeError, ValueError):
        return None
    return None if when is None else when.date()


def _in_days(row: Mapping[str, Any], field: str, start: date | None, end: date | None) -> bool:
    if start is None and end is None:
        return True
    day = _day(row.get(field))
    if day is None:
        return False
    return (start is None or day >= start) and (end is None or day <= end)


def paginate(rows: list[Row], page: int, page_size: int) -> dict[str, Any]:
    """The REST page ``page`` (1-based) of ``rows``: ``{"data", "total", "page", "pageSize",
    "totalPages"}``; ``totalPages`` is ``ceil(total / page_size)`` (0 when there is nothing);
    a page past the last has no data."""
    if page < 1 or page_size < 1:
        raise ValueError("page and page_size must be >= 1")
    total = len(rows)
    start = (page - 1) * page_size
    return {
        "data": rows[start : start + page_size],
        "total": total,
        "page": page,
        "pageSize": page_size,
        "totalPages": math.ceil(total / page_size),
    }


class _Book:
    """One client's rows."""

    def __init__(self, accounts: Iterable[Mapping[str, Any]] = ()) -> None:
        self.rows: dict[str, dict[Any, Row]] = {"orders": {}, "bets": {}, "accounts": {}}
        for account in accounts:
            key = _account_key(account)
            if key is not None:
                self.rows["accounts"][key] = dict(account)


class Truth:
    """The ground truth (see the module docstring). ``accounts``: client name -> its initial
    account rows (the scenario's, at the start); every client to serve must be named."""

    def __init__(self, accounts: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        self._books = {client: _Book(rows) for client, rows in accounts.items()}
        self._global: dict[str, dict[Any, Row]] = {"scores": {}, "emergency": {}}

    @property
    def clients(self) -> tuple[str, ...]:
        return tuple(self._books)

    # -- changes ----------------------------------------------------------------------------

    def apply(
        self,
        channel: str,
        event: Any,
        payload: Any,
        client: str | None = None,
        *,
        checked: bool = False,
    ) -> bool:
        """Apply one broadcast; whether it changed anything. ``client`` None on a client
        channel: every client. ``checked``: the payload is known to decode (the simulator's
        own burst frames), skip the decoder."""
        key_of = _KEYS.get(channel)
        if key_of is None or event not in ("INSERT", "UPDATE") or type(payload) is not dict:
            return False
        if not checked:
            try:
                _CODECS[channel].structure(payload)
            except UNDECODABLE:
                return False
        key = key_of(payload)
        if key is None:
            return False
        if channel not in CLIENT_CHANNELS:
            _merge(self._global[channel], key, event, payload)
            return True
        if client is None:
            books: Collection[_Book] = self._books.values()
        else:
            books = (self._books.setdefault(client, _Book()),)
        for book in books:
            _merge(book.rows[channel], key, event, payload)
        return True

    def apply_burst(
        self, client: str | None, event: str, template: Mapping[str, Any], ids: Iterable[int]
    ) -> None:
        """Apply the ``orders`` payloads ``template`` with ``orderId`` each of ``ids`` (a
        burst: known to decode), as :meth:`apply` would, only faster."""
        if event not in ("INSERT", "UPDATE"):
            return
        if client is None:
            books: Collection[_Book] = self._books.values()
        else:
            books = (self._books.setdefault(client, _Book()),)
        for book in books:
            rows = book.rows["orders"]
            get = rows.get
            for i in ids:
                new = dict(template, orderId=i)
                old = get(i)
                rows[i] = new if event == "INSERT" or old is None else {**old, **new}

    # -- queries (rows are copies, sorted by their id) --------------------------------------

    def _book(self, client: str) -> _Book:
        return self._books.get(client) or _Book()

    def orders(
        self,
        client: str,
        *,
        fixture_id: str | None = None,
        exchange: str | None = None,
        statuses: Collection[str] | None = None,
        from_date: date | None = None,
        to_date: date | None = None,
        open_only: bool = False,
    ) -> list[Row]:
        """The client's orders by ``orderId``: ``fixtureId`` / ``exchange`` equal to the
        given ones, ``orderStatus`` one of ``statuses``, the day of ``createdAt`` (UTC) from
        ``from_date`` to ``to_date`` inclusive (an order without a readable ``createdAt``
        is left out when a date is given), ``open_only``: see :func:`is_open`."""
        rows = self._book(client).rows["orders"]
        out = [
            dict(row)
            for _, row in sorted(rows.items())
            if (fixture_id is None or row.get("fixtureId") == fixture_id)
            and (exchange is None or row.get("exchange") == exchange)
            and (statuses is None or row.get("orderStatus") in statuses)
            and (not open_only or is_open(row))
            and _in_days(row, "createdAt", from_date, to_date)
        ]
        return out

    def bets(
        self,
        client: str,
        *,
        order_id: int | None = None,
        bookmaker: str | None = None,
        statuses: Collection[str] | None = None,
        from_date: date | None = None,
        to_date: date | None = None,
    ) -> list[Row]:
        """The client's bets by ``betId``, filtered like :meth:`orders` (``betStatus``,
        the day of ``placedAt``)."""
        rows = self._book(client).rows["bets"]
        return [
            dict(row)
            for _, row in sorted(rows.items())
            if (order_id is None or row.get("orderId") == order_id)
            and (bookmaker is None or row.get("bookmaker") == bookmaker)
            and (statuses is None or row.get("betStatus") in statuses)
            and _in_days(row, "placedAt", from_date, to_date)
        ]

    def accounts(self, client: str, *, exchange: str | None = None) -> list[Row]:
        """The client's accounts by ``(exchange, username)``."""
        rows = self._book(client).rows["accounts"]
        return [
            dict(row)
            for key, row in sorted(rows.items())
            if exchange is None or key[0] == exchange
        ]

    def scores(self) -> list[Row]:
        """Every fixture's score, by ``fixtureId``."""
        return [dict(row) for _, row in sorted(self._global["scores"].items())]

    @property
    def emergency(self) -> Row | None:
        """The emergency payload (merged); None until one was broadcast."""
        row = self._global["emergency"].get("emergency")
        return None if row is None else dict(row)

    @property
    def emergency_active(self) -> bool:
        row = self._global["emergency"].get("emergency")
        return row is not None and row.get("emergency") is True

    def view(self, client: str) -> dict[str, Any]:
        """The rows of ``client`` as they are now (the containers copied, the rows shared:
        they are never changed in place), for :func:`snapshot` outside the owner's lock."""
        book = self._book(client)
        return {
            "orders": dict(book.rows["orders"]),
            "bets": dict(book.rows["bets"]),
            "accounts": dict(book.rows["accounts"]),
            "scores": dict(self._global["scores"]),
            "emergency": self._global["emergency"].get("emergency"),
        }

    def snapshot(self, client: str) -> StateSnapshot:
        """The client's state, decoded as a client decodes it (see :func:`snapshot`)."""
        return snapshot(self.view(client))


def snapshot(view: Mapping[str, Any]) -> StateSnapshot:
    """A :meth:`Truth.view` decoded into the client's :class:`~mmws.mm.state.StateSnapshot`
    (``synced=True``): comparable with ``client.state.snapshot()``."""
    orders = {k: ORDER_CODEC.structure(v) for k, v in view["orders"].items()}
    emergency = view["emergency"]
    return StateSnapshot(
        orders=orders,
        open_orders={k: orders[k] for k, v in view["orders"].items() if is_open(v)},
        bets={k: BET_CODEC.structure(v) for k, v in view["bets"].items()},
        accounts={k: ACCOUNT_CODEC.structure(v) for k, v in view["accounts"].items()},
        scores={k: SCORE_CODEC.structure(v) for k, v in view["scores"].items()},
        emergency=None if emergency is None else EMERGENCY_CODEC.structure(emergency),
        synced=True,
    )
