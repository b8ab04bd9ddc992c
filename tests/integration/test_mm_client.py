"""MMClient against the bundled simulator over real sockets on 127.0.0.1.

Time constants are scaled down (pings every 50-100 ms, timeouts of a few hundred ms) so the
fault tests run in well under a second each; every wait has a deadline.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clientutil import KEY, KEY_B, UNKNOWN_KEY, collect_until, of_type, types_of, wait_until

import mmws
from mmws.sim import Simulator

FAST = dict(ping_interval=0.1, pong_timeout=1.0, heartbeat_timeout=1.0, backoff_base=0.02,
            backoff_cap=0.1, connect_timeout=2.0)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_keys={KEY: "client-a", KEY_B: "client-b"}, rate=0,
                   heartbeat_interval=0.2, seed=1) as server:
        yield server


@pytest.fixture
def client(sim: Simulator) -> Iterator[mmws.MMClient]:
    c = mmws.MMClient(KEY, url=sim.mm_url, **FAST)
    c.connect()
    try:
        yield c
    finally:
        c.close()


def order(order_id: int, status: str = "PLACED", **more: Any) -> dict[str, Any]:
    return {"orderId": order_id, "orderStatus": status, **more}


def next_data(client: mmws.MMClient, timeout: float = 5.0) -> Any:
    return collect_until(client, of_type(mmws.Broadcast), timeout)[-1]


def assert_recovers(client: mmws.MMClient, sim: Simulator, order_id: int) -> list[Any]:
    """Wait for the reconnect to finish, then prove data flows again."""
    events = collect_until(client, of_type(mmws.Subscribed), timeout=5.0)
    wait_until(lambda: sim.publish("orders", "UPDATE", order(order_id)) > 0, what="publish")
    event = next_data(client)
    assert isinstance(event, mmws.OrderEvent) and event.payload.order_id == order_id
    return events


# -- the basic contract -----------------------------------------------------------------------


def test_connect_queues_connected_then_subscribed(client: mmws.MMClient) -> None:
    first, second = client.get(timeout=2), client.get(timeout=2)
    assert isinstance(first, mmws.Connected) and first.attempt == 0
    assert isinstance(second, mmws.Subscribed)
    assert second.channels == ("orders", "bets", "accounts", "scores", "emergency")
    assert client.health().state == "connected"


def test_typed_events_from_all_five_channels_arrive_in_server_order(
    client: mmws.MMClient, sim: Simulator
) -> None:
    sim.publish("orders", "INSERT", order(1, "PENDING_PLACEMENT"))
    sim.publish("bets", "INSERT", {"betId": 7, "orderId": 1, "betStatus": "placed"})
    sim.publish("accounts", "UPDATE", {"exchange": "polymarket", "username": "0xabc",
                                       "balance": 100.5})
    sim.publish("scores", "UPDATE", {"fixtureId": "f1", "live": True, "currentMinute": 3})
    sim.publish("emergency", "UPDATE", {"emergency": True, "reason": "Manual trigger"})
    sim.publish("orders", "UPDATE", order(1, "FILLED", matchedStake=10.0),
                old={"orderStatus": "PLACED", "matchedStake": 0})
    got = [e for e in collect_until(client, lambda e: isinstance(e, mmws.OrderEvent)
                                    and e.event == "UPDATE") if isinstance(e, mmws.Broadcast)]
    # emergency may jump ahead (priority lane); the other channels keep the server's order
    data = [e for e in got if not isinstance(e, mmws.EmergencyEvent)]
    assert [type(e) for e in data] == [
        mmws.OrderEvent, mmws.BetEvent, mmws.AccountEvent, mmws.ScoreEvent, mmws.OrderEvent]
    assert any(isinstance(e, mmws.EmergencyEvent) and e.payload.emergency for e in got)
    fill = data[-1]
    assert fill.payload.order_status is mmws.OrderStatus.FILLED
    assert fill.changes["matched_stake"] == (0.0, 10.0)
    assert data[1].payload.bet_status is mmws.BetStatus.PLACED
    assert data[2].payload.balance == 100.5
    assert data[3].payload.current_minute == 3


def test_client_channels_only_reach_their_own_client(sim: Simulator) -> None:
    with mmws.MMClient(KEY_B, channels=["orders", "scores"], url=sim.mm_url, **FAST) as other:
        sim.publish("orders", "INSERT", order(5), api_key=KEY)
        sim.publish("scores", "UPDATE", {"fixtureId": "f9"})
        events = collect_until(other, of_type(mmws.ScoreEvent))
        assert not any(isinstance(e, mmws.OrderEvent) for e in events)


def test_iteration_ends_after_close(client: mmws.MMClient, sim: Simulator) -> None:
    sim.publish("orders", "INSERT", order(1))
    next_data(client)
    seen: list[Any] = []
    consumer = threading.Thread(target=lambda: seen.extend(client), daemon=True)
    consumer.start()
    client.close()
    consumer.join(3)
    assert not consumer.is_alive()
    assert isinstance(seen[-1], mmws.Closed) and seen[-1].error is None
    with pytest.raises(mmws.ClientClosed):
        client.get(timeout=1)


def test_get_times_out_with_queue_empty(client: mmws.MMClient) -> None:
    collect_until(client, of_type(mmws.Subscribed))
    with pytest.raises(queue.Empty):
        client.get(timeout=0.05)
    with pytest.raises(queue.Empty):
        client.get_nowait()
    assert client.queue.empty() and client.queue.qsize() == 0


def test_on_event_runs_on_the_dispatch_thread(sim: Simulator) -> None:
    seen: list[tuple[str, Any]] = []
    got_order = threading.Event()

    def on_event(event: Any) -> None:
        seen.append((threading.current_thread().name, event))
        if isinstance(event, mmws.OrderEvent):
            got_order.set()

    with mmws.MMClient(KEY, url=sim.mm_url, on_event=on_event, **FAST):
        sim.publish("orders", "INSERT", order(3))
        assert got_order.wait(5)
    assert {name for name, _ in seen} == {"mmws-dispatch"}


def test_health_is_a_snapshot_without_the_key(client: mmws.MMClient, sim: Simulator) -> None:
    sim.publish("orders", "INSERT", order(1))
    next_data(client)
    wait_until(lambda: client.health().last_rtt is not None, what="a pong")
    health = client.health()
    assert health.state == "connected" and health.reconnects == 0
    assert health.connected_since is not None and health.last_message_at is not None
    assert health.subscriptions == mmws.mm.CHANNELS
    assert KEY not in repr(health) and KEY not in repr(client)
    with pytest.raises(AttributeError):
        health.state = "x"  # type: ignore[misc]


# -- connect errors ---------------------------------------------------------------------------


def test_bad_key_and_channel_are_config_errors_before_any_network_use(sim: Simulator) -> None:
    before = sim.stats.connections_opened
    with pytest.raises(mmws.ConfigError) as bad_key:
        mmws.MMClient("not-a-uuid-secret", url=sim.mm_url).connect()
    assert "not-a-uuid-secret" not in str(bad_key.value)
    with pytest.raises(mmws.ConfigError, match=r"'trades'.*orders, bets"):
        mmws.MMClient(KEY, channels=["orders", "trades"], url=sim.mm_url).connect()
    assert sim.stats.connections_opened == before


def test_rejected_key_raises_authentication_error_and_is_not_retried(sim: Simulator) -> None:
    client = mmws.MMClient(UNKNOWN_KEY, url=sim.mm_url, **FAST)
    before = sim.stats.connections_opened
    with pytest.raises(mmws.AuthenticationError, match="Invalid API key") as info:
        client.connect()
    assert UNKNOWN_KEY not in str(info.value)
    assert sim.stats.connections_opened == before + 1
    client.close()


def test_connection_limit_is_its_own_error(sim: Simulator) -> None:
    clients = [mmws.MMClient(KEY, url=sim.mm_url, **FAST).connect() for _ in range(5)]
    try:
        with pytest.raises(mmws.ConnectionLimitError, match="Connection limit exceeded"):
            mmws.MMClient(KEY, url=sim.mm_url, **FAST).connect()
    finally:
        for c in clients:
            c.close()


def test_unreachable_host_is_a_connect_error() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(mmws.ConnectError, match="cannot connect") as info:
        mmws.MMClient(KEY, url=f"ws://127.0.0.1:{port}/ws/subscribe", **FAST).connect()
    assert isinstance(info.value.__cause__, ConnectionRefusedError)  # translated and chained


def test_connect_timeout_bounds_the_subscription_wait(sim: Simulator) -> None:
    sim.stall()
    client = mmws.MMClient(KEY, url=sim.mm_url, **{**FAST, "connect_timeout": 0.3})
    with pytest.raises(mmws.ConnectError) as info:
        client.connect()
    assert isinstance(info.value, mmws.TransportTimeout)
    sim.resume()


def test_legacy_field_names(sim: Simulator) -> None:
    with Simulator(api_keys={KEY: "a"}, rate=0, legacy_field_names=True) as legacy:
        with mmws.MMClient(KEY, url=legacy.mm_url, legacy_field_names=True, **FAST) as c:
            sub = collect_until(c, of_type(mmws.Subscribed))[-1]
            assert sub.subscription_id is not None
        with pytest.raises(mmws.AuthenticationError, match="api_key required"):
            mmws.MMClient(KEY, url=legacy.mm_url, **FAST).connect()


# -- faults: notice, tell, reconnect, resubscribe, deliver ---------------------------------


def test_dropped_tcp_reconnects_and_resubscribes(client: mmws.MMClient, sim: Simulator) -> None:
    collect_until(client, of_type(mmws.Subscribed))
    sim.drop_connections()
    events = collect_until(client, of_type(mmws.Disconnected))
    assert events[-1].will_reconnect is True
    after = assert_recovers(client, sim, 42)
    assert types_of(after)[:3] == ["Reconnecting", "Connected", "Subscribed"]
    assert client.health().reconnects == 1


@pytest.mark.parametrize("code", [1001, 1011])
def test_server_close_reconnects(client: mmws.MMClient, sim: Simulator, code: int) -> None:
    collect_until(client, of_type(mmws.Subscribed))
    sim.close_connections(code, "bye")
    disconnected = collect_until(client, of_type(mmws.Disconnected))[-1]
    assert isinstance(disconnected.error, mmws.ConnectionClosed)
    assert disconnected.error.code == code and disconnected.will_reconnect
    assert_recovers(client, sim, code)


def test_stalled_server_goes_stale_then_recovers(client: mmws.MMClient, sim: Simulator) -> None:
    collect_until(client, of_type(mmws.Subscribed))
    sim.stall()
    events = collect_until(client, of_type(mmws.Disconnected), timeout=3)
    assert types_of(events)[-2:] == ["Stale", "Disconnected"]
    assert isinstance(events[-1].error, mmws.HeartbeatTimeout)
    sim.resume()
    assert_recovers(client, sim, 7)


def test_paused_heartbeats_are_noticed(sim: Simulator) -> None:
    # No pings: only the server's heartbeat (every 0.2 s here) shows the line is alive.
    with mmws.MMClient(KEY, url=sim.mm_url, **{**FAST, "ping_interval": None,
                                                "heartbeat_timeout": 0.6}) as c:
        collect_until(c, of_type(mmws.Subscribed))
        sim.pause_heartbeats()
        events = collect_until(c, of_type(mmws.Stale), timeout=3)
        assert events[-1].silent_for >= 0.6
        sim.resume_heartbeats()
        assert_recovers(c, sim, 8)


def test_delayed_pongs_are_noticed(client: mmws.MMClient, sim: Simulator) -> None:
    collect_until(client, of_type(mmws.Subscribed))
    sim.delay_pongs(2.0)
    stale = collect_until(client, of_type(mmws.Stale), timeout=3)[-1]
    assert "pong" in str(stale.error)
    sim.delay_pongs(0)
    assert_recovers(client, sim, 9)


def test_restart_reconnects_on_the_same_port(client: mmws.MMClient, sim: Simulator) -> None:
    collect_until(client, of_type(mmws.Subscribed))
    sim.restart(down_for=0.3)
    collect_until(client, of_type(mmws.Disconnected))
    assert_recovers(client, sim, 10)


def test_429_at_handshake_is_retried(client: mmws.MMClient, sim: Simulator) -> None:
    collect_until(client, of_type(mmws.Subscribed))
    sim.reject_handshakes(429)
    sim.drop_connections()
    wait_until(lambda: sim.stats.handshakes_rejected >= 2, what="two refused handshakes")
    sim.reject_handshakes(None)
    events = assert_recovers(client, sim, 11)
    assert types_of(events).count("Reconnecting") >= 2
    assert "429" in (client.health().last_error or "")


def test_malformed_frames_do_not_reconnect(client: mmws.MMClient, sim: Simulator) -> None:
    collect_until(client, of_type(mmws.Subscribed))
    sim.send_raw("this is not json")
    sim.send_raw('{"type":"broadcast","channel":"orders","event":"UPDATE","payload":{"orderId":"x"}}')
    sim.publish("orders", "INSERT", order(12))
    events = collect_until(client, of_type(mmws.OrderEvent))
    bad = [e for e in events if isinstance(e, mmws.MalformedFrame)]
    assert len(bad) == 2 and "orderId" in str(bad[1].error)
    assert not any(isinstance(e, mmws.Disconnected) for e in events)
    assert client.health().reconnects == 0


def test_revoked_key_on_reconnect_is_fatal(sim: Simulator) -> None:
    c = mmws.MMClient(KEY_B, url=sim.mm_url, **FAST).connect()
    try:
        collect_until(c, of_type(mmws.Subscribed))
        sim.revoke_key(KEY_B)
        sim.drop_connections()
        events = list(c)  # iteration ends on its own after the fatal Closed
        assert isinstance(events[-1], mmws.Closed)
        assert isinstance(events[-1].error, mmws.AuthenticationError)
        with pytest.raises(mmws.AuthenticationError):
            c.get(timeout=1)
    finally:
        c.close()


# -- delivery ---------------------------------------------------------------------------------


def test_slow_consumer_gets_every_order_exactly_once_in_order(sim: Simulator) -> None:
    count, maxsize = 3000, 100
    with mmws.MMClient(KEY, channels=["orders"], url=sim.mm_url, maxsize=maxsize,
                       **{**FAST, "ping_interval": 0.05, "pong_timeout": 0.2}) as c:
        collect_until(c, of_type(mmws.Subscribed))
        burst = threading.Thread(target=sim.burst, args=(count,), daemon=True)
        burst.start()
        ids: list[int] = []
        deepest = 0
        deadline = time.monotonic() + 60
        while len(ids) < count and time.monotonic() < deadline:
            event = c.get(timeout=5)
            deepest = max(deepest, c.queue.qsize())
            assert not isinstance(event, (mmws.Stale, mmws.Disconnected)), event
            if isinstance(event, mmws.OrderEvent):
                ids.append(event.payload.order_id)
                spin_until = time.perf_counter() + 0.0003  # a consumer slower than the burst
                while time.perf_counter() < spin_until:
                    pass
        burst.join(10)
    assert ids == list(range(1, count + 1))
    assert deepest <= maxsize


def test_emergency_is_delivered_ahead_of_a_backlog(client: mmws.MMClient, sim: Simulator) -> None:
    collect_until(client, of_type(mmws.Subscribed))
    for i in range(1, 51):
        sim.publish("orders", "INSERT", order(i))
    sim.publish("emergency", "UPDATE", {"emergency": True, "reason": "Manual trigger"})
    wait_until(lambda: client.queue.qsize() >= 51, what="the backlog")
    first = client.get(timeout=1)
    assert isinstance(first, mmws.EmergencyEvent)
    rest = [client.get(timeout=1) for _ in range(50)]
    assert [e.payload.order_id for e in rest] == list(range(1, 51))


def test_scores_coalesce_per_fixture_when_the_queue_is_full(sim: Simulator) -> None:
    with mmws.MMClient(KEY, channels=["scores"], url=sim.mm_url, maxsize=4, **FAST) as c:
        collect_until(c, of_type(mmws.Subscribed))
        for minute in range(1, 31):
            for fixture in ("f1", "f2"):
                sim.publish("scores", "UPDATE", {"fixtureId": fixture, "currentMinute": minute})
        wait_until(lambda: c.health().dropped.get("scores", 0) >= 50, what="coalescing")
        accounted = 0  # updates seen, as events or counted in Overflow notices

        def all_sixty(event: Any) -> bool:
            nonlocal accounted
            accounted += 1 if isinstance(event, mmws.ScoreEvent) else getattr(
                event, "dropped", 0)
            return accounted >= 60

        events = collect_until(c, all_sixty)
        with pytest.raises(queue.Empty):
            c.get(timeout=0.2)  # and nothing more
    scores = [e for e in events if isinstance(e, mmws.ScoreEvent)]
    overflow = [e for e in events if isinstance(e, mmws.Overflow)]
    latest = {e.payload.fixture_id: e.payload.current_minute for e in scores}
    assert latest == {"f1": 30, "f2": 30}
    assert sum(o.dropped for o in overflow) + len(scores) == 60
    assert overflow and overflow[0].channel == "scores"


# -- lifecycle and secrets ----------------------------------------------------------------


def test_close_is_prompt_with_a_stalled_server(client: mmws.MMClient, sim: Simulator) -> None:
    collect_until(client, of_type(mmws.Subscribed))
    sim.stall()
    started = time.monotonic()
    client.close(timeout=1.0)
    assert time.monotonic() - started < 2.5  # the contract: close() returns within timeout
    assert not any(t.name.startswith("mmws-") and t.is_alive() for t in client._engine._threads)
    sim.resume()


def test_close_sends_unsubscribe(sim: Simulator) -> None:
    c = mmws.MMClient(KEY, url=sim.mm_url, **FAST).connect()
    c.close()
    wait_until(lambda: any('"unsubscribe"' in str(m.data) for m in sim.received_messages()),
               what="unsubscribe on the wire")


def test_200_connect_close_cycles_leave_no_thread(sim: Simulator) -> None:
    baseline = threading.active_count()
    for _ in range(200):
        c = mmws.MMClient(KEY, url=sim.mm_url, **FAST)
        c.connect()
        c.close()
    wait_until(lambda: threading.active_count() <= baseline, timeout=5,
               what=f"threads back to {baseline}")
    assert not [t.name for t in threading.enumerate() if t.name.startswith("mmws-r")]


def test_two_clients_in_one_process_are_independent(sim: Simulator) -> None:
    with mmws.MMClient(KEY, url=sim.mm_url, **FAST) as a, \
            mmws.MMClient(KEY_B, url=sim.mm_url, **FAST) as b:
        a.close()
        sim.publish("scores", "UPDATE", {"fixtureId": "f3"})
        assert next_data(b).payload.fixture_id == "f3"


def test_the_key_never_appears_in_logs(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with mmws.MMClient(KEY, url=sim.mm_url, **FAST) as c:
        collect_until(c, of_type(mmws.Subscribed))
        sim.drop_connections()
        collect_until(c, of_type(mmws.Subscribed))
        text = repr(c) + repr(c.health())
    with pytest.raises(mmws.AuthenticationError) as info:
        mmws.MMClient(UNKNOWN_KEY, url=sim.mm_url, **FAST).connect()
    text += str(info.value) + repr(info.value)
    text += "\n".join(r.getMessage() for r in caplog.records)
    assert "connected to" in text  # the logs were captured
    assert KEY not in text and UNKNOWN_KEY not in text


def test_events_just_before_a_close_frame_are_delivered(sim: Simulator) -> None:
    """Frames that arrive in the same read as the close frame reach the consumer first."""
    for _ in range(5):
        with mmws.MMClient(KEY, url=sim.mm_url, **FAST) as c:
            collect_until(c, of_type(mmws.Subscribed))
            sim.stall()  # hold everything, then release data and close frame in one burst
            for i in range(1, 51):
                sim.publish("orders", "INSERT", order(i))
            sim.close_connections(1001, "going away")
            sim.resume()
            events = collect_until(c, of_type(mmws.Disconnected))
            ids = [e.payload.order_id for e in events if isinstance(e, mmws.OrderEvent)]
            assert ids == list(range(1, 51))


def test_a_server_that_keeps_closing_does_not_cause_a_reconnect_storm(sim: Simulator) -> None:
    """Each short-lived connection counts as a failure: the backoff keeps growing and is
    only reset after a connection stayed up for backoff_reset_after."""
    with mmws.MMClient(KEY, url=sim.mm_url, **{**FAST, "backoff_base": 0.01,
                                                "backoff_cap": 10.0,
                                                "backoff_reset_after": 30.0}) as c:
        collect_until(c, of_type(mmws.Subscribed))
        attempts = []
        for _ in range(4):
            sim.close_connections(1011, "internal error")
            attempts.append(collect_until(c, of_type(mmws.Reconnecting))[-1].attempt)
            collect_until(c, of_type(mmws.Subscribed))
        assert attempts == [1, 2, 3, 4]


def test_ping_measures_a_round_trip_on_mm_too() -> None:
    """``ping()`` goes through the same paced command path as the feed's, on both clients."""
    with Simulator(api_keys={KEY: "a"}, rate=0) as sim, \
            mmws.MMClient(KEY, url=sim.mm_url, ping_interval=None) as client:
        rtt = client.ping(timeout=5)
        assert 0 <= rtt < 5
        assert client.health().last_rtt == pytest.approx(rtt, abs=0.5)
        pings = [m for m in sim.received_messages() if m.json.get("type") == "ping"]
        assert len(pings) == 1
    with pytest.raises(mmws.LocalProtocolError, match="connect"):
        mmws.MMClient(KEY, url=sim.mm_url).ping()
