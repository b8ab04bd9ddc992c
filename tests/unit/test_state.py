"""The state cache's core (mmws.mm.state), pure: scenario broadcasts decoded by the real
protocol core, checked against the simulator's ground truth (an independent merge of the
wire dicts), no sockets and no clock."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmws._frozen import FrozenMap
from mmws._pmap import MapWriter, PersistentMap
from mmws.mm.events import BetEvent, GapDetected, OrderEvent, Resynced
from mmws.mm.models import Account, Bet, Emergency, Order, OrderStatus, TradingStatus
from mmws.mm.protocol import MMProtocol
from mmws.mm.state import MMState, RestAnswer, StateSnapshot, build_base
from mmws.sim._truth import Truth
from mmws.sim.actions import encode
from mmws.sim.scenario import Scenario, ScenarioEvent

KEY = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
CLIENT = "demo"
TODAY = date(2026, 2, 15)
DATA = ("orders", "bets", "accounts")


def decoder() -> MMProtocol:
    proto = MMProtocol()
    proto.subscribe(KEY, ["orders", "bets", "accounts", "scores", "emergency"])
    proto.receive_text('{"type": "subscribed", "subscriptionId": 1}', 0.0)
    proto.events_received()
    return proto


class World:
    """A scenario, its decoded events and the ground truth after each of them."""

    def __init__(self, seed: int, count: int) -> None:
        scenario = Scenario(seed, [CLIENT])
        self.initial_accounts = scenario.accounts(CLIENT)
        self.raw: list[ScenarioEvent] = scenario.take(count)
        proto = decoder()
        self.events: list[Any] = []
        for item in self.raw:
            proto.receive_text(encode(item.frame()), 0.0)
            (event,) = proto.events_received()
            self.events.append(event)

    def truth(self, upto: int) -> Truth:
        truth = Truth({CLIENT: self.initial_accounts})
        for item in self.raw[:upto]:
            truth.apply(item.channel, item.event, copy.deepcopy(item.payload), item.client)
        return truth

    def answer(self, upto: int) -> RestAnswer:
        snap = self.truth(upto).snapshot(CLIENT)
        emergency = snap.emergency
        active = bool(emergency.emergency) if emergency is not None else False
        return RestAnswer(
            open_orders=list(snap.open_orders.values()),
            orders=list(snap.orders.values()),
            bets=list(snap.bets.values()),
            accounts=list(snap.accounts.values()),
            status=TradingStatus(
                emergency_active=active, system_reason=emergency.reason if emergency else None
            ),
        )


def resync(state: MMState, world: World, upto: int, held: Sequence[Any] = ()) -> list[Any]:
    """A whole resync: fetch starts, ``held`` arrive during it, REST reads the truth after
    ``upto`` events, the barrier passes."""
    plan = state.start_fetch("gap", TODAY)
    for event in held:
        assert state.apply(event) is None  # no live checks while a resync is in flight
    base = build_base(plan, world.answer(upto))
    out = state.finish(plan.generation, base, "gap", 0.0)
    state.publish()
    return out


def same(snap: StateSnapshot, truth: StateSnapshot) -> None:
    assert dict(snap.orders) == dict(truth.orders)
    assert dict(snap.open_orders) == dict(truth.open_orders)
    assert dict(snap.bets) == dict(truth.bets)
    assert dict(snap.accounts) == dict(truth.accounts)
    flag = snap.emergency.emergency if snap.emergency else False
    assert flag == (truth.emergency.emergency if truth.emergency else False)


_WORLDS: dict[tuple[int, int], World] = {}


def world(seed: int, count: int) -> World:
    key = (seed, count)
    if key not in _WORLDS:
        _WORLDS[key] = World(seed, count)
    return _WORLDS[key]


# -- a fault-free stream ------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_a_fault_free_stream_of_100k_events_shows_no_gap_and_equals_the_truth(
    strict: bool,
) -> None:
    w = world(3, 100_000)
    state = MMState(strict=strict)
    assert resync(state, w, 0) == [Resynced("gap", 0, 0, 2, 0.0)]
    gaps = [g for g in map(state.apply, w.events) if g is not None]
    state.publish()
    assert gaps == []
    assert state.synced
    same(state.snapshot(), w.truth(len(w.events)).snapshot(CLIENT))
    assert len(state.orders) > 5_000 and state.open_orders  # the run had substance


def test_scores_and_emergency_follow_the_last_broadcast() -> None:
    w = world(1, 3_000)
    state = MMState()
    for event in w.events:
        state.apply(event)
    state.publish()
    truth = w.truth(len(w.events)).snapshot(CLIENT)
    assert dict(state.scores) == dict(truth.scores) and state.scores
    assert state.emergency == truth.emergency is not None


# -- skipped and repeated broadcasts ----------------------------------------------------------


def _changed_fields(before: dict[str, Any] | None, payload: dict[str, Any]) -> set[str]:
    if before is None:
        return {"<entity>"}
    return {k for k, v in payload.items() if before.get(k) != v}


def _identity(item: ScenarioEvent) -> Any:
    p = item.payload
    if item.channel == "orders":
        return p["orderId"]
    if item.channel == "bets":
        return p["betId"]
    return (p["exchange"], p["username"])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 50),
    skips=st.sets(st.integers(0, 1_499), max_size=12),
)
def test_every_revealed_skip_is_exactly_one_gap_and_a_resync_repairs_it(
    seed: int, skips: set[int]
) -> None:
    """Each skipped broadcast whose change a later broadcast's ``old`` contradicts (or that
    was the INSERT of an entity a later UPDATE names) gives exactly one GapDetected, at
    that later broadcast, unless a fuller payload in between carried the missed values;
    nothing else does. After the resync that follows, the state
    equals the truth."""
    w = world(seed, 1_500)
    state = MMState()
    resync(state, w, 0)
    rows: dict[tuple[str, Any], dict[str, Any]] = {
        ("accounts", (a["exchange"], a["username"])): dict(a) for a in w.initial_accounts
    }
    pending: dict[tuple[str, Any], set[str]] = {}  # skipped changes not revealed yet
    expected: list[int] = []
    got: list[int] = []
    for index, (item, event) in enumerate(zip(w.raw, w.events, strict=True)):
        entity = (item.channel, _identity(item)) if item.channel in DATA else None
        if entity is not None:
            before = rows.get(entity)
            if index in skips:
                changed = _changed_fields(before, item.payload)
                if changed:
                    pending.setdefault(entity, set()).update(changed)
            elif entity in pending:
                missed = pending[entity]
                wire_old = set(item.old or ())
                if item.event == "UPDATE" and ("<entity>" in missed or wire_old & missed):
                    expected.append(index)
                    del pending[entity]
                else:
                    missed -= set(item.payload)  # a fuller payload heals what it carries
                    if item.event == "INSERT":
                        missed.discard("<entity>")
            rows[entity] = {**(before or {}), **item.payload}
        if index in skips:
            continue
        gap = state.apply(event)
        if gap is not None:
            got.append(index)
            assert gap.channel == item.channel and gap.key == _identity(item)
            # the client resyncs now: REST tells what was missed, nothing stays pending
            assert resync(state, w, index + 1)[0] == Resynced("gap", *_counts(w, index + 1), 0.0)
            pending.clear()
            assert state.synced
    assert got == expected
    resync(state, w, len(w.raw))
    same(state.snapshot(), w.truth(len(w.raw)).snapshot(CLIENT))


def _counts(w: World, upto: int) -> tuple[int, int, int]:
    snap = w.truth(upto).snapshot(CLIENT)
    return len(snap.orders), len(snap.bets), len(snap.accounts)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 50), repeats=st.sets(st.integers(0, 799), max_size=40))
def test_a_repeated_broadcast_is_no_gap(seed: int, repeats: set[int]) -> None:
    w = world(seed, 800)
    state = MMState()
    resync(state, w, 0)
    for index, event in enumerate(w.events):
        assert state.apply(event) is None
        if index in repeats:
            assert state.apply(event) is None
    state.publish()
    same(state.snapshot(), w.truth(len(w.events)).snapshot(CLIENT))


def test_an_insert_repeating_a_known_order_with_other_content_is_a_gap() -> None:
    state = MMState()
    w = world(0, 10)
    resync(state, w, 0)
    first = OrderEvent("INSERT", Order(7, order_status=OrderStatus.PLACED, order_stake=5.0))
    again = OrderEvent("INSERT", Order(7, order_status=OrderStatus.PLACED, order_stake=9.0))
    assert state.apply(first) is None
    assert state.apply(first) is None
    assert state.apply(again) == GapDetected("orders", 7, "order_stake", 5.0, 9.0)
    state.publish()
    assert state.orders[7].order_stake == 9.0 and not state.synced


def test_an_update_of_an_unknown_order_is_a_gap_and_still_applied() -> None:
    state = MMState()
    resync(state, world(0, 10), 0)
    event = OrderEvent("UPDATE", Order(9, matched_stake=3.0), FrozenMap({"matched_stake": 1.0}))
    assert state.apply(event) == GapDetected("orders", 9)
    state.publish()
    assert state.orders[9].matched_stake == 3.0
    assert state.gaps == 1


def test_old_values_compare_as_decoded_values() -> None:
    """0 and 0.0, an enum and its wire string, equal timestamps: no false gap."""
    state = MMState()
    resync(state, world(0, 10), 0)
    at = datetime(2026, 2, 15, 10, 0, tzinfo=timezone.utc)
    placed = Order(1, order_status="PLACED", matched_stake=0, matched_at=at)
    state.apply(OrderEvent("INSERT", placed))
    update = OrderEvent(
        "UPDATE",
        Order(1, order_status=OrderStatus.FILLED, matched_stake=100.0, matched_at=at),
        FrozenMap({"order_status": OrderStatus.PLACED, "matched_stake": 0.0, "matched_at": at}),
    )
    assert state.apply(update) is None


# -- merging partial UPDATEs --------------------------------------------------------------------


def test_a_partial_update_keeps_what_it_does_not_name_and_old_can_clear_a_field() -> None:
    state = MMState()
    full = Order(
        5,
        fixture_id="f",
        order_status=OrderStatus.PLACED,
        matched_stake=0.0,
        exchange="kalshi",
        extra=FrozenMap({"a": 1}),
    )
    state.apply(OrderEvent("INSERT", full))
    partial = Order(5, matched_stake=40.0, extra=FrozenMap({"b": 2}))
    state.apply(
        OrderEvent("UPDATE", partial, FrozenMap({"matched_stake": 0.0, "exchange": "kalshi"}))
    )
    state.publish()
    merged = state.orders[5]
    assert merged.fixture_id == "f" and merged.order_status is OrderStatus.PLACED
    assert merged.matched_stake == 40.0
    assert merged.exchange is None  # named in old, null in the payload: cleared
    assert merged.extra == {"a": 1, "b": 2}
    assert state.open_orders[5] is merged
    with pytest.raises(AttributeError):
        merged.matched_stake = 1.0  # type: ignore[misc]
    assert hash(merged) == hash(
        Order(5, fixture_id="f", order_status="PLACED", matched_stake=40.0, extra=merged.extra)
    )


def test_an_order_leaves_open_orders_when_it_fills() -> None:
    state = MMState()
    state.apply(OrderEvent("INSERT", Order(1, order_status=OrderStatus.PENDING_PLACEMENT)))
    state.publish()
    assert list(state.open_orders) == [1]
    state.apply(OrderEvent("UPDATE", Order(1, order_status=OrderStatus.FILLED)))
    state.publish()
    assert list(state.open_orders) == [] and list(state.orders) == [1]


# -- snapshots -------------------------------------------------------------------------------------


def test_a_snapshot_never_changes_after_it_was_taken() -> None:
    w = world(2, 2_000)
    state = MMState()
    for event in w.events[:1_000]:
        state.apply(event)
    state.publish()
    snap = state.snapshot()
    frozen = (dict(snap.orders), dict(snap.bets), dict(snap.accounts), dict(snap.open_orders))
    for event in w.events[1_000:]:
        state.apply(event)
    state.publish()
    assert (dict(snap.orders), dict(snap.bets), dict(snap.accounts), dict(snap.open_orders)) == (
        frozen
    )
    assert state.snapshot() is not snap and len(state.orders) > len(snap.orders)


def test_nothing_is_visible_before_publish() -> None:
    state = MMState()
    before = state.snapshot()
    state.apply(OrderEvent("INSERT", Order(1, order_status=OrderStatus.PLACED)))
    assert state.snapshot() is before and not state.orders
    state.publish()
    assert 1 in state.orders and 1 in state.snapshot().open_orders


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set", "del", "publish"]), st.integers(-300, 300), st.integers()
        ),
        max_size=300,
    )
)
def test_persistent_map_behaves_like_a_dict_and_published_versions_never_change(
    ops: list[tuple[str, int, int]],
) -> None:
    writer: MapWriter[int, int] = MapWriter()
    model: dict[int, int] = {}
    versions: list[tuple[PersistentMap[int, int], dict[int, int]]] = []
    for op, key, value in ops:
        if op == "set":
            writer[key] = value
            model[key] = value
        elif op == "del":
            writer.discard(key)
            model.pop(key, None)
        else:
            versions.append((writer.publish(), dict(model)))
        assert len(writer) == len(model)
    versions.append((writer.publish(), dict(model)))
    for published, expected in versions:
        assert dict(published.items()) == expected
        assert published == expected and len(published) == len(expected)
        assert all(k in published and published[k] == v for k, v in expected.items())
        assert published.get(10_000) is None and 10_000 not in published
    assert PersistentMap(model) == model
    with pytest.raises(AttributeError):
        versions[-1][0]._len = 0  # type: ignore[misc]


# -- resyncs ---------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 50),
    start=st.integers(0, 600),
    read=st.integers(0, 100),
    barrier=st.integers(0, 100),
)
def test_a_resync_during_live_traffic_equals_the_truth_wherever_rest_reads(
    seed: int, start: int, read: int, barrier: int
) -> None:
    """Broadcasts keep coming while REST is read: whether the REST answer is older or newer
    than some of them, re-applying the held ones on top gives exactly the truth at the
    barrier, with no false gap."""
    w = world(seed, 800)
    end = min(len(w.events), start + read + barrier)
    upto = min(start + read, end)
    state = MMState()
    for event in w.events[:start]:
        state.apply(event)  # unsynced: a stale view, as after a reconnect
    out = resync(state, w, upto, held=w.events[start:end])
    assert [type(e) for e in out] == [Resynced]
    assert state.synced
    same(state.snapshot(), w.truth(end).snapshot(CLIENT))
    for event in w.events[end:]:
        assert state.apply(event) is None
    state.publish()
    same(state.snapshot(), w.truth(len(w.events)).snapshot(CLIENT))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 50), start=st.integers(0, 500), skip=st.integers(1, 60))
def test_a_broadcast_lost_after_rest_was_read_is_caught_at_the_barrier(
    seed: int, start: int, skip: int
) -> None:
    """REST read at the fetch's start; a broadcast lost after it: either a later held
    broadcast contradicts the answer (GapDetected, still unsynced), or the loss changed
    nothing a held broadcast names; after one more resync the state is the truth."""
    w = world(seed, 700)
    end = min(len(w.events), start + 80)
    lost = min(start + skip, end - 1)
    held = [e for i, e in enumerate(w.events[start:end], start) if i != lost]
    state = MMState()
    resync(state, w, 0)
    for event in w.events[:start]:
        state.apply(event)
    out = resync(state, w, start, held=held)
    if out and type(out[0]) is GapDetected:
        assert not state.synced
        assert all(type(e) is GapDetected for e in out)
    resync(state, w, end)
    assert state.synced
    same(state.snapshot(), w.truth(end).snapshot(CLIENT))


def test_a_resync_abandoned_by_a_disconnect_is_not_finished() -> None:
    w = world(0, 50)
    state = MMState()
    plan = state.start_fetch("connect", TODAY)
    base = build_base(plan, w.answer(0))
    state.mark_unsynced()
    assert state.finish(plan.generation, base, "connect", 0.0) == []
    assert not state.synced and not state.current(plan.generation)


def test_the_emergency_switch_comes_from_rest_when_it_disagrees() -> None:
    state = MMState()
    on = Emergency(emergency=True, reason="Manual trigger")
    plan = state.start_fetch("connect", TODAY)
    answer = RestAnswer([], [], [], [], TradingStatus(emergency_active=True, system_reason="x"))
    state.finish(plan.generation, build_base(plan, answer), "connect", 0.0)
    assert state.emergency == Emergency(emergency=True, reason="x")
    from mmws.mm.events import EmergencyEvent

    state.apply(EmergencyEvent("UPDATE", on))
    state.publish()
    plan = state.start_fetch("reconnect", TODAY)
    state.finish(plan.generation, build_base(plan, answer), "reconnect", 0.0)
    assert state.emergency == on  # REST agrees: the broadcast's details stay
    off = RestAnswer([], [], [], [], TradingStatus(emergency_active=False))
    plan = state.start_fetch("reconnect", TODAY)
    state.finish(plan.generation, build_base(plan, off), "reconnect", 0.0)
    assert state.emergency == Emergency(emergency=False)


def test_accounts_are_replaced_as_a_whole_and_a_cached_open_order_rest_denies_is_dropped() -> None:
    state = MMState()
    old_account = Account(exchange="kalshi", username="u1", balance=5.0)
    state.apply(OrderEvent("INSERT", Order(1, order_status=OrderStatus.PLACED)))
    state.apply(OrderEvent("INSERT", Order(2, order_status=OrderStatus.FILLED)))
    from mmws.mm.events import AccountEvent

    state.apply(AccountEvent("UPDATE", old_account))
    plan = state.start_fetch("reconnect", TODAY)
    fresh = Account(exchange="novig", username="u2", balance=7.0)
    answer = RestAnswer([], [], [], [fresh], TradingStatus(emergency_active=False))
    assert state.finish(plan.generation, build_base(plan, answer), "reconnect", 0.0) == [
        Resynced("reconnect", 0, 0, 1, 0.0)
    ]
    assert dict(state.accounts) == {("novig", "u2"): fresh}
    assert list(state.orders) == [2] and not state.open_orders


@pytest.mark.parametrize(
    ("orders", "expected"),
    [
        ([], TODAY - timedelta(days=1)),
        ([Order(1, order_status="PLACED", created_at=datetime(2026, 2, 10, tzinfo=timezone.utc))],
         date(2026, 2, 9)),
        ([Order(1, order_status="FILLED", matched_stake=5.0, settlement_status="UNDECIDED",
                created_at=datetime(2026, 1, 31, 23, tzinfo=timezone.utc))],
         date(2026, 1, 30)),
        ([Order(1, order_status="FILLED", matched_stake=5.0, settlement_status="WON",
                created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))],
         TODAY - timedelta(days=1)),
    ],
)  # fmt: skip
def test_rest_is_read_from_the_day_before_the_oldest_thing_that_may_have_changed(
    orders: Iterable[Order], expected: date
) -> None:
    state = MMState()
    for order in orders:
        state.apply(OrderEvent("INSERT", order))
    assert state.start_fetch("gap", TODAY).from_date == expected


@pytest.mark.parametrize(
    ("status", "settlement", "expected"),
    [
        ("placed", "UNDECIDED", date(2026, 2, 4)),  # may still settle
        ("pending", None, date(2026, 2, 4)),
        ("placed", "WON", TODAY - timedelta(days=1)),  # settled: final
        ("declined", "UNDECIDED", TODAY - timedelta(days=1)),  # declined: final
        ("lost", None, TODAY - timedelta(days=1)),  # the old docs' final statuses
    ],
)
def test_only_bets_that_may_still_change_move_the_start_back(
    status: str, settlement: str | None, expected: date
) -> None:
    state = MMState()
    placed = datetime(2026, 2, 5, tzinfo=timezone.utc)
    bet = Bet(1, bet_status=status, settlement_status=settlement, placed_at=placed)
    state.apply(BetEvent("INSERT", bet))
    assert state.start_fetch("gap", TODAY).from_date == expected


@settings(max_examples=int(os.environ.get('MMWS_LATE_EXAMPLES', '80')), deadline=None)
@given(
    seed=st.integers(0, 50),
    start=st.integers(0, 400),
    read=st.integers(0, 60),
    moved=st.integers(0, 59),
    shift=st.integers(1, 30),
    during_resync=st.booleans(),
)
def test_a_broadcast_delivered_late_is_never_silently_wrong(
    seed: int, start: int, read: int, moved: int, shift: int, during_resync: bool
) -> None:
    """With several lines, a copy one line skipped comes from a slower line, after newer
    broadcasts: the stream is out of the server's order. The state must then report a gap
    (and resync), or be right anyway; never be wrong and call itself synced."""
    w = world(seed, 600)
    end = min(len(w.events), start + 60)
    window = list(w.events[start:end])
    if window:
        late = window.pop(min(moved, len(window) - 1))
        window.insert(min(len(window), moved + shift), late)
    state = MMState(strict=True)
    resync(state, w, 0)
    for event in w.events[:start]:
        state.apply(event)
    if during_resync:
        plan = state.start_fetch("gap", TODAY)
        for event in window:
            state.apply(event)
        base = build_base(plan, w.answer(min(end, start + read)))
        state.finish(plan.generation, base, "gap", 0.0)
    else:
        for event in window:
            state.apply(event)
    for event in w.events[end:]:
        state.apply(event)
    state.publish()
    if state.gaps == 0:
        assert state.synced
        same(state.snapshot(), w.truth(len(w.events)).snapshot(CLIENT))


# -- gap_of: the check without the change (hot standby holds back on it) -----------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 50),
    skips=st.sets(st.integers(0, 599), max_size=40),
    repeats=st.sets(st.integers(0, 599), max_size=20),
    strict=st.booleans(),
)
def test_gap_of_predicts_apply_exactly_and_changes_nothing(
    seed: int, skips: set[int], repeats: set[int], strict: bool
) -> None:
    w = world(seed, 600)
    state = MMState(strict=strict)
    resync(state, w, 0)
    reported = 0
    for index, event in enumerate(w.events):
        if index in skips:
            continue
        for _ in range(2 if index in repeats else 1):
            state.publish()
            before = state.snapshot()
            predicted = state.gap_of(event)
            state.publish()
            assert state.snapshot() is before  # nothing was changed
            assert state.apply(event) == predicted
            if predicted is not None:
                reported += 1
                assert state.gap_of(event) is None  # unsynced: nothing is checked
                resync(state, w, index + 1)
    assert state.gaps == reported


def test_gap_of_checks_only_orders_bets_and_accounts_and_only_while_synced() -> None:
    state = MMState()
    unknown = OrderEvent("UPDATE", Order(9, matched_stake=3.0), FrozenMap({"matched_stake": 1.0}))
    assert state.gap_of(unknown) is None  # never synced: nothing to compare with
    w = world(0, 200)
    resync(state, w, 0)
    assert state.gap_of(unknown) == GapDetected("orders", 9)
    others = [e for e in w.events if type(e).__name__ in ("ScoreEvent", "EmergencyEvent")]
    assert others and all(state.gap_of(e) is None for e in others)
