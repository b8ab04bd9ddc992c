"""MMClient(state=True) against the simulator: the state equals the simulator's ground truth
after gaps, repeats, reconnects, restarts and REST failures (real sockets, 127.0.0.1)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clientutil import collect_until, wait_until

import mmws
from mmws import GapDetected, MMClient, MMRest, Resynced, ResyncFailed
from mmws.mm.state import StateSnapshot
from mmws.sim import Simulator

FAST: dict[str, Any] = {
    "pong_timeout": 1.0,
    "backoff_base": 0.01,
    "backoff_cap": 0.05,
    "resync_backoff": 0.01,
    "connect_timeout": 5.0,
}


ORDER = {
    "orderId": 1,
    "fixtureId": "id1",
    "exchange": "kalshi",
    "orderStatus": "PLACED",
    "matchedStatus": "NOT_MATCHED",
    "orderStake": 100.0,
    "matchedStake": 0.0,
    "createdAt": "2026-11-30T10:00:00Z",
}


def rest_for(sim: Simulator, key: str | None = None, **options: Any) -> MMRest:
    options.setdefault("backoff_base", 0.001)
    return MMRest(key or sim.api_key, base_url=sim.rest_url, **options)


def client_for(sim: Simulator, **options: Any) -> MMClient:
    settings = {**FAST, **options}
    settings.setdefault("rest", rest_for(sim))
    return MMClient(sim.api_key, url=sim.mm_url, state=True, **settings)


def equal(snap: StateSnapshot, truth: StateSnapshot) -> bool:
    flag = snap.emergency.emergency if snap.emergency else False
    return (
        dict(snap.orders) == dict(truth.orders)
        and dict(snap.open_orders) == dict(truth.open_orders)
        and dict(snap.bets) == dict(truth.bets)
        and dict(snap.accounts) == dict(truth.accounts)
        and flag == (truth.emergency.emergency if truth.emergency else False)
    )


def settles(client: MMClient, sim: Simulator, timeout: float = 10.0) -> None:
    """Wait until the client's state is synced and equals the truth."""

    def done() -> bool:
        return client.state.synced and equal(client.state.snapshot(), sim.truth())

    wait_until(done, timeout, "the state to equal the simulator's truth")


def resynced(reason: str) -> Any:
    return lambda e: isinstance(e, Resynced) and e.reason == reason


def drain(client: MMClient) -> list[Any]:
    out: list[Any] = []
    while True:
        try:
            out.append(client.get_nowait())
        except Exception:
            return out


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(rate=0, heartbeat_interval=None) as server:
        yield server


# -- the contract ----------------------------------------------------------------------------------


def test_connect_returns_once_the_first_resync_is_done(sim: Simulator) -> None:
    sim.step(300)  # history from before the client came
    with client_for(sim) as client:
        assert client.state.synced
        assert equal(client.state.snapshot(), sim.truth())
        assert len(client.state.orders) > 20 and client.state.accounts
        events = drain(client)
        kinds = [type(e).__name__ for e in events]
        assert kinds[:3] == ["Connected", "Subscribed", "Resynced"]
        resynced = events[2]
        assert resynced.reason == "connect"
        assert resynced.orders == len(sim.truth().orders) and resynced.accounts == 2
        assert resynced.duration > 0


def test_state_is_only_for_clients_made_with_state_true(sim: Simulator) -> None:
    client = MMClient(sim.api_key, url=sim.mm_url)
    with pytest.raises(mmws.ConfigError, match="state=True"):
        _ = client.state
    with pytest.raises(mmws.ConfigError, match="state=True"):
        MMClient(sim.api_key, url=sim.mm_url, rest_url=sim.rest_url)
    with pytest.raises(mmws.ConfigError, match="resync_timeout"):
        MMClient(sim.api_key, url=sim.mm_url, state=True, resync_timeout=0)
    with pytest.raises(mmws.ConfigError, match="rest must be"):
        MMClient(sim.api_key, url=sim.mm_url, state=True, rest="http://x")  # type: ignore[arg-type]


def test_the_rest_url_comes_from_the_websocket_url(sim: Simulator) -> None:
    sim.step(50)
    with MMClient(sim.api_key, url=sim.mm_url, state=True, **FAST) as client:
        assert equal(client.state.snapshot(), sim.truth())
    assert mmws.mm._engine.derive_rest_url("wss://mmapi.55-tech.com/ws/subscribe") == (
        "https://mmapi.55-tech.com"
    )
    assert mmws.mm._engine.derive_rest_url("ws://u:p@127.0.0.1:81/x?y=1") == "http://127.0.0.1:81"
    with pytest.raises(mmws.ConfigError, match="rest_url"):
        mmws.mm._engine.derive_rest_url("tcp://127.0.0.1:1")


def test_live_broadcasts_keep_the_state_equal_to_the_truth(sim: Simulator) -> None:
    with client_for(sim) as client:
        sim.step(1_000)
        settles(client, sim)
        assert not [e for e in drain(client) if isinstance(e, GapDetected | ResyncFailed)]


def test_when_you_get_an_event_the_state_already_includes_it(sim: Simulator) -> None:
    with client_for(sim) as client:
        drain(client)
        sim.publish("orders", "INSERT", {**ORDER, "orderId": 5})
        assert client.get(timeout=5).payload.order_id == 5
        assert client.state.orders[5].matched_stake == 0.0
        for step in range(1, 40):
            sim.publish("orders", "UPDATE", {"orderId": 5, "matchedStake": float(step)},
                        {"matchedStake": float(step - 1)})  # fmt: skip
            event = client.get(timeout=5)
            assert event.payload.matched_stake == step
            # nothing newer was sent yet: the state is exactly this event
            assert client.state.orders[5].matched_stake == step
            assert client.state.orders[5].fixture_id == "id1"  # merged with the INSERT


def test_a_fault_free_run_of_100k_events_reports_no_gap() -> None:
    with Simulator(rate=0, heartbeat_interval=None, max_send_queue=200_000) as sim:
        gaps: list[Any] = []
        counted = threading.Event()
        got = [0]

        def on_event(event: Any) -> None:
            if isinstance(event, GapDetected):
                gaps.append(event)
            elif isinstance(event, mmws.Broadcast):
                got[0] += 1
                if got[0] == 100_000:
                    counted.set()

        # No keepalive pings and no audits: under coverage on a loaded machine a pong (or an
        # audit's barrier pong) queued behind 100k broadcasts can outlast pong_timeout, and
        # the connection would be replaced, losing what was queued for it: not fault-free.
        quiet = {"ping_interval": None, "audit_interval": None}
        with client_for(sim, on_event=on_event, maxsize=200_000, **quiet) as client:
            for _ in range(10):
                sim.step(10_000)
            seen = -1
            while not counted.wait(10):  # slow under coverage: fail only when it stops
                assert got[0] > seen, f"stuck at {got[0]} broadcasts"
                seen = got[0]
            settles(client, sim, 30)
            assert gaps == []
            assert client.state.gaps == 0 and len(client.state.orders) > 5_000


# -- gaps and repeats ------------------------------------------------------------------------------



def test_a_skipped_broadcast_is_one_gap_and_a_resync_repairs_the_state(sim: Simulator) -> None:
    with client_for(sim) as client:
        sim.publish("orders", "INSERT", ORDER)
        sim.skip_broadcasts(1)
        sim.publish(
            "orders",
            "UPDATE",
            {"orderId": 1, "matchedStake": 10.0, "matchedStatus": "PARTIALLY_MATCHED"},
            {"matchedStake": 0.0, "matchedStatus": "NOT_MATCHED"},
        )
        sim.publish("orders", "UPDATE", {"orderId": 1, "matchedStake": 30.0},
                    {"matchedStake": 10.0})  # fmt: skip
        events = collect_until(client, resynced("gap"))
        gaps = [e for e in events if isinstance(e, GapDetected)]
        assert gaps == [GapDetected("orders", 1, "matched_stake", 0.0, 10.0)]
        assert events[-1].reason == "gap"
        # the gap is reported right after the broadcast that revealed it
        position = events.index(gaps[0])
        assert isinstance(events[position - 1], mmws.OrderEvent)
        assert events[position - 1].payload.matched_stake == 30.0
        settles(client, sim)
        order = client.state.orders[1]
        assert order.matched_status == mmws.MatchedStatus.PARTIALLY_MATCHED  # from REST
        assert order.matched_stake == 30.0 and client.state.gaps == 1


def test_a_skipped_insert_is_a_gap_at_the_next_update(sim: Simulator) -> None:
    with client_for(sim) as client:
        sim.skip_broadcasts(1)
        sim.publish("orders", "INSERT", ORDER)
        sim.publish("orders", "UPDATE", {"orderId": 1, "orderStatus": "CANCELLED"},
                    {"orderStatus": "PLACED"})  # fmt: skip
        events = collect_until(client, resynced("gap"))
        assert [e for e in events if isinstance(e, GapDetected)] == [GapDetected("orders", 1)]
        settles(client, sim)


def test_repeated_broadcasts_are_not_gaps(sim: Simulator) -> None:
    with client_for(sim) as client:
        sim.duplicate_broadcasts(50)
        sim.step(200)
        settles(client, sim)
        events = drain(client)
        assert not [e for e in events if isinstance(e, GapDetected)]
        data = [e for e in events if isinstance(e, mmws.Broadcast)]
        assert len(data) == 250  # the repeats are delivered: the stream hides nothing


def test_an_audit_finds_a_loss_nothing_on_the_stream_reveals(sim: Simulator) -> None:
    with client_for(sim, audit_interval=0.2) as client:
        sim.publish("orders", "INSERT", ORDER)
        sim.skip_broadcasts(1)
        sim.publish("orders", "UPDATE", {"orderId": 1, "orderStatus": "CANCELLED"},
                    {"orderStatus": "PLACED"})  # fmt: skip
        events = collect_until(client, resynced("audit"))
        gaps = [e for e in events if isinstance(e, GapDetected)]
        assert gaps == [GapDetected("orders", 1, "order_status", "PLACED", "CANCELLED")]
        assert 1 not in client.state.open_orders
        settles(client, sim)


def test_a_quiet_audit_reports_nothing(sim: Simulator) -> None:
    with client_for(sim, audit_interval=0.05) as client:
        drain(client)
        sim.step(100)
        settles(client, sim)
        before = len(sim.rest_requests)
        wait_until(lambda: len(sim.rest_requests) >= before + 10, 5, "two audits")
        sim.step(20)
        settles(client, sim)
        events = drain(client)
        assert not [e for e in events if isinstance(e, GapDetected | Resynced | ResyncFailed)]


# -- reconnects and REST failures ------------------------------------------------------------------


def test_every_reconnect_is_followed_by_a_resync(sim: Simulator) -> None:
    with client_for(sim) as client:
        sim.step(100)
        for _ in range(3):
            sim.drop_connections()
            sim.step(50)  # lost while the client is away, or held during its resync
            events = collect_until(
                client, lambda e: isinstance(e, Resynced) and e.reason == "reconnect"
            )
            kinds = [type(e).__name__ for e in events]
            assert "Disconnected" in kinds
            assert kinds.index("Subscribed") < kinds.index("Resynced")
        sim.step(50)
        settles(client, sim)


def test_rest_errors_are_retried_and_reported(sim: Simulator) -> None:
    sim.step(50)
    sim.rest_errors(500, count=6)  # more than MMRest retries once: the resync fails first
    with client_for(sim, rest=rest_for(sim, retries=1)) as client:
        events = drain(client)
        failed = [e for e in events if isinstance(e, ResyncFailed)]
        assert failed and all(f.will_retry for f in failed)
        assert isinstance(failed[0].error, mmws.RestError) and failed[0].error.status == 500
        assert [type(e) for e in events].index(Resynced) > [type(e) for e in events].index(
            ResyncFailed
        )
        assert equal(client.state.snapshot(), sim.truth())


def test_a_429_with_retry_after_is_honoured(sim: Simulator) -> None:
    with client_for(sim, rest=rest_for(sim, max_retry_after=0.05)) as client:
        sim.rest_errors(429, count=2, retry_after=0.01)
        sim.publish("orders", "INSERT", ORDER)
        sim.skip_broadcasts(1)
        sim.publish("orders", "UPDATE", {"orderId": 1, "matchedStake": 5.0}, {"matchedStake": 0.0})
        sim.publish("orders", "UPDATE", {"orderId": 1, "matchedStake": 9.0}, {"matchedStake": 5.0})
        collect_until(client, resynced("gap"))
        settles(client, sim)
        assert [r.status for r in sim.rest_requests].count(429) == 2


def test_a_refused_key_on_rest_fails_connect_and_closes_the_client(sim: Simulator) -> None:
    other = "99999999-9999-4999-8999-999999999999"
    client = client_for(sim, rest=rest_for(sim, other))
    with pytest.raises(mmws.AuthenticationError) as info:
        client.connect()
    assert other not in str(info.value)
    assert client.health().state == "closed"
    assert not [t.name for t in threading.enumerate() if t.name.startswith("mmws-")
                and not t.name.startswith("mmws-sim") and t.is_alive()]  # fmt: skip


def test_rest_that_never_answers_fails_connect_within_resync_timeout(sim: Simulator) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    rest = MMRest(sim.api_key, base_url=f"http://127.0.0.1:{port}", backoff_base=0.001, retries=0)
    client = client_for(sim, rest=rest, resync_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(mmws.ConnectTimeout, match="resync_timeout"):
        client.connect()
    assert time.monotonic() - started < 5
    assert client.health().state == "closed"


def test_close_during_a_slow_resync_returns_promptly(sim: Simulator) -> None:
    with client_for(sim) as client:
        sim.rest_latency(30.0)
        sim.drop_connections()
        wait_until(lambda: client.health().reconnects >= 1, 5, "the reconnect")
        started = time.monotonic()
        client.close(timeout=2.0)
        assert time.monotonic() - started < 3
    sim.rest_latency(0)


def test_readers_on_other_threads_see_whole_snapshots(sim: Simulator) -> None:
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader(client: MMClient) -> None:
        while not stop.is_set():
            snap = client.state.snapshot()
            reads[0] += 1
            for key, order in snap.open_orders.items():
                if snap.orders.get(key) is not order:
                    problems.append(f"open order {key} is not the order in the same snapshot")
            if len(problems) > 5:
                return

    with client_for(sim) as client:
        thread = threading.Thread(target=reader, args=(client,))
        thread.start()
        try:
            sim.step(3_000)
            settles(client, sim)
        finally:
            stop.set()
            thread.join(5)
    assert problems == [] and reads[0] > 10


def test_a_bad_option_is_refused_before_a_recording_is_opened(
    sim: Simulator, tmp_path: Any
) -> None:
    target = tmp_path / "never.jsonl"
    bad: list[dict[str, Any]] = [
        {"state": True, "resync_timeout": -1},
        {"state": True, "audit_interval": 0},
        {"state": True, "rest_url": "ftp://127.0.0.1"},
        {"rest_url": sim.rest_url},
        {"line_window": 0},
    ]
    for options in bad:
        with pytest.raises(mmws.ConfigError):
            MMClient(sim.api_key, url=sim.mm_url, record=target, **options)
        assert not target.exists(), options
