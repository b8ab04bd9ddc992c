"""The MM state cache: your orders, bets, balances, scores and the emergency switch, kept
equal to the server's across reconnects and gaps. Pure: no I/O, no threads, no clock.

:class:`MMState` applies each broadcast (partial UPDATEs merged on top of what is known) and
checks continuity: an UPDATE's ``old`` must match the cached values of those fields. The
MM WebSocket has no sequence numbers and no replay, so this is how a missed broadcast shows
(:class:`~mmws.mm.events.GapDetected`).

A resync (after the first subscription, a reconnect or a gap) goes in three steps, driven
by the client: :meth:`MMState.start_fetch` (under the client's lock) notes the moment and
starts holding every broadcast that arrives from then on; :func:`build_base` (on the resync
thread, no lock) merges the REST answers into the snapshot taken at that moment;
:meth:`MMState.finish` (under the lock, once a ping's pong proved that every broadcast sent
before the REST answers has arrived) re-applies the held broadcasts on top and swaps the
result in. Re-applying is safe because broadcasts carry absolute values, not deltas.

Readers on other threads never lock: every published :class:`StateSnapshot` is immutable
(its maps are :class:`~mmws._pmap.PersistentMap`), and :meth:`MMState.snapshot` returns the
latest one, swapped in whole between two events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import attrs

from mmws._frozen import FrozenMap
from mmws._pmap import EMPTY_MAP, MapWriter, PersistentMap
from mmws.mm.events import (
    AccountEvent,
    BetEvent,
    Broadcast,
    EmergencyEvent,
    EventKind,
    GapDetected,
    OrderEvent,
    Resynced,
    ScoreEvent,
)
from mmws.mm.models import (
    Account,
    Bet,
    BetStatus,
    Emergency,
    Order,
    OrderStatus,
    Score,
    SettlementStatus,
)

if TYPE_CHECKING:
    from mmws.mm.models import TradingStatus

__all__ = ["MMState", "StateSnapshot"]

M = TypeVar("M")

OPEN_STATUSES: Final = frozenset({OrderStatus.PENDING_PLACEMENT, OrderStatus.PLACED})
"""``orderStatus`` values of an order that still rests on the exchange."""

_SETTLED: Final = frozenset(
    {
        SettlementStatus.WON,
        SettlementStatus.LOST,
        SettlementStatus.VOID,
        SettlementStatus.HALF_WON,
        SettlementStatus.HALF_LOST,
    }
)
_BET_FINAL: Final = frozenset({BetStatus.DECLINED, BetStatus.WON, BetStatus.LOST})


@attrs.frozen(slots=True)
class StateSnapshot:
    """One consistent, immutable view of the state: every attribute is from the same moment
    (between two events). ``open_orders`` are the ``orders`` that still rest on the exchange
    (``PENDING_PLACEMENT`` or ``PLACED``, partially matched included). ``synced`` is False from
    a gap or a disconnect until the next successful resync.

    Attributes:
        orders: Every order seen or fetched, by ``order_id``, partial UPDATEs merged in.
        open_orders: The orders still resting on the exchange, by ``order_id``.
        bets: Every hedge bet seen or fetched, by ``bet_id``.
        accounts: Every exchange account, by ``(exchange, username)``.
        scores: The latest score per fixture, by ``fixture_id`` (from broadcasts only).
        emergency: The emergency switch; ``None`` before a broadcast or a resync told it.
        synced: ``True`` when the state is known to equal the server's.
    """

    orders: Mapping[int, Order] = EMPTY_MAP
    open_orders: Mapping[int, Order] = EMPTY_MAP
    bets: Mapping[int, Bet] = EMPTY_MAP
    accounts: Mapping[tuple[str, str], Account] = EMPTY_MAP
    scores: Mapping[str, Score] = EMPTY_MAP
    emergency: Emergency | None = None
    synced: bool = False

    @classmethod
    def of(
        cls,
        orders: Mapping[int, Order],
        bets: Mapping[int, Bet],
        accounts: Mapping[tuple[str, str], Account],
        scores: Mapping[str, Score],
        emergency: Emergency | None,
        synced: bool,
    ) -> StateSnapshot:
        """A snapshot of these entities (``open_orders`` is computed from ``orders``)."""
        return cls(
            PersistentMap(orders),
            PersistentMap({k: o for k, o in orders.items() if _is_open(o)}),
            PersistentMap(bets),
            PersistentMap(accounts),
            PersistentMap(scores),
            emergency,
            synced,
        )


@attrs.frozen(slots=True)
class RestAnswer:
    """What one resync read from the REST API."""

    open_orders: list[Order]
    orders: list[Order]
    bets: list[Bet]
    accounts: list[Account]
    status: TradingStatus


@attrs.frozen(slots=True)
class FetchPlan:
    """Where a resync starts: the state at that moment, and ``today`` (UTC)."""

    generation: int
    reason: str
    snapshot: StateSnapshot
    today: date

    @property
    def from_date(self) -> date:
        """How far back REST is read (see :func:`_from_date`). It looks at every cached
        order, so the resync thread computes it, outside the client's lock."""
        return _from_date(self.snapshot, self.today)


@attrs.define(slots=True)
class Base:
    """The REST answers merged into a fetch's snapshot: writers ready for the held
    broadcasts."""

    orders: MapWriter[int, Order]
    open_orders: MapWriter[int, Order]
    bets: MapWriter[int, Bet]
    accounts: MapWriter[tuple[str, str], Account]
    emergency: Emergency | None
    counts: tuple[int, int, int]
    diffs: list[GapDetected] = attrs.field(factory=list)  # audits: REST vs the cache


# -- merging ----------------------------------------------------------------------------------


def _merge_extra(cur: Mapping[str, Any], new: Mapping[str, Any]) -> Mapping[str, Any]:
    if not new:
        return cur
    if not cur:
        return new
    return FrozenMap({**cur, **new})


def _make_merge(cls: type[M]) -> Callable[[M, M, Mapping[str, Any]], M]:
    """A function ``merge(cached, payload, old)``: the payload's fields on top of the cached
    ones. A field the payload leaves ``None`` keeps its cached value, unless ``old`` names it
    (then the server really set it to null).

    Generated per model, and it fills the new instance's slots directly: the frozen class's
    ``__init__`` would pay for a keyword call and a guarded ``__setattr__`` per field, twice
    the cost on the reader thread. The instance is as frozen as any other."""
    lines = ["def merge(c, n, old):", "    o = new(cls)"]
    namespace: dict[str, Any] = {"cls": cls, "new": object.__new__, "extra": _merge_extra}
    for field in attrs.fields(cls):  # type: ignore[arg-type]
        name = field.name
        namespace[f"set_{name}"] = cls.__dict__[name].__set__
        if name == "extra":
            lines.append("    set_extra(o, extra(c.extra, n.extra))")
        else:
            lines.append(f"    v = n.{name}")
            lines.append(f"    set_{name}(o, v if v is not None or {name!r} in old else c.{name})")
    lines.append("    return o")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<mmws merge {cls.__name__}>", "exec"), namespace)
    merge: Callable[[M, M, Mapping[str, Any]], M] = namespace["merge"]
    return merge


_merge_order = _make_merge(Order)
_merge_bet = _make_merge(Bet)
_merge_account = _make_merge(Account)
_merge_score = _make_merge(Score)
_merge_emergency = _make_merge(Emergency)


def account_key(account: Account) -> tuple[str, str] | None:
    """The key of an account in :attr:`MMState.accounts`: ``(exchange, username)``, or
    ``None`` when it lacks either."""
    if account.exchange is None or account.username is None:
        return None
    return (account.exchange, account.username)


def _field(entity: Any, name: str) -> Any:
    """An entity's value of ``name`` (an attribute, or a key of ``extra``); ``_UNKNOWN``
    when it has neither."""
    value = getattr(entity, name, _UNKNOWN)
    if value is _UNKNOWN:
        value = entity.extra.get(name, _UNKNOWN)
    return value


_UNKNOWN: Final = object()


def _is_open(order: Order) -> bool:
    return order.order_status in OPEN_STATUSES


def _may_change(order: Order) -> bool:
    """Can this order still change on the server (rest, fill, or settle)?"""
    if _is_open(order):
        return True
    matched = order.matched_stake
    return bool(matched) and order.settlement_status not in _SETTLED


def _bet_may_change(bet: Bet) -> bool:
    """A declined bet, or a settled one, is final (a settled bet can keep ``placed``)."""
    return bet.bet_status not in _BET_FINAL and bet.settlement_status not in _SETTLED


# -- the state --------------------------------------------------------------------------------


class MMState:
    """The cached state of one MM stream: ``MMClient(..., state=True).state``.

    Read it from any thread without a lock: :attr:`orders`, :attr:`open_orders`,
    :attr:`bets`, :attr:`accounts` (keyed by ``(exchange, username)``), :attr:`scores` (by
    fixture; the public REST API cannot resync them), :attr:`emergency` and :attr:`synced`
    each read the latest snapshot; :meth:`snapshot` gives all of them from one moment.

    The client applies every broadcast on its reader thread before the event reaches your
    queue, so when you ``get()`` an event, the state already includes it. You can also feed
    one yourself, for example from a recording: ``state.apply(event)`` for each event.

    The methods from :meth:`start_fetch` on are the resync steps the client drives; you need
    them only to resync a state of your own.

    Args:
        strict: Also check the fields an UPDATE carries without naming them in ``old``
            (default ``False``; the client turns it on with ``lines=2`` or more).
        verify: Check continuity and report gaps (default ``True``); off for a state that
            follows a stream someone else checked already, such as a relay's.
    """

    def __init__(self, *, strict: bool = False, verify: bool = True) -> None:
        self.strict = strict
        """Also check the fields an UPDATE carries without naming them in ``old``: they
        must equal the cached values. Off for one connection (a server whose ``old`` leaves
        out a changed field would cause gaps); on with ``lines=2`` or more, where a copy
        from a slower line can come after newer broadcasts and only this shows it."""
        self.verify = verify
        """Check continuity (and report gaps). Off for a state that follows a stream someone
        else checked already, such as a relay's (:class:`mmws.RedisSource`): it may load a
        snapshot slightly ahead of the stream and re-apply broadcasts it holds."""
        self._snap = StateSnapshot()
        self._orders: MapWriter[int, Order] = MapWriter()
        self._open: MapWriter[int, Order] = MapWriter()
        self._bets: MapWriter[int, Bet] = MapWriter()
        self._accounts: MapWriter[tuple[str, str], Account] = MapWriter()
        self._scores: MapWriter[str, Score] = MapWriter()
        self._emergency: Emergency | None = None
        self._synced = False
        self._dirty = False
        self._generation = 0
        self._held: list[Any] | None = None  # broadcasts since a fetch began
        self._auditing = False  # the fetch checks a synced state: it stays synced meanwhile
        self.gaps = 0
        """How many ``GapDetected`` this state reported."""
        self.resyncs = 0
        """How many resyncs completed."""

    def __repr__(self) -> str:
        snap = self._snap
        return (
            f"<MMState orders={len(snap.orders)} open={len(snap.open_orders)} "
            f"bets={len(snap.bets)} accounts={len(snap.accounts)} synced={snap.synced}>"
        )

    # -- reading (any thread) ---------------------------------------------------------------

    def snapshot(self) -> StateSnapshot:
        """Everything, from one moment: an immutable :class:`StateSnapshot`."""
        return self._snap

    @property
    def orders(self) -> Mapping[int, Order]:
        """Every order seen or fetched, by ``order_id``, partial UPDATEs merged in."""
        return self._snap.orders

    @property
    def open_orders(self) -> Mapping[int, Order]:
        """The orders still resting: ``PENDING_PLACEMENT`` or ``PLACED`` (partially matched
        included)."""
        return self._snap.open_orders

    @property
    def bets(self) -> Mapping[int, Bet]:
        """Every hedge bet seen or fetched, by ``bet_id``."""
        return self._snap.bets

    @property
    def accounts(self) -> Mapping[tuple[str, str], Account]:
        """Every exchange account, by ``(exchange, username)``."""
        return self._snap.accounts

    @property
    def scores(self) -> Mapping[str, Score]:
        """The latest score per fixture, from broadcasts only (not resynced)."""
        return self._snap.scores

    @property
    def emergency(self) -> Emergency | None:
        """The emergency switch: the last broadcast, or what a resync read (``None`` before
        either)."""
        return self._snap.emergency

    @property
    def synced(self) -> bool:
        """True when the state is known to equal the server's: False from a gap or a
        disconnect until the next successful resync."""
        return self._snap.synced

    # -- writing (one thread at a time) -----------------------------------------------------

    def apply(self, event: Any) -> GapDetected | None:
        """Apply one event (anything but a broadcast is ignored); return the gap it shows,
        if any. Call :meth:`publish` to make the change visible to readers.

        Args:
            event: Any event; only the five broadcasts (``OrderEvent`` ... ``EmergencyEvent``)
                change the state.

        Returns:
            The ``GapDetected`` the event shows (then :attr:`synced` turns False), or
            ``None``.
        """
        kind = type(event)
        # Continuity is checked only while synced (an unsynced state is known to be behind,
        # and a resync is on its way), and during an audit, which keeps the state synced.
        check = self._synced and (self._held is None or self._auditing) and self.verify
        if kind is OrderEvent:
            gap = self._apply_order(event, check)
        elif kind is BetEvent:
            gap = self._apply_bet(event, check)
        elif kind is AccountEvent:
            gap = self._apply_account(event, check)
        elif kind is ScoreEvent:
            payload = event.payload
            cached = self._scores.get(payload.fixture_id)
            self._scores[payload.fixture_id] = (
                payload if cached is None else _merge_score(cached, payload, event.old)
            )
            self._dirty = True
            return None
        elif kind is EmergencyEvent:
            self._apply_emergency(event)
            if self._held is not None:
                self._held.append(event)
            self._dirty = True
            return None
        else:
            return None
        self._dirty = True
        if self._held is not None:
            self._held.append(event)
        if gap is not None:
            self.gaps += 1
            self._synced = False
        return gap

    def gap_of(self, event: Any) -> GapDetected | None:
        """The gap :meth:`apply` would report for ``event`` now, without applying it: None
        when it follows on from the cache, repeats what the cache holds, carries no
        ``old`` to check (scores, the emergency switch) or continuity is not being checked
        (no resync has completed yet, or one is under way).

        Args:
            event: The event to check, usually a broadcast.
        """
        if not (self._synced and (self._held is None or self._auditing) and self.verify):
            return None
        found = entity_of(event)
        if found is None:
            return None
        channel, key = found
        entities: MapWriter[Any, Any] = (
            self._orders if channel == "orders" else self._bets if channel == "bets"
            else self._accounts
        )  # fmt: skip
        gap = self._entity_gap(channel, key, entities.get(key), event, None)
        return gap if isinstance(gap, GapDetected) else None

    def publish(self) -> None:
        """Make every change applied so far visible: one new snapshot, swapped in whole."""
        if not self._dirty:
            return
        self._dirty = False
        self._snap = StateSnapshot(
            self._orders.publish(),
            self._open.publish(),
            self._bets.publish(),
            self._accounts.publish(),
            self._scores.publish(),
            self._emergency,
            self._synced,
        )

    def load(self, snapshot: StateSnapshot) -> None:
        """Replace everything with ``snapshot`` (for example one a relay wrote) and publish
        it; a resync under way is abandoned.

        Args:
            snapshot: The state to take over, :attr:`synced` included.
        """
        self._generation += 1
        self._held = None
        self._auditing = False
        self._orders = MapWriter(_persistent(snapshot.orders))
        self._open = MapWriter(_persistent(snapshot.open_orders))
        self._bets = MapWriter(_persistent(snapshot.bets))
        self._accounts = MapWriter(_persistent(snapshot.accounts))
        self._scores = MapWriter(_persistent(snapshot.scores))
        self._emergency = snapshot.emergency
        self._synced = snapshot.synced
        self._dirty = True
        self.publish()

    def mark_unsynced(self) -> None:
        """The connection was lost: the state may miss anything until the next resync. An
        unfinished resync is abandoned."""
        self._generation += 1
        self._held = None
        if self._synced:
            self._synced = False
            self._dirty = True
        self.publish()

    def start_fetch(self, reason: str, today: date) -> FetchPlan:
        """A resync reads REST from now on: hold every broadcast until :meth:`finish`.

        ``today`` (the caller's UTC date) bounds the first resync, which has no history to
        start from: it reads orders and bets from the day before. An ``"audit"`` checks a
        synced state against REST: it stays synced (and checked) meanwhile.

        Args:
            reason: Why: ``"connect"``, ``"reconnect"``, ``"gap"`` or ``"audit"``; it becomes
                the ``reason`` of the ``Resynced`` event.
            today: Today's date in UTC.

        Returns:
            The plan of this resync: its ``generation``, ``reason``, the snapshot of this
            moment, and ``from_date``, the first day to read from REST.
        """
        self._generation += 1
        self._held = []
        self._auditing = reason == AUDIT
        if self._synced and not self._auditing:
            self._synced = False
            self._dirty = True
        self.publish()
        snap = self._snap
        return FetchPlan(self._generation, reason, snap, today)

    def abandon(self, generation: int) -> None:
        """The fetch of ``generation`` failed: stop holding.

        Args:
            generation: The ``generation`` of the plan :meth:`start_fetch` returned.
        """
        if generation == self._generation:
            self._held = None

    def current(self, generation: int) -> bool:
        """Is ``generation`` the resync in progress?

        Args:
            generation: The ``generation`` of a plan :meth:`start_fetch` returned.
        """
        return generation == self._generation and self._held is not None

    def finish(self, generation: int, base: Base, reason: str, duration: float) -> list[Any]:
        """Re-apply the held broadcasts on ``base`` and swap the result in; return the events
        to deliver: ``Resynced``, or the ``GapDetected`` of broadcasts that the REST answers
        do not explain (then the state stays unsynced and another resync is needed).

        An audit that found the cache equal to REST returns nothing; one that found entities
        that differ (broadcasts missed with nothing later to reveal it) returns a
        ``GapDetected`` for each, then ``Resynced("audit")``.

        Args:
            generation: The ``generation`` of the plan :meth:`start_fetch` returned; a stale
                one (a newer resync started, or this one was abandoned) changes nothing.
            base: The REST answers merged into the plan's snapshot (``build_base(plan,
                answer)`` in :mod:`mmws.mm.state`).
            reason: The plan's ``reason``, for the ``Resynced`` event.
            duration: How long the resync took, in seconds, for the ``Resynced`` event.
        """
        if not self.current(generation):
            return []
        held = self._held or []
        self._held = None
        audit, self._auditing = self._auditing, False
        self._orders, self._open = base.orders, base.open_orders
        self._bets, self._accounts = base.bets, base.accounts
        self._emergency = base.emergency
        later = _later_values(held)
        gaps: list[Any] = []
        for event in held:
            kind = type(event)
            if kind is not EmergencyEvent:
                _consume(later, event)
            if kind is OrderEvent:
                gap = self._apply_order(event, True, later)
            elif kind is BetEvent:
                gap = self._apply_bet(event, True, later)
            elif kind is AccountEvent:
                gap = self._apply_account(event, True, later)
            else:
                self._apply_emergency(event)
                continue
            if gap is not None:
                gaps.append(gap)
        self._dirty = True
        if gaps:
            self.gaps += len(gaps)
            self._synced = False
            self.publish()
            return gaps
        self._synced = True
        self.resyncs += 1
        self.publish()
        orders, bets, accounts = base.counts
        done = Resynced(reason, orders, bets, accounts, duration)
        if not audit:
            return [done]
        touched = _touched(held)
        missed: list[Any] = [d for d in base.diffs if (d.channel, d.key) not in touched]
        if not missed:
            return []
        self.gaps += len(missed)
        return [*missed, done]

    # -- private ----------------------------------------------------------------------------

    def _apply_emergency(self, event: EmergencyEvent) -> None:
        payload, cached = event.payload, self._emergency
        merged = payload if cached is None else _merge_emergency(cached, payload, event.old)
        self._emergency = merged

    def _apply_order(
        self, event: OrderEvent, check: bool, later: _Later | None = None
    ) -> GapDetected | None:
        key = event.payload.order_id
        applied, gap = self._apply_entity(self._orders, key, _merge_order, event, check, later)
        if applied is not None:
            order = cast(Order, applied)
            if order.order_status in OPEN_STATUSES:
                self._open[key] = order
            else:
                self._open.discard(key)
        return gap

    def _apply_bet(
        self, event: BetEvent, check: bool, later: _Later | None = None
    ) -> GapDetected | None:
        key = event.payload.bet_id
        return self._apply_entity(self._bets, key, _merge_bet, event, check, later)[1]

    def _apply_account(
        self, event: AccountEvent, check: bool, later: _Later | None = None
    ) -> GapDetected | None:
        key = account_key(event.payload)
        if key is None:
            return None  # no identity: nothing to keep it under
        return self._apply_entity(self._accounts, key, _merge_account, event, check, later)[1]

    def _apply_entity(
        self,
        entities: MapWriter[Any, M],
        key: Any,
        merge: Callable[[M, M, Mapping[str, Any]], M],
        event: Broadcast[M],
        check: bool,
        later: _Later | None,
    ) -> tuple[object, GapDetected | None]:
        """Store what ``event`` makes of entity ``key``; return it (None when nothing was
        applied) and the gap it shows. ``check``: the continuity check; ``later``: while
        held broadcasts are re-applied on a REST answer (see :meth:`finish`)."""
        payload, channel = event.payload, event.channel
        cached = entities.get(key)
        if later is not None and cached is not None and event.event == EventKind.INSERT:
            return None, None  # re-applied on REST, which knows it: REST is at or past this
        found = self._entity_gap(channel, key, cached, event, later) if check else None
        if found is STALE:
            return None, None
        if event.event == EventKind.INSERT or cached is None:
            entity = payload
        else:
            entity = merge(cached, payload, event.old)
        entities[key] = entity
        return entity, found if isinstance(found, GapDetected) else None

    def _entity_gap(
        self, channel: str, key: Any, cached: Any, event: Broadcast[Any], later: _Later | None
    ) -> GapDetected | object | None:
        """The continuity check of ``event`` against the ``cached`` entity: a gap,
        :data:`STALE` or None."""
        payload = event.payload
        if event.event == EventKind.INSERT or cached is None:
            if cached is not None or event.event != EventKind.INSERT:
                return _insert_gap(channel, key, cached, payload, event, later)
            return None
        return _update_gap(channel, key, cached, payload, event.old, later, self.strict)


# -- continuity -------------------------------------------------------------------------------

AUDIT: Final = "audit"
"""The reason of a periodic check of a synced state against REST."""


def _touched(held: Iterable[Any]) -> set[tuple[str, Any]]:
    return {(e.channel, _entity_key(e)) for e in held if type(e) is not EmergencyEvent}

_Later = dict[tuple[str, Any, str], deque[Any]]


def entity_of(event: Any) -> tuple[str, Any] | None:
    """``(channel, key)`` of the order, bet or account a broadcast changes; None for
    anything else (and for an account without ``exchange`` and ``username``)."""
    kind = type(event)
    if kind is OrderEvent:
        return "orders", event.payload.order_id
    if kind is BetEvent:
        return "bets", event.payload.bet_id
    if kind is AccountEvent:
        key = account_key(event.payload)
        return None if key is None else ("accounts", key)
    return None


def _entity_key(event: Broadcast[Any]) -> Any:
    payload = event.payload
    if type(payload) is Order:
        return payload.order_id
    if type(payload) is Bet:
        return payload.bet_id
    return account_key(payload)


def _later_values(held: Iterable[Broadcast[Any]]) -> _Later:
    """Per (channel, key, field): the values the held broadcasts set, in order. While they
    are re-applied, :func:`_consume` drops each one's own values first, so what is left are
    the values of the broadcasts *after* it: a REST answer read after some of them may
    already hold any of these."""
    out: _Later = {}
    for event in held:
        if type(event) is EmergencyEvent:
            continue
        key = _entity_key(event)
        payload = event.payload
        for name in attrs.fields_dict(type(payload)):
            value = getattr(payload, name)
            if value is not None:
                slot = (event.channel, key, name)
                values = out.get(slot)
                if values is None:
                    values = out[slot] = deque()
                values.append(value)
    return out


def _consume(later: _Later, event: Broadcast[Any]) -> None:
    key = _entity_key(event)
    payload = event.payload
    for name in attrs.fields_dict(type(payload)):
        if getattr(payload, name) is not None:
            values = later.get((event.channel, key, name))
            if values:
                values.popleft()


def _update_gap(
    channel: str,
    key: Any,
    cached: Any,
    payload: Any,
    old: Mapping[str, Any],
    later: _Later | None,
    strict: bool = False,
) -> GapDetected | object | None:
    """The gap this UPDATE shows; :data:`STALE` when the cache already holds what it
    changes (a repeated broadcast, or a late copy from a slower line: applying it would
    put older values back); None when it follows on."""
    already = bool(old)
    moved = False
    for name, before in old.items():
        value = _field(cached, name)
        if value is _UNKNOWN:
            already = False
            continue
        new = _field(payload, name)
        if value == before:
            already = already and value == new
            continue
        moved = True
        if value == new:
            continue  # this change is already in
        already = False
        if later is not None and value in later.get((channel, key, name), ()):
            continue  # the REST answer was read after a later broadcast
        return GapDetected(channel, key, name, value, before)
    if moved and already:
        return STALE
    if strict:
        for name in attrs.fields_dict(type(payload)):
            new = getattr(payload, name)
            if new is None or name in old or name == "extra":
                continue
            value = getattr(cached, name)
            if value is None or value == new:
                continue
            if later is not None and value in later.get((channel, key, name), ()):
                continue
            return GapDetected(channel, key, name, value, new)
    return None


STALE: Final = object()
"""An UPDATE whose change the cache already holds: nothing to apply."""


def _insert_gap(
    channel: str,
    key: Any,
    cached: Any,
    payload: Any,
    event: Broadcast[Any],
    later: _Later | None,
) -> GapDetected | None:
    if cached is None:
        if event.event == EventKind.INSERT:
            return None
        return GapDetected(channel, key)  # an UPDATE of an entity we do not know
    if cached == payload:
        return None  # the same INSERT again
    for name in attrs.fields_dict(type(payload)):
        if name != "extra" and getattr(cached, name) != getattr(payload, name):
            return GapDetected(channel, key, name, getattr(cached, name), getattr(payload, name))
    return GapDetected(channel, key, "extra", cached.extra, payload.extra)


# -- building the base of a resync --------------------------------------------------------------


def _day(value: datetime | None) -> date | None:
    return value.astimezone(timezone.utc).date() if value is not None else None


def _from_date(snap: StateSnapshot, today: date) -> date:
    """The day before the oldest thing that may have changed since the state was last in
    sync: an open or unsettled order, an unsettled bet, or today (orders created while the
    state was not listening are at least that new)."""
    days = [today]
    for order in snap.orders.values():
        if _may_change(order):
            day = _day(order.created_at)
            if day is not None:
                days.append(day)
    for bet in snap.bets.values():
        if _bet_may_change(bet):
            day = _day(bet.placed_at)
            if day is not None:
                days.append(day)
    return min(days) - timedelta(days=1)


def build_base(plan: FetchPlan, answer: RestAnswer) -> Base:
    """The snapshot of ``plan`` with the REST answers on top (pure; on the resync thread).

    Orders and bets from REST replace the cached ones; cached ones outside the dates REST
    was asked for stay (they cannot have changed, see :func:`_from_date`); a cached open
    order REST knows nothing about is dropped. Accounts are replaced as a whole. The
    emergency switch is kept when REST agrees with it, else rebuilt from REST."""
    snap = plan.snapshot
    orders: MapWriter[int, Order] = MapWriter(_persistent(snap.orders))
    open_orders: MapWriter[int, Order] = MapWriter()
    fetched: set[int] = set()
    for order in (*answer.orders, *answer.open_orders):
        orders[order.order_id] = order
        fetched.add(order.order_id)
    for key, order in list(orders.items()):
        if key not in fetched and _is_open(order):
            orders.discard(key)  # rests in our cache only: the server does not know it
        elif _is_open(order):
            open_orders[key] = order
    bets: MapWriter[int, Bet] = MapWriter(_persistent(snap.bets))
    for bet in answer.bets:
        bets[bet.bet_id] = bet
    accounts: MapWriter[tuple[str, str], Account] = MapWriter()
    for account in answer.accounts:
        identity = account_key(account)
        if identity is not None:
            accounts[identity] = account
    active = bool(answer.status.emergency_active)
    cached = snap.emergency
    emergency: Emergency | None
    if cached is not None and bool(cached.emergency) == active:
        emergency = cached
    elif cached is None and not active:
        emergency = None
    else:
        emergency = Emergency(emergency=active, reason=answer.status.system_reason)
    counts = (len(fetched), len(answer.bets), len(answer.accounts))
    base = Base(orders, open_orders, bets, accounts, emergency, counts)
    if plan.reason == AUDIT:
        base.diffs = [
            *_diff("orders", snap.orders, orders),
            *_diff("bets", snap.bets, bets),
            *_diff("accounts", snap.accounts, accounts),
        ]
    return base


def _diff(channel: str, cached: Mapping[Any, Any], fresh: MapWriter[Any, Any]) -> list[Any]:
    """A ``GapDetected`` per entity that differs between the cache and REST."""
    out: list[Any] = []
    for key, now in fresh.items():
        before = cached.get(key)
        if before is None:
            out.append(GapDetected(channel, key))
        elif before != now:
            for name in attrs.fields_dict(type(now)):
                if getattr(before, name) != getattr(now, name):
                    out.append(
                        GapDetected(channel, key, name, getattr(before, name), getattr(now, name))
                    )
                    break
    for key in cached:
        if key not in fresh:
            out.append(GapDetected(channel, key, None, cached[key], None))
    return out


def _persistent(mapping: Mapping[Any, Any]) -> PersistentMap[Any, Any]:
    return mapping if isinstance(mapping, PersistentMap) else PersistentMap(mapping)
