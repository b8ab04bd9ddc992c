"""The simulator's MM REST API (protocols.md A.6), its ground truth and the faults that make
a client resync, over real sockets on 127.0.0.1. Every read has a deadline; nothing sleeps
to synchronise."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest
from clientutil import wait_until

from mmws._codec import model_codec
from mmws.errors import ConfigError
from mmws.mm.models import Account, Bet, Order
from mmws.sim import Scenario, Simulator
from mmws.sim._config import SimConfig

KEY_A = "11111111-1111-4111-8111-111111111111"  # client-a (conftest's make_sim)
KEY_A2 = "22222222-2222-4222-8222-222222222222"  # client-a too
KEY_B = "33333333-3333-4333-8333-333333333333"  # client-b
UNKNOWN_KEY = "44444444-4444-4444-8444-444444444444"
ENDPOINTS = ["/orders", "/orders/open", "/bets", "/accounts", "/trading/status"]

Connect = Callable[..., Any]  # conftest.connect -> conftest.Wire
MakeSim = Callable[..., Simulator]
ORDER = model_codec(Order, {"orderId": "id"})
BET = model_codec(Bet, {"betId": "id"})
ACCOUNT = model_codec(Account)


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: Any) -> None:
        self.status, self.headers, self.body = status, headers, body


def get(sim: Simulator, path: str, key: str | None = KEY_A, timeout: float = 5.0) -> Answer:
    """GET ``sim.rest_url + "/api/v1" + path`` with ``X-API-Key: key`` (None: no header)."""
    url = urlsplit(sim.rest_url + "/api/v1" + path)
    assert url.hostname == "127.0.0.1"
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request("GET", url.path + (f"?{url.query}" if url.query else ""),
                     headers={} if key is None else {"X-API-Key": key})
        response = conn.getresponse()
        body = response.read()
        assert response.getheader("Content-Type") == "application/json"
        return Answer(response.status, dict(response.getheaders()), json.loads(body))
    finally:
        conn.close()


def ok(sim: Simulator, path: str, key: str = KEY_A) -> Any:
    answer = get(sim, path, key)
    assert answer.status == 200, answer.body
    return answer.body


def order(order_id: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "orderId": order_id,
        "fixtureId": "id1",
        "exchange": "kalshi",
        "orderStatus": "PLACED",
        "createdAt": "2026-02-15T10:00:00Z",
    }
    row.update(fields)
    return row


def all_pages(sim: Simulator, path: str, key: str = KEY_A, size: int = 2000) -> list[Any]:
    rows: list[Any] = []
    page = 1
    while True:
        sep = "&" if "?" in path else "?"
        body = ok(sim, f"{path}{sep}page={page}&pageSize={size}", key)
        rows.extend(body["data"])
        if page >= body["totalPages"]:
            return rows
        page += 1


def subscribed(sim: Simulator, count: int) -> bool:
    return sim.wait_for(lambda: sum(c.subscribed for c in sim.active_connections) >= count, 2)


# -- auth -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("key", [None, "", UNKNOWN_KEY, "not-a-uuid"], ids=repr)
def test_a_missing_or_wrong_key_is_401(sim: Simulator, path: str, key: str | None) -> None:
    answer = get(sim, path, key)
    assert (answer.status, answer.body) == (401, {"detail": "Invalid or missing API key"})


def test_a_revoked_key_is_401_until_restored(sim: Simulator) -> None:
    assert get(sim, "/orders", KEY_B).status == 200
    sim.revoke_key(KEY_B)
    assert get(sim, "/orders", KEY_B).status == 401
    assert get(sim, "/orders", KEY_A).status == 200  # the other keys still work
    sim.restore_key(KEY_B)
    assert get(sim, "/orders", KEY_B).status == 200


def test_unknown_paths_are_404_and_counted(sim: Simulator) -> None:
    before = sim.stats.http_responses
    for path in ["", "/", "/nothing", "/orders/123", "/trading", "/orders/open/x"]:
        answer = get(sim, path)
        assert (answer.status, answer.body) == (404, {"detail": "Not Found"}), path
    assert get(sim, "/orders").status == 200
    assert sim.stats.http_responses == before + 7


# -- the endpoints --------------------------------------------------------------------------


def test_rest_answers_what_truth_holds_after_a_scenario(sim: Simulator) -> None:
    """After ``step(200)`` each endpoint, decoded, equals ``truth()``, for each client."""
    events = sim.step(200)
    assert {e.channel for e in events} >= {"orders", "bets", "accounts"}
    for key in (KEY_A, KEY_B):
        truth = sim.truth(key)
        orders = all_pages(sim, "/orders", key, size=7)
        assert {o["orderId"]: ORDER.structure(o) for o in orders} == truth.orders
        assert truth.orders  # the check compares something
        open_ = ok(sim, "/orders/open", key)
        assert open_["count"] == len(open_["orders"]) == len(truth.open_orders)
        assert {o["orderId"]: ORDER.structure(o) for o in open_["orders"]} == truth.open_orders
        bets = all_pages(sim, "/bets", key)
        assert {b["betId"]: BET.structure(b) for b in bets} == truth.bets
        accounts = ok(sim, "/accounts", key)
        assert accounts["oddsFormat"] == "decimal" and accounts["count"] == 2
        rows = accounts["accounts"]
        assert {(a["exchange"], a["username"]): ACCOUNT.structure(a) for a in rows} == (
            truth.accounts
        )
        status = ok(sim, "/trading/status", key)
        emergency = truth.emergency is not None and truth.emergency.emergency is True
        assert status["emergencyActive"] is emergency
    assert sim.truth().orders == sim.truth(KEY_A).orders  # the default key is api_key


def test_truth_equals_what_a_subscriber_received_merged(sim: Simulator, connect: Connect) -> None:
    """The truth is the stream's merge: a subscriber's own replay of the frames agrees."""
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A)
    events = sim.step(200)
    mine = [e for e in events if e.client in (None, "client-a")]
    orders: dict[int, dict[str, Any]] = {}
    for _ in mine:
        frame = ws.recv()
        if frame["channel"] == "orders":
            row = frame["payload"]
            if frame["event"] == "INSERT":
                orders[row["orderId"]] = row
            else:
                orders.setdefault(row["orderId"], {}).update(row)
    assert all_pages(sim, "/orders") == [orders[k] for k in sorted(orders)]


def test_paging_across_pages(sim: Simulator) -> None:
    for n in (5, 3, 7, 1, 2, 6, 4):
        sim.publish("orders", "INSERT", order(n), api_key=KEY_A)
    seen = []
    for page in (1, 2, 3):
        body = ok(sim, f"/orders?page={page}&pageSize=3")
        assert (body["total"], body["page"], body["pageSize"], body["totalPages"]) == (
            7, page, 3, 3,
        )
        seen += [o["orderId"] for o in body["data"]]
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    assert ok(sim, "/orders?page=4&pageSize=3")["data"] == []
    default = ok(sim, "/orders")
    assert (default["page"], default["pageSize"], default["totalPages"]) == (1, 50, 1)
    assert ok(sim, "/orders?pageSize=2000")["total"] == 7
    empty = ok(sim, "/orders", KEY_B)  # another client: nothing
    assert (empty["data"], empty["total"], empty["totalPages"]) == ([], 0, 0)


def test_order_filters(sim: Simulator) -> None:
    rows = [
        order(1, createdAt="2026-02-14T23:59:59Z"),
        order(2, fixtureId="id2", createdAt="2026-02-15T00:00:00Z"),
        order(3, exchange="polymarket", orderStatus="FILLED", createdAt="2026-02-16T08:00:00Z"),
        order(4, orderStatus="CANCELLED", createdAt="2026-02-17T01:00:00+05:00"),  # 16th UTC
    ]
    for row in rows:
        sim.publish("orders", "INSERT", row, api_key=KEY_A)

    def ids(query: str) -> list[int]:
        return [o["orderId"] for o in ok(sim, "/orders?" + query)["data"]]

    assert ids("fixtureId=id2") == [2]
    assert ids("exchange=polymarket") == [3]
    assert ids("status=FILLED,CANCELLED") == [3, 4]
    assert ids("status=PLACED") == [1, 2]
    assert ids("fromDate=2026-02-15") == [2, 3, 4]
    assert ids("toDate=2026-02-15") == [1, 2]
    assert ids("fromDate=2026-02-16&toDate=2026-02-16") == [3, 4]
    assert ids("fromDate=2026-02-17") == []
    assert ids("fixtureId=&exchange=") == [1, 2, 3, 4]  # empty: no filter
    assert [o["orderId"] for o in ok(sim, "/orders/open")["orders"]] == [1, 2]
    assert ok(sim, "/orders/open?fixtureId=id2") == {"orders": [order(2, fixtureId="id2",
                                                                       createdAt="2026-02-15T00:00:00Z")],
                                                      "count": 1}
    assert ok(sim, "/orders/open?exchange=polymarket") == {"orders": [], "count": 0}


def test_bet_filters(sim: Simulator) -> None:
    bets = [
        {"betId": 1, "orderId": 10, "bookmaker": "vertex", "betStatus": "placed",
         "placedAt": "2026-02-15T10:00:00Z"},
        {"betId": 2, "orderId": 11, "bookmaker": "pinnacle", "betStatus": "pending",
         "placedAt": "2026-02-16T10:00:00Z"},
        {"betId": 3, "orderId": 10, "bookmaker": "vertex", "betStatus": "declined",
         "placedAt": "2026-02-17T10:00:00Z"},
    ]  # fmt: skip
    for row in bets:
        sim.publish("bets", "INSERT", row, api_key=KEY_A)

    def ids(query: str) -> list[int]:
        return [b["betId"] for b in ok(sim, "/bets?" + query)["data"]]

    assert ids("") == [1, 2, 3]
    assert ids("orderId=10") == [1, 3]
    assert ids("bookmaker=pinnacle") == [2]
    assert ids("status=pending,declined") == [2, 3]
    assert ids("fromDate=2026-02-16") == [2, 3]
    assert ids("toDate=2026-02-16") == [1, 2]
    assert ok(sim, "/bets?pageSize=2&page=2") == {
        "data": [bets[2]], "total": 3, "page": 2, "pageSize": 2, "totalPages": 2,
    }  # fmt: skip
    assert ok(sim, "/bets", KEY_B)["total"] == 0


def test_accounts_start_from_the_scenario_and_follow_broadcasts(sim: Simulator) -> None:
    initial = Scenario(0, ["client-a", "client-b"]).accounts("client-a")
    body = ok(sim, "/accounts")
    assert sorted(body["accounts"], key=lambda a: a["exchange"]) == sorted(
        initial, key=lambda a: a["exchange"]
    )
    exchange, username = initial[0]["exchange"], initial[0]["username"]
    sim.publish("accounts", "UPDATE", {"exchange": exchange, "username": username,
                                       "balance": 1.5}, api_key=KEY_A)
    body = ok(sim, f"/accounts?exchange={exchange}")
    assert body == {"oddsFormat": "decimal", "accounts": [dict(initial[0], balance=1.5)],
                    "count": 1}
    assert ok(sim, "/accounts?exchange=nowhere") == {"oddsFormat": "decimal", "accounts": [],
                                                      "count": 0}


def test_trading_status_follows_emergency_broadcasts(sim: Simulator) -> None:
    active = ok(sim, "/trading/status", KEY_B)
    assert active == {
        "client": "client-b",
        "clientName": "client-b",
        "oddsFormat": "decimal",
        "status": "active",
        "tradingActive": True,
        "manualPaused": False,
        "manualPausedAt": None,
        "manualPausedReason": None,
        "manualStopped": False,
        "manualStoppedAt": None,
        "manualStoppedReason": None,
        "systemTradingBlocked": False,
        "emergencyActive": False,
        "systemStopped": False,
        "softPaused": False,
        "systemReason": None,
        "systemDurationSeconds": None,
    }
    sim.publish("emergency", "UPDATE", {"emergency": True, "reason": "Risk limit"})
    stopped = ok(sim, "/trading/status", KEY_B)
    assert stopped == dict(
        active,
        status="emergency",
        tradingActive=False,
        systemTradingBlocked=True,
        emergencyActive=True,
        systemReason="Risk limit",
    )
    sim.publish("emergency", "UPDATE", {"emergency": False, "reason": "Manual resume"})
    assert ok(sim, "/trading/status", KEY_B) == active


# -- dates and the scenario clock -----------------------------------------------------------


def test_the_scenario_clock_starts_now_so_yesterday_finds_every_order(sim: Simulator) -> None:
    start = sim.scenario_start
    now = datetime.now(timezone.utc)
    assert start.tzinfo is not None and start.microsecond == 0
    assert timedelta(0) <= now - start < timedelta(minutes=5)
    sim.step(150)
    yesterday = (start - timedelta(days=1)).date().isoformat()
    orders = all_pages(sim, f"/orders?fromDate={yesterday}")
    assert orders and len(orders) == len(sim.truth().orders)
    created = [datetime.fromisoformat(o["createdAt"].replace("Z", "+00:00")) for o in orders]
    assert min(created) >= start


def test_scenario_start_is_an_option(make_sim: MakeSim) -> None:
    start = datetime(2026, 3, 2, 1, 59, 0, tzinfo=timezone(timedelta(hours=2)))
    utc = datetime(2026, 3, 1, 23, 59, 0, tzinfo=timezone.utc)  # the same moment
    sim = make_sim(scenario_start=start)
    assert sim.scenario_start == utc and sim.scenario_start.tzinfo is timezone.utc
    assert sim.step(100) == Scenario(0, ["client-a", "client-b"], start=utc).take(100)
    on_the_day = all_pages(sim, "/orders?fromDate=2026-03-01&toDate=2026-03-01")
    later = all_pages(sim, "/orders?fromDate=2026-03-02")
    assert on_the_day and later  # the clock crossed midnight (UTC): both days have orders
    assert len(on_the_day) + len(later) == len(sim.truth().orders)


@pytest.mark.parametrize(
    "value", [datetime(2026, 1, 1), "2026-01-01T00:00:00Z", 0], ids=["naive", "text", "int"]
)
def test_scenario_start_must_be_an_aware_datetime(value: Any) -> None:
    with pytest.raises(ConfigError, match="scenario_start"):
        SimConfig(scenario_start=value)


# -- 422 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "name", "kind"),
    [
        ("pageSize=2001", "pageSize", "less_than_equal"),
        ("pageSize=0", "pageSize", "greater_than_equal"),
        ("page=0", "page", "greater_than_equal"),
        ("page=-3", "page", "greater_than_equal"),
        ("page=two", "page", "int_parsing"),
        ("pageSize=1.5", "pageSize", "int_parsing"),
        ("page=", "page", "int_parsing"),
        ("fromDate=2026-13-01", "fromDate", "date_parsing"),
        ("toDate=yesterday", "toDate", "date_parsing"),
        ("fromDate=20260215", "fromDate", "date_parsing"),
    ],
)
@pytest.mark.parametrize("path", ["/orders", "/bets"])
def test_bad_parameters_are_422_fastapi_style(
    sim: Simulator, path: str, query: str, name: str, kind: str
) -> None:
    answer = get(sim, f"{path}?{query}")
    assert answer.status == 422
    (item,) = answer.body["detail"]
    assert item["loc"] == ["query", name] and item["type"] == kind
    assert isinstance(item["msg"], str) and item["msg"]


def test_every_bad_parameter_is_listed(sim: Simulator) -> None:
    answer = get(sim, "/bets?orderId=x&page=0&pageSize=9999&toDate=2026-02-30")
    assert answer.status == 422
    assert sorted(item["loc"][1] for item in answer.body["detail"]) == [
        "orderId", "page", "pageSize", "toDate",
    ]  # fmt: skip
    assert get(sim, "/orders?pageSize=2000&page=1").status == 200  # the limits themselves


def test_auth_comes_before_validation(sim: Simulator) -> None:
    assert get(sim, "/orders?pageSize=5000", key=None).status == 401


# -- REST faults ----------------------------------------------------------------------------


def test_rest_errors_429_with_retry_after_then_ok(sim: Simulator) -> None:
    sim.rest_errors(429, count=2, retry_after=1.2)
    for _ in range(2):
        answer = get(sim, "/orders")
        assert (answer.status, answer.body) == (429, {"detail": "Too Many Requests"})
        assert answer.headers["Retry-After"] == "2"  # whole seconds, rounded up
    answer = get(sim, "/orders")
    assert answer.status == 200 and "Retry-After" not in answer.headers
    assert [r.status for r in sim.rest_requests] == [429, 429, 200]


def test_rest_errors_500_whatever_the_key_and_path(sim: Simulator) -> None:
    sim.rest_errors(500, count=3)
    for key, path in ((None, "/orders"), (UNKNOWN_KEY, "/bets"), (KEY_A, "/nothing")):
        answer = get(sim, path, key)
        assert (answer.status, answer.body) == (500, {"detail": "Internal Server Error"})
        assert "Retry-After" not in answer.headers
    assert get(sim, "/orders", None).status == 401
    assert get(sim, "/orders").status == 200


def test_rest_errors_count_zero_cancels(sim: Simulator) -> None:
    sim.rest_errors(503, count=5)
    assert get(sim, "/accounts").status == 503
    sim.rest_errors(503, count=0)
    assert get(sim, "/accounts").status == 200


@pytest.mark.parametrize(
    ("args", "error", "word"),
    [
        ((200,), ValueError, "status"),
        ((600,), ValueError, "status"),
        (("500",), TypeError, "status"),
        ((True,), TypeError, "status"),
        ((500, -1), ValueError, "count"),
        ((500, 1.0), TypeError, "count"),
        ((500, 1, -0.5), ValueError, "retry_after"),
        ((500, 1, float("nan")), ValueError, "retry_after"),
        ((500, 1, "1"), TypeError, "retry_after"),
    ],
)
def test_rest_errors_validates(
    sim: Simulator, args: tuple[Any, ...], error: type[Exception], word: str
) -> None:
    with pytest.raises(error, match=word):
        sim.rest_errors(*args)
    assert get(sim, "/orders").status == 200  # nothing armed


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, ValueError), (float("inf"), ValueError), (float("nan"), ValueError), ("1", TypeError)],
)
def test_rest_latency_validates(sim: Simulator, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="seconds"):
        sim.rest_latency(value)


def test_rest_latency_answers_correctly(sim: Simulator) -> None:
    sim.publish("orders", "INSERT", order(1), api_key=KEY_A)
    sim.rest_latency(0.05)
    assert ok(sim, "/orders")["data"] == [order(1)]
    sim.rest_latency(0)
    assert ok(sim, "/orders/open")["count"] == 1


def test_rest_latency_blocks_neither_other_connections_nor_close(
    make_sim: MakeSim, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    sim = make_sim()
    sim.rest_errors(503, count=1)  # used up when the request arrives, before the wait
    sim.rest_latency(120.0)
    outcome: list[Any] = []

    def request() -> None:
        try:
            outcome.append(get(sim, "/orders", timeout=60.0).status)
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    # White box: the only way to see that the request is inside its wait.
    wait_until(lambda: sim._faults._rest_errors_left == 0, 5.0, "the request to arrive")
    ws = connect(sim.mm_url)  # the waiting request holds only its own connection
    ws.subscribe(KEY_A, ["orders"])
    sim.publish("orders", "INSERT", order(1), api_key=KEY_A)
    assert ws.recv()["payload"]["orderId"] == 1
    caplog.set_level(logging.WARNING, logger="mmws.sim")
    started = time.monotonic()
    sim.close(timeout=30.0)
    assert time.monotonic() - started < 10.0  # far from the 120 s latency or 30 s timeout
    thread.join(10.0)
    assert not thread.is_alive() and len(outcome) == 1
    assert "still running" not in caplog.text


# -- gap faults -----------------------------------------------------------------------------


def test_skip_broadcasts_leaves_a_gap_but_the_truth_changes(
    sim: Simulator, connect: Connect
) -> None:
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A, ["orders"])
    sim.skip_broadcasts(1)
    for n in (1, 2, 3):
        assert sim.publish("orders", "INSERT", order(n), api_key=KEY_A) == (0 if n == 1 else 1)
    sim.publish("orders", "INSERT", order(99), api_key=KEY_A)  # the end marker
    got = [ws.recv()["payload"]["orderId"] for _ in range(3)]
    assert got == [2, 3, 99]
    assert set(sim.truth(KEY_A).orders) == {1, 2, 3, 99}
    assert [o["orderId"] for o in ok(sim, "/orders")["data"]] == [1, 2, 3, 99]
    (info,) = sim.active_connections
    assert info.skipped == 1


def test_skip_broadcasts_on_one_connection(sim: Simulator, connect: Connect) -> None:
    first = connect(sim.mm_url)
    first.subscribe(KEY_A, ["orders"])
    second = connect(sim.mm_url)
    second.subscribe(KEY_A2, ["orders"])
    target = next(c.id for c in sim.active_connections if c.api_key == KEY_A2)
    sim.skip_broadcasts(2, target)
    for n in (1, 2, 3):
        sim.publish("orders", "INSERT", order(n))
    assert [first.recv()["payload"]["orderId"] for _ in range(3)] == [1, 2, 3]
    assert second.recv()["payload"]["orderId"] == 3
    skipped = {c.api_key: c.skipped for c in sim.active_connections}
    assert skipped == {KEY_A: 0, KEY_A2: 2}
    # Only the broadcasts a connection would get count: client-b's orders skip nothing here.
    sim.skip_broadcasts(1, target)
    sim.publish("orders", "INSERT", order(4), api_key=KEY_B)
    sim.publish("orders", "INSERT", order(5), api_key=KEY_A)
    sim.publish("orders", "INSERT", order(6), api_key=KEY_A)
    assert second.recv()["payload"]["orderId"] == 6


def test_skip_broadcasts_zero_cancels_and_later_connections_are_not_affected(
    sim: Simulator, connect: Connect
) -> None:
    first = connect(sim.mm_url)
    first.subscribe(KEY_A, ["orders"])
    sim.skip_broadcasts(5)
    later = connect(sim.mm_url)
    later.subscribe(KEY_A2, ["orders"])
    sim.publish("orders", "INSERT", order(1))
    assert later.recv()["payload"]["orderId"] == 1
    (cid,) = [c.id for c in sim.active_connections if c.api_key == KEY_A]
    sim.skip_broadcasts(0, cid)
    sim.publish("orders", "INSERT", order(2))
    assert first.recv()["payload"]["orderId"] == 2


@pytest.mark.parametrize(
    ("args", "error", "word"),
    [
        ((-1,), ValueError, "count"),
        (("1",), TypeError, "count"),
        ((1, 999), ConfigError, "connection_id"),
        ((1, True), TypeError, "connection_id"),
    ],
)
def test_skip_broadcasts_validates(
    sim: Simulator, connect: Connect, args: tuple[Any, ...], error: type[Exception], word: str
) -> None:
    connect(sim.mm_url).subscribe(KEY_A)
    with pytest.raises(error, match=word):
        sim.skip_broadcasts(*args)


def test_duplicate_broadcasts_queues_twice_to_every_recipient(
    sim: Simulator, connect: Connect
) -> None:
    a = connect(sim.mm_url)
    a.subscribe(KEY_A, ["orders"])
    b = connect(sim.mm_url)
    b.subscribe(KEY_A2, ["orders"])
    sim.duplicate_broadcasts(1)
    sim.publish("orders", "INSERT", order(1), api_key=KEY_B)  # reaches nobody: not counted
    sim.publish("orders", "UPDATE", {"orderId": 1, "orderStatus": "FILLED"}, api_key=KEY_A)
    sim.publish("orders", "INSERT", order(2), api_key=KEY_A)
    for ws in (a, b):
        frames = [ws.recv() for _ in range(3)]
        assert [(f["event"], f["payload"]["orderId"]) for f in frames] == [
            ("UPDATE", 1), ("UPDATE", 1), ("INSERT", 2),
        ]  # fmt: skip
    assert sim.truth(KEY_A).orders[1].order_status == "FILLED"
    assert ok(sim, "/orders")["total"] == 2
    with pytest.raises(ValueError, match="count"):
        sim.duplicate_broadcasts(-1)
    with pytest.raises(TypeError, match="count"):
        sim.duplicate_broadcasts(None)  # type: ignore[arg-type]


# -- burst, restart, secrets ----------------------------------------------------------------


@pytest.mark.parametrize("event", ["UPDATE", "INSERT"])
def test_burst_feeds_the_truth(sim: Simulator, connect: Connect, event: str) -> None:
    ws = connect(sim.mm_url, skip_utf8_validation=True)
    ws.subscribe(KEY_A, ["orders"])
    frames: list[Any] = []
    reader = threading.Thread(target=lambda: frames.extend(ws.recv() for _ in range(300)))
    reader.start()
    assert sim.burst(300, event=event) == 300
    reader.join(10)
    assert [f["payload"]["orderId"] for f in frames] == list(range(1, 301))
    assert {f["event"] for f in frames} == {event}
    assert all(("old" in f) is (event == "UPDATE") for f in frames)
    truth = sim.truth(KEY_A)
    assert set(truth.orders) == set(range(1, 301))
    assert {o["orderId"]: o for o in all_pages(sim, "/orders")}[7] == frames[6]["payload"]
    assert sim.truth(KEY_B).orders == {}


def test_burst_refuses_other_events(sim: Simulator) -> None:
    with pytest.raises(ConfigError, match="DELETE"):
        sim.burst(1, event="DELETE")


def test_truth_survives_restart(sim: Simulator) -> None:
    sim.step(80)
    before = sim.truth(KEY_A)
    rest_before = all_pages(sim, "/orders")
    sim.restart(down_for=0.05, wait=True)
    assert sim.listening
    assert sim.truth(KEY_A) == before
    assert all_pages(sim, "/orders") == rest_before


def test_the_key_never_appears_in_rest_requests_or_logs(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = (KEY_A, KEY_B, UNKNOWN_KEY)
    for key in keys:
        get(sim, "/orders?fixtureId=id1", key)
        get(sim, "/nothing", key)
    sim.revoke_key(KEY_B)
    get(sim, "/orders", KEY_B)
    get(sim, f"/orders?apiKey={KEY_A}&token={KEY_B}")  # a key in the query is hidden too
    records = sim.rest_requests
    assert len(records) == 8
    assert [r.path for r in records[:2]] == ["/api/v1/orders", "/api/v1/nothing"]
    assert dict(records[0].query) == {"fixtureId": "id1"}
    assert [r.status for r in records] == [200, 404, 200, 404, 401, 404, 401, 200]
    assert dict(records[-1].query) == {"apiKey": "***", "token": "***"}
    with pytest.raises(TypeError):
        records[0].query["x"] = "y"  # type: ignore[index]
    assert caplog.records  # websockets did log the requests, headers included
    for key in keys:
        assert key not in repr(records)
        assert key not in caplog.text
