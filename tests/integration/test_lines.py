"""Hot standby, MMClient(lines=2): two live connections merged into one stream, against the
simulator (real sockets, 127.0.0.1)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from clientutil import collect_until, wait_until
from test_state_client import FAST, equal, rest_for

import mmws
from mmws import GapDetected, MMClient, Resynced
from mmws.mm.protocol import MMProtocol
from mmws.mm.state import entity_of
from mmws.sim import Simulator
from mmws.sim.actions import encode

LINE_FAST: dict[str, Any] = {k: v for k, v in FAST.items() if k != "resync_backoff"}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(rate=0, heartbeat_interval=None) as server:
        yield server


def two_lines(sim: Simulator, **options: Any) -> MMClient:
    settings = {**LINE_FAST, **options}
    return MMClient(sim.api_key, url=sim.mm_url, lines=2, **settings)


def both_up(sim: Simulator, client: MMClient) -> None:
    wait_until(
        lambda: [h.state for h in client.health().lines] == ["connected", "connected"]
        and len([c for c in sim.active_connections if c.endpoint == "mm"]) == 2,
        5,
        "both lines to be up",
    )


def expected_events(frames: list[str]) -> list[Any]:
    proto = MMProtocol()
    proto.subscribe(sim_key(), list(mmws.CHANNELS))
    proto.receive_text('{"type": "subscribed", "subscriptionId": 1}', 0.0)
    proto.events_received()
    out = []
    for frame in frames:
        proto.receive_text(frame, 0.0)
        out.extend(proto.events_received())
    return out


def same_stream(got: list[Any], expected: list[Any]) -> None:
    """Each broadcast once, in the order sent; ``emergency`` jumps ahead of a backlog (its
    lane), so it is compared on its own."""
    def split(events: list[Any]) -> tuple[list[Any], list[Any]]:
        urgent = [e for e in events if isinstance(e, mmws.EmergencyEvent)]
        return [e for e in events if not isinstance(e, mmws.EmergencyEvent)], urgent

    assert split(got) == split(expected)


def sim_key() -> str:
    return "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"


def broadcasts(
    client: MMClient, count: int, timeout: float = 10.0, others: list[Any] | None = None
) -> list[Any]:
    """The next ``count`` broadcasts; the other events go to ``others`` if given."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(out)} of {count} broadcasts arrived"
        try:
            event = client.get(timeout=min(left, 0.5))
        except Exception:
            continue
        if isinstance(event, mmws.Broadcast):
            out.append(event)
        elif others is not None:
            others.append(event)
    return out


def test_every_broadcast_arrives_once_in_the_order_sent(sim: Simulator) -> None:
    with two_lines(sim) as client:
        both_up(sim, client)
        sent = sim.step(300)
        got = broadcasts(client, 300)
        same_stream(got, expected_events([encode(e.frame()) for e in sent]))
        lines = client.health().lines
        assert sum(h.accepted for h in lines) == 300
        wait_until(  # the other copy of each, discarded
            lambda: sum(h.duplicates for h in client.health().lines) == 300, 5, "the copies"
        )


def test_the_same_content_sent_twice_is_delivered_twice(sim: Simulator) -> None:
    with two_lines(sim) as client:
        both_up(sim, client)
        payload = {"fixtureId": "id7", "live": True, "currentMinute": 3}
        for _ in range(3):
            sim.publish("scores", "UPDATE", payload)
        sim.publish("scores", "UPDATE", {**payload, "currentMinute": 4})
        got = broadcasts(client, 4)
        assert [e.payload.current_minute for e in got] == [3, 3, 3, 4]


def test_a_line_lost_while_the_other_carries_the_stream_loses_nothing(sim: Simulator) -> None:
    with two_lines(sim, line_events=True) as client:
        both_up(sim, client)
        first, _ = sorted(c.id for c in sim.active_connections if c.endpoint == "mm")
        sim.drop_connection(first)
        sent = sim.step(100)
        got = broadcasts(client, 100)
        same_stream(got, expected_events([encode(e.frame()) for e in sent]))
        wait_until(lambda: client.health().failovers == 1, 5, "the failover to be counted")
        both_up(sim, client)
        sent = sim.step(50)
        same_stream(broadcasts(client, 50), expected_events([encode(e.frame()) for e in sent]))
        health = client.health()
        assert health.reconnects == 0  # the stream itself never went down
        assert sorted(h.reconnects for h in health.lines) == [0, 1]


def test_line_events_carry_the_line_and_the_stream_events_come_when_all_are_down(
    sim: Simulator,
) -> None:
    with two_lines(sim, line_events=True) as client:
        both_up(sim, client)
        collect_until(client, lambda e: isinstance(e, mmws.Subscribed) and e.line == 1)
        ids = sorted(c.id for c in sim.active_connections if c.endpoint == "mm")
        sim.drop_connection(ids[0])
        events = collect_until(
            client, lambda e: isinstance(e, mmws.Subscribed) and e.line is not None
        )
        disconnects = [e for e in events if isinstance(e, mmws.Disconnected)]
        assert disconnects and all(e.line in (0, 1) for e in disconnects)
        both_up(sim, client)
        sim.drop_connections()
        events = collect_until(
            client, lambda e: isinstance(e, mmws.Subscribed) and e.line is None
        )
        stream = [e for e in events if getattr(e, "line", 0) is None]
        assert [type(e).__name__ for e in stream] == ["Disconnected", "Connected", "Subscribed"]


def test_without_line_events_only_the_stream_level_events_are_delivered(sim: Simulator) -> None:
    with two_lines(sim) as client:
        both_up(sim, client)
        ids = sorted(c.id for c in sim.active_connections if c.endpoint == "mm")
        sim.drop_connection(ids[1])
        both_up(sim, client)
        sim.publish("scores", "UPDATE", {"fixtureId": "idX"})
        events = collect_until(client, lambda e: isinstance(e, mmws.ScoreEvent))
        kinds = [type(e).__name__ for e in events]
        assert kinds[:2] == ["Connected", "Subscribed"]
        assert "Disconnected" not in kinds and "Reconnecting" not in kinds


def test_a_broadcast_both_lines_miss_is_a_gap_with_state(sim: Simulator) -> None:
    order = {"orderId": 3, "orderStatus": "PLACED", "matchedStake": 0.0,
             "createdAt": "2026-11-30T10:00:00Z"}  # fmt: skip
    with two_lines(sim, state=True, rest=rest_for(sim), resync_backoff=0.01) as client:
        both_up(sim, client)
        sim.publish("orders", "INSERT", order)
        sim.skip_broadcasts(1)  # each connection skips the next one: both miss it
        sim.publish("orders", "UPDATE", {"orderId": 3, "matchedStake": 5.0},
                    {"matchedStake": 0.0})  # fmt: skip
        sim.publish("orders", "UPDATE", {"orderId": 3, "matchedStake": 9.0},
                    {"matchedStake": 5.0})  # fmt: skip
        events = collect_until(client, lambda e: isinstance(e, Resynced) and e.reason == "gap")
        assert [e for e in events if isinstance(e, GapDetected)] == [
            GapDetected("orders", 3, "matched_stake", 0.0, 5.0)
        ]
        wait_until(lambda: client.state.synced and equal(client.state.snapshot(), sim.truth()))


def per_field(events: list[Any]) -> dict[Any, list[Any]]:
    """The values each broadcast set in each field of each order, bet and account, in the
    order given (a field a partial UPDATE leaves out is not set by it)."""
    out: dict[Any, list[Any]] = {}
    for event in events:
        entity = entity_of(event)
        if entity is None:
            continue
        payload = event.payload
        for field in attrs.fields(type(payload)):
            value = getattr(payload, field.name)
            if value is not None or field.name in event.old:
                out.setdefault((entity, field.name), []).append(value)
    return out


def test_a_broadcast_one_line_misses_comes_from_the_other(sim: Simulator) -> None:
    """Exactly once each, and with the state cache each field of each order, bet and
    account changes in the server's order: a copy that does not follow on waits until the
    other line brings the one before it. No gap, no resync. (A long ``line_hold``: a loaded
    machine may stall a reader for longer than the default.)"""
    with two_lines(sim, state=True, rest=rest_for(sim), resync_backoff=0.01,
                   line_hold=3) as client:  # fmt: skip
        both_up(sim, client)
        resyncs = client.state.resyncs
        ids = sorted(c.id for c in sim.active_connections if c.endpoint == "mm")
        sim.skip_broadcasts(5, connection_id=ids[0])
        sim.delay_connection(ids[1], 0.02)  # the skipping line is the faster one
        sent = sim.step(40)
        got = broadcasts(client, 40)
        expected = expected_events([encode(e.frame()) for e in sent])
        assert Counter(map(hash, got)) == Counter(map(hash, expected))
        assert per_field(got) == per_field(expected)
        wait_until(
            lambda: client.state.synced and equal(client.state.snapshot(), sim.truth()), 10
        )
        assert client.state.gaps == 0 and client.state.resyncs == resyncs


def _fill_skipped_on_the_fast_line(sim: Simulator, client: MMClient) -> list[Any]:
    """Order 4 is placed; line 0 misses its first fill and line 1 runs 300 ms late: line 0
    brings the second fill first, whose ``old`` does not match."""
    order = {"orderId": 4, "orderStatus": "PLACED", "matchedStake": 0.0,
             "createdAt": "2026-11-30T10:00:00Z"}  # fmt: skip
    both_up(sim, client)
    ids = sorted(c.id for c in sim.active_connections if c.endpoint == "mm")
    sim.publish("orders", "INSERT", order)
    assert [e.payload.order_id for e in broadcasts(client, 1)] == [4]
    sim.delay_connection(ids[1], 0.3)
    sim.skip_broadcasts(1, connection_id=ids[0])
    sim.publish("orders", "UPDATE", {"orderId": 4, "matchedStake": 5.0}, {"matchedStake": 0.0})
    sim.publish("orders", "UPDATE", {"orderId": 4, "matchedStake": 9.0}, {"matchedStake": 5.0})
    return collect_until(client, lambda e: getattr(e, "payload", None) is not None
                         and e.payload.matched_stake == 9.0)  # fmt: skip


def test_a_copy_that_does_not_follow_on_waits_for_the_line_that_has_the_one_before(
    sim: Simulator,
) -> None:
    with two_lines(sim, state=True, rest=rest_for(sim), resync_backoff=0.01,
                   line_hold=3) as client:  # fmt: skip
        events = _fill_skipped_on_the_fast_line(sim, client)
        fills = [e.payload.matched_stake for e in events if isinstance(e, mmws.OrderEvent)]
        assert fills == [5.0, 9.0]  # the server's order, though 9.0 came first on line 0
        assert not [e for e in events if isinstance(e, GapDetected)]
        assert client.health().held == 1
        assert client.state.orders[4].matched_stake == 9.0 and client.state.synced


def test_without_holding_the_same_fills_come_out_of_order_and_show_a_gap(sim: Simulator) -> None:
    """``line_hold=0``: first-copy order; the state sees the gap and resyncs."""
    with two_lines(sim, state=True, rest=rest_for(sim), resync_backoff=0.01,
                   line_hold=0) as client:  # fmt: skip
        events = _fill_skipped_on_the_fast_line(sim, client)
        assert [e.payload.matched_stake for e in events if isinstance(e, mmws.OrderEvent)] == [
            9.0
        ]
        gap = client.get(timeout=5)  # queued right after the broadcast that shows it
        assert isinstance(gap, GapDetected) and (gap.key, gap.expected) == (4, 0.0)
        assert client.health().held == 0
        late = collect_until(client, lambda e: isinstance(e, mmws.OrderEvent))
        assert late[-1].payload.matched_stake == 5.0  # line 1's copy, after the newer one
        wait_until(lambda: client.state.synced and equal(client.state.snapshot(), sim.truth()))


def test_a_held_copy_goes_out_when_the_other_line_goes_down(sim: Simulator) -> None:
    """Nobody can bring the missing fill any more: the held one goes out at once (before
    its deadline of 30 s) and shows the gap."""
    order = {"orderId": 5, "orderStatus": "PLACED", "matchedStake": 0.0,
             "createdAt": "2026-11-30T10:00:00Z"}  # fmt: skip
    with two_lines(sim, state=True, rest=rest_for(sim), resync_backoff=0.01, line_hold=30,
                   line_window=60) as client:  # fmt: skip
        both_up(sim, client)
        ids = sorted(c.id for c in sim.active_connections if c.endpoint == "mm")
        sim.publish("orders", "INSERT", order)
        broadcasts(client, 1)
        sim.half_open(ids[1])  # line 1 brings nothing from now on
        sim.skip_broadcasts(1, connection_id=ids[0])
        sim.publish("orders", "UPDATE", {"orderId": 5, "matchedStake": 5.0}, {"matchedStake": 0.0})
        sim.publish("orders", "UPDATE", {"orderId": 5, "matchedStake": 9.0}, {"matchedStake": 5.0})
        wait_until(lambda: client.health().held == 1, 5, "the fill to be held")
        started = time.monotonic()
        sim.drop_connection(ids[1])
        events = collect_until(client, lambda e: isinstance(e, GapDetected), timeout=10)
        assert time.monotonic() - started < 10
        assert [e.payload.matched_stake for e in events if isinstance(e, mmws.OrderEvent)] == [
            9.0
        ]


def test_with_state_a_lost_line_needs_no_resync_but_losing_both_does(sim: Simulator) -> None:
    with two_lines(sim, state=True, rest=rest_for(sim), resync_backoff=0.01) as client:
        both_up(sim, client)
        resyncs = client.state.resyncs
        ids = sorted(c.id for c in sim.active_connections if c.endpoint == "mm")
        sim.drop_connection(ids[0])
        sim.step(30)
        both_up(sim, client)
        sim.step(30)
        wait_until(lambda: equal(client.state.snapshot(), sim.truth()), 5)
        assert client.state.resyncs == resyncs and client.state.synced
        sim.drop_connections()
        sim.step(30)  # lost for good: nobody listens
        collect_until(client, lambda e: isinstance(e, Resynced) and e.reason == "reconnect")
        wait_until(lambda: equal(client.state.snapshot(), sim.truth()), 5)


def test_lines_must_be_one_to_five(sim: Simulator, tmp_path: Path) -> None:
    for bad in (0, 6, True, 2.0, "2"):
        with pytest.raises(mmws.ConfigError, match="lines must be"):
            MMClient(sim.api_key, url=sim.mm_url, lines=bad)  # type: ignore[arg-type]
    with pytest.raises(mmws.ConfigError, match="record="):
        MMClient(sim.api_key, url=sim.mm_url, lines=2, record=tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()
    for hold in (-0.1, 11.0, True, "1"):
        with pytest.raises(mmws.ConfigError, match=r"line_hold must be .* got"):
            MMClient(sim.api_key, url=sim.mm_url, lines=2, line_hold=hold)  # type: ignore[arg-type]
    MMClient(sim.api_key, url=sim.mm_url, lines=2, line_hold=0).close()


def test_pongs_are_delivered_with_deliver_keepalive_and_never_taken_for_copies(
    sim: Simulator,
) -> None:
    """Keepalive pongs are not broadcasts: each line's own reach the queue, in order with the
    data, and the broadcasts still come once each."""
    with two_lines(sim, deliver_keepalive=True, ping_interval=0.05) as client:
        both_up(sim, client)
        sent = sim.step(20)
        expected = expected_events([encode(e.frame()) for e in sent])
        got: list[Any] = []
        pongs = 0
        deadline = time.monotonic() + 5
        while (len(got) < 20 or pongs < 10) and time.monotonic() < deadline:
            event = client.get(timeout=1)
            if isinstance(event, mmws.Pong):
                pongs += 1
                assert event.rtt is not None
            elif isinstance(event, mmws.Broadcast):
                got.append(event)
        assert pongs >= 10 and Counter(map(hash, got)) == Counter(map(hash, expected))
        wait_until(lambda: sum(h.duplicates for h in client.health().lines) == 20, 5,
                   "the other copy of each broadcast, and nothing else, to be a duplicate")
        assert all(h.last_rtt is not None for h in client.health().lines)


def _mmws_threads() -> list[str]:
    return sorted(
        t.name for t in threading.enumerate()
        if t.name.startswith("mmws-") and not t.name.startswith("mmws-sim") and t.is_alive()
    )  # fmt: skip


def test_threads_say_which_line_and_all_end_after_close(sim: Simulator) -> None:
    client = two_lines(sim, on_event=lambda e: None).connect()
    wanted = {f"mmws-{role}-{line}" for role in ("reader", "keepalive", "writer")
              for line in (0, 1)} | {"mmws-dispatch"}  # fmt: skip
    try:
        wait_until(lambda: wanted <= set(_mmws_threads()), 5, "the threads of both lines")
    finally:
        client.close()
    wait_until(lambda: not _mmws_threads(), 5, "every thread to end")


@pytest.mark.slow
def test_200_connect_close_cycles_leave_no_thread(sim: Simulator) -> None:
    baseline = threading.active_count()
    for _ in range(200):
        client = two_lines(sim)
        try:
            client.connect()
        finally:
            client.close()
    wait_until(lambda: threading.active_count() <= baseline, 10, "threads back to the baseline")
    assert not _mmws_threads()


def test_a_connection_limit_on_one_line_does_not_stop_the_other() -> None:
    with (
        Simulator(rate=0, heartbeat_interval=None, max_connections_per_key=1) as sim,
        two_lines(sim) as client,
    ):
        sent = sim.step(20)
        same_stream(broadcasts(client, 20), expected_events([encode(e.frame()) for e in sent]))
        lines = client.health().lines
        assert lines[0].state == "connected" and lines[1].state != "connected"
        assert len(sim.mm_connections()) == 1  # never more than the server allows


def test_a_key_refused_on_reconnect_closes_the_whole_client(sim: Simulator) -> None:
    with two_lines(sim) as client:
        both_up(sim, client)
        sim.revoke_key(sim.api_key)
        sim.drop_connections()
        events = collect_until(client, lambda e: isinstance(e, mmws.Closed), 10)
        assert isinstance(events[-1].error, mmws.AuthenticationError)
        assert client.health().state == "closed"
    wait_until(lambda: not _mmws_threads(), 5, "every thread to end")


def test_closing_while_the_second_line_still_connects_never_fails(sim: Simulator) -> None:
    """close() joined a thread that a line's background connect had listed but not yet
    started ('cannot join thread before it is started': seen once in the docs' example)."""
    baseline = threading.active_count()
    for _ in range(30):
        client = MMClient(sim.api_key, url=sim.mm_url, lines=2, backoff_base=0.01)
        client.connect()  # the first line; the second connects in the background
        client.close()  # raises nothing, whatever the second line is doing
    wait_until(lambda: threading.active_count() <= baseline, 10, "every thread gone")
