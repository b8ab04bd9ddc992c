"""The simulator's ground truth (mmws.sim._truth), pure: merges, client routing, REST
filters and paging, the decoded snapshot, and a property against a plain replay."""

from __future__ import annotations

import copy
from datetime import date, datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmws.mm.models import Account, Bet, Emergency, Order, OrderStatus, Score
from mmws.mm.state import StateSnapshot
from mmws.sim import Scenario
from mmws.sim._truth import Truth, is_open, paginate

ACCOUNT_A = {"exchange": "kalshi", "username": "0xaa", "client": "a", "balance": 100.0}
ACCOUNT_B = {"exchange": "betfair", "username": "0xbb", "client": "b", "balance": 200.0}


def truth() -> Truth:
    return Truth({"a": [ACCOUNT_A], "b": [ACCOUNT_B]})


def order(order_id: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "orderId": order_id,
        "fixtureId": "id1",
        "exchange": "kalshi",
        "orderStatus": "PLACED",
        "matchedStake": 0.0,
        "createdAt": "2026-02-15T10:00:00Z",
    }
    row.update(fields)
    return row


def bet(bet_id: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "betId": bet_id,
        "orderId": 1,
        "bookmaker": "vertex",
        "betStatus": "placed",
        "placedAt": "2026-02-15T10:00:00Z",
    }
    row.update(fields)
    return row


def ids(rows: list[dict[str, Any]], key: str = "orderId") -> list[int]:
    return [row[key] for row in rows]


# -- merges ---------------------------------------------------------------------------------


def test_insert_stores_a_copy_of_the_payload() -> None:
    t = truth()
    payload = order(1)
    assert t.apply("orders", "INSERT", payload, "a")
    payload["orderStatus"] = "FILLED"  # the caller's dict is not the stored row
    assert t.orders("a") == [order(1)]


def test_insert_replaces_the_whole_row() -> None:
    t = truth()
    t.apply("orders", "INSERT", order(1, side="buy"), "a")
    t.apply("orders", "INSERT", {"orderId": 1, "orderStatus": "FILLED"}, "a")
    assert t.orders("a") == [{"orderId": 1, "orderStatus": "FILLED"}]


def test_update_merges_every_key_including_explicit_nulls() -> None:
    t = truth()
    t.apply("orders", "INSERT", order(1, exchangeOrderId="0x1"), "a")
    change = {"orderId": 1, "orderStatus": "FILLED", "exchangeOrderId": None}
    t.apply("orders", "UPDATE", change, "a")
    assert t.orders("a") == [order(1, orderStatus="FILLED", exchangeOrderId=None)]


def test_update_of_an_unknown_row_creates_it_from_the_payload() -> None:
    t = truth()
    t.apply("orders", "UPDATE", {"orderId": 7, "orderStatus": "FILLED"}, "a")
    assert t.orders("a") == [{"orderId": 7, "orderStatus": "FILLED"}]


def test_rows_handed_out_do_not_change_afterwards() -> None:
    t = truth()
    t.apply("orders", "INSERT", order(1), "a")
    before = t.orders("a")
    view = t.view("a")
    t.apply("orders", "UPDATE", {"orderId": 1, "orderStatus": "FILLED"}, "a")
    assert before == [order(1)]
    assert view["orders"][1] == order(1)
    assert t.orders("a")[0]["orderStatus"] == "FILLED"


@pytest.mark.parametrize(
    ("channel", "event", "payload"),
    [
        ("orders", "DELETE", order(1)),  # an event kind the truth does not know
        ("orders", "INSERT", {"orderStatus": "PLACED"}),  # no orderId
        ("orders", "INSERT", {"orderId": "1"}),  # the decoder wants an integer
        ("orders", "INSERT", order(1, orderStake="lots")),  # a wrong type elsewhere
        ("orders", "INSERT", ["not", "an", "object"]),
        ("nonsense", "INSERT", order(1)),
        ("accounts", "UPDATE", {"exchange": "kalshi", "balance": 1.0}),  # no username
        ("scores", "UPDATE", {"live": True}),  # no fixtureId
    ],
)
def test_what_a_client_cannot_decode_changes_nothing(
    channel: str, event: str, payload: Any
) -> None:
    t = truth()
    before = t.snapshot("a")
    assert not t.apply(channel, event, payload, "a")
    assert t.snapshot("a") == before


def test_the_old_id_alias_is_an_order_id() -> None:
    t = truth()
    assert t.apply("orders", "INSERT", {"id": 5, "orderStatus": "PLACED"}, "a")
    assert t.snapshot("a").orders[5].order_id == 5


# -- routing --------------------------------------------------------------------------------


def test_client_channels_apply_to_the_owning_client_only() -> None:
    t = truth()
    t.apply("orders", "INSERT", order(1), "a")
    t.apply("bets", "INSERT", bet(9), "b")
    assert ids(t.orders("a")) == [1] and t.orders("b") == []
    assert t.bets("a") == [] and ids(t.bets("b"), "betId") == [9]


def test_a_broadcast_without_client_applies_to_every_client() -> None:
    t = truth()
    t.apply("orders", "INSERT", order(1), None)
    t.apply("accounts", "UPDATE", {"exchange": "x", "username": "u", "balance": 1.0}, None)
    for client in ("a", "b"):
        assert ids(t.orders(client)) == [1]
        assert {"exchange": "x", "username": "u", "balance": 1.0} in t.accounts(client)


def test_an_unknown_client_gets_its_own_book() -> None:
    t = truth()
    t.apply("orders", "INSERT", order(1), "c")
    assert ids(t.orders("c")) == [1]
    assert t.orders("a") == [] and t.orders("nobody") == []


def test_scores_and_emergency_are_global_and_merged() -> None:
    t = truth()
    assert t.emergency is None and not t.emergency_active
    t.apply("scores", "UPDATE", {"fixtureId": "f1", "currentMinute": 3, "live": True}, "a")
    t.apply("scores", "UPDATE", {"fixtureId": "f1", "currentMinute": 4}, None)
    t.apply("emergency", "UPDATE", {"emergency": True, "reason": "Manual trigger"}, None)
    t.apply("emergency", "UPDATE", {"triggeredAt": "2026-02-15T10:00:00Z"}, None)
    assert t.scores() == [{"fixtureId": "f1", "currentMinute": 4, "live": True}]
    assert t.emergency == {
        "emergency": True,
        "reason": "Manual trigger",
        "triggeredAt": "2026-02-15T10:00:00Z",
    }
    assert t.emergency_active
    snap = t.snapshot("b")
    assert snap.scores == {"f1": Score("f1", live=True, current_minute=4)}
    assert snap.emergency == Emergency(
        True, "Manual trigger", datetime(2026, 2, 15, 10, tzinfo=timezone.utc)
    )
    t.apply("emergency", "UPDATE", {"emergency": False}, None)
    assert not t.emergency_active


def test_accounts_start_from_the_initial_rows_and_merge_by_exchange_and_username() -> None:
    t = truth()
    assert t.accounts("a") == [ACCOUNT_A]
    t.apply("accounts", "UPDATE", {"exchange": "kalshi", "username": "0xaa", "balance": 5.0}, "a")
    assert t.accounts("a") == [dict(ACCOUNT_A, balance=5.0)]
    assert t.accounts("b") == [ACCOUNT_B]


# -- snapshot -------------------------------------------------------------------------------


def test_snapshot_decodes_with_the_client_models() -> None:
    t = truth()
    t.apply("orders", "INSERT", order(1), "a")
    t.apply("orders", "INSERT", order(2, orderStatus="PENDING_PLACEMENT"), "a")
    t.apply("orders", "INSERT", order(3, orderStatus="FILLED"), "a")
    t.apply("bets", "INSERT", bet(9, settlementStatus="undecided"), "a")
    snap = t.snapshot("a")
    assert isinstance(snap, StateSnapshot) and snap.synced
    assert set(snap.orders) == {1, 2, 3} and set(snap.open_orders) == {1, 2}
    assert isinstance(snap.orders[1], Order) and snap.orders[1].order_status is OrderStatus.PLACED
    assert snap.open_orders[2] is snap.orders[2]
    assert isinstance(snap.bets[9], Bet)
    assert snap.accounts == {("kalshi", "0xaa"): Account("kalshi", "0xaa", "a", balance=100.0)}
    assert snap.emergency is None and dict(snap.scores) == {}
    assert t.snapshot("b").orders == {}


def test_open_orders_are_pending_placement_or_placed_in_either_case() -> None:
    assert is_open({"orderStatus": "PLACED"}) and is_open({"orderStatus": "pending_placement"})
    assert not is_open({"orderStatus": "FILLED"}) and not is_open({"orderStatus": None})
    assert not is_open({})


# -- filters and paging ---------------------------------------------------------------------


def test_order_filters() -> None:
    t = truth()
    rows = [
        order(3, fixtureId="id2", createdAt="2026-02-14T23:59:59Z"),
        order(1, exchange="polymarket", createdAt="2026-02-15T00:00:00Z"),
        order(2, orderStatus="FILLED", createdAt="2026-02-16T03:00:00+05:00"),  # 15th, UTC
        order(4, orderStatus="CANCELLED", createdAt=None),
        {"orderId": 5, "orderStatus": "PLACED"},  # no createdAt at all
    ]
    for row in rows:
        t.apply("orders", "INSERT", row, "a")
    assert ids(t.orders("a")) == [1, 2, 3, 4, 5]  # by orderId
    assert ids(t.orders("a", fixture_id="id2")) == [3]
    assert ids(t.orders("a", exchange="polymarket")) == [1]
    assert ids(t.orders("a", statuses={"FILLED", "CANCELLED"})) == [2, 4]
    assert ids(t.orders("a", statuses={"filled"})) == []  # exact values
    day = date(2026, 2, 15)
    assert ids(t.orders("a", from_date=day)) == [1, 2]
    assert ids(t.orders("a", to_date=day)) == [1, 2, 3]
    assert ids(t.orders("a", from_date=date(2026, 2, 16))) == []  # 2 is on the 15th in UTC
    assert ids(t.orders("a", from_date=day, to_date=date(2026, 2, 16))) == [1, 2]
    assert ids(t.orders("a", from_date=date(2026, 2, 14), to_date=date(2026, 2, 14))) == [3]
    assert ids(t.orders("a", open_only=True)) == [1, 3, 5]
    assert ids(t.orders("a", open_only=True, exchange="kalshi")) == [3]


def test_bet_filters() -> None:
    t = truth()
    t.apply("bets", "INSERT", bet(2, orderId=7, betStatus="pending"), "a")
    t.apply("bets", "INSERT", bet(1, bookmaker="pinnacle", placedAt="2026-02-13T10:00:00Z"), "a")
    t.apply("bets", "INSERT", bet(3, betStatus="declined"), "a")
    assert ids(t.bets("a"), "betId") == [1, 2, 3]
    assert ids(t.bets("a", order_id=7), "betId") == [2]
    assert ids(t.bets("a", bookmaker="pinnacle"), "betId") == [1]
    assert ids(t.bets("a", statuses={"pending", "declined"}), "betId") == [2, 3]
    assert ids(t.bets("a", from_date=date(2026, 2, 14)), "betId") == [2, 3]
    assert ids(t.bets("a", to_date=date(2026, 2, 13)), "betId") == [1]


def test_account_filter() -> None:
    t = truth()
    t.apply("accounts", "INSERT", {"exchange": "betfair", "username": "0x01"}, "a")
    assert [r["exchange"] for r in t.accounts("a")] == ["betfair", "kalshi"]
    assert t.accounts("a", exchange="kalshi") == [ACCOUNT_A]


@pytest.mark.parametrize(
    ("total", "page", "size", "data", "pages"),
    [
        (0, 1, 50, [], 0),
        (1, 1, 50, [0], 1),
        (50, 1, 50, list(range(50)), 1),
        (51, 2, 50, [50], 2),
        (10, 2, 3, [3, 4, 5], 4),
        (10, 4, 3, [9], 4),
        (10, 5, 3, [], 4),  # past the last page: no data, the same totals
        (2000, 1, 2000, list(range(2000)), 1),
    ],
)
def test_paging_maths(total: int, page: int, size: int, data: list[int], pages: int) -> None:
    rows = [{"n": n} for n in range(total)]
    answer = paginate(rows, page, size)
    assert answer == {
        "data": [{"n": n} for n in data],
        "total": total,
        "page": page,
        "pageSize": size,
        "totalPages": pages,
    }


@pytest.mark.parametrize(("page", "size"), [(0, 50), (1, 0), (-1, 5)])
def test_paging_refuses_pages_below_one(page: int, size: int) -> None:
    with pytest.raises(ValueError, match="page"):
        paginate([], page, size)


# -- the scenario ---------------------------------------------------------------------------


def test_scenario_accounts_are_copies() -> None:
    scenario = Scenario(3, ["a"])
    rows = scenario.accounts("a")
    rows[0]["balance"] = -1.0
    assert scenario.accounts("a")[0]["balance"] == 50000.0
    assert scenario.accounts("nobody") == []


def _replay(events: list[Any], client: str) -> dict[int, dict[str, Any]]:
    """The straightforward replay the truth must agree with."""
    orders: dict[int, dict[str, Any]] = {}
    for e in events:
        if e.channel != "orders" or e.client not in (None, client):
            continue
        key = e.payload["orderId"]
        if e.event == "INSERT":
            orders[key] = copy.deepcopy(e.payload)
        else:
            orders.setdefault(key, {}).update(copy.deepcopy(e.payload))
    return orders


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), count=st.integers(0, 400))
def test_the_truth_of_a_scenario_is_its_replay(seed: int, count: int) -> None:
    clients = ["a", "b"]
    scenario = Scenario(seed, clients)
    t = Truth({c: scenario.accounts(c) for c in clients})
    events = scenario.take(count)
    for e in events:
        t.apply(e.channel, e.event, copy.deepcopy(e.payload), e.client)
    for client in clients:
        expected = _replay(events, client)
        assert t.orders(client) == [expected[k] for k in sorted(expected)]
        snap = t.snapshot(client)
        assert set(snap.orders) == set(expected)
        assert set(snap.open_orders) == {k for k, v in expected.items() if is_open(v)}
        # The scenario's own account rows moved with the fills: the truth followed them.
        assert t.accounts(client) == sorted(
            scenario.accounts(client), key=lambda r: (r["exchange"], r["username"])
        )
