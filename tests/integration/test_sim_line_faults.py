"""Faults of one connection ("line") while another connection of the same key stays healthy
(issue 12: hot-standby clients hold two MM connections at once). Plain websocket-client
connections, and two MMClients at the end. Every read has a deadline; nothing sleeps to
synchronise: the tests check the order in which the two lines get their frames."""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import websocket
from clientutil import collect_until, of_type

import mmws
from mmws.errors import ConfigError
from mmws.sim import ConnectionInfo, Simulator

KEY_A = "11111111-1111-4111-8111-111111111111"  # client-a (conftest's make_sim)
KEY_A2 = "22222222-2222-4222-8222-222222222222"  # client-a too
UNKNOWN_KEY = "44444444-4444-4444-8444-444444444444"

Connect = Callable[..., Any]  # conftest.connect -> conftest.Wire
MakeSim = Callable[..., Simulator]
LOST = (websocket.WebSocketConnectionClosedException, ConnectionError, OSError)
DELAY = 0.5  # far longer than a loopback round trip and than the 0.1 s silences checked


def line(sim: Simulator, connect: Connect, key: str = KEY_A) -> tuple[Any, int]:
    """A subscribed MM connection and its ``ConnectionInfo.id`` (the newest of the key)."""
    ws = connect(sim.mm_url)
    assert ws.subscribe(key, ["orders", "scores"])["type"] == "subscribed"
    return ws, sim.mm_connections(key)[-1].id


def two_lines(sim: Simulator, connect: Connect) -> tuple[Any, int, Any, int]:
    a, a_id = line(sim, connect)
    b, b_id = line(sim, connect)
    assert a_id != b_id
    return a, a_id, b, b_id


def info(sim: Simulator, connection_id: int) -> ConnectionInfo:
    (found,) = [c for c in sim.connections if c.id == connection_id]
    return found


def publish(sim: Simulator, *names: str) -> None:
    for name in names:
        sim.publish("scores", "UPDATE", {"fixtureId": name})


def fixture_ids(ws: Any, count: int, timeout: float = 3.0) -> list[str]:
    return [ws.recv(timeout)["payload"]["fixtureId"] for _ in range(count)]


def silent_all(ws: Any, seconds: float) -> bool:
    """True if nothing at all arrives within ``seconds``, control frames (pongs) included."""
    ws.ws.settimeout(seconds)
    try:
        ws.ws.recv_data(control_frame=True)
    except websocket.WebSocketTimeoutException:
        return True
    return False


def drain(ws: Any, quiet: float = 0.15) -> None:
    """Read what was already on its way until ``quiet`` seconds pass without a frame (control
    frames included); fails, rather than loops, if frames keep coming."""
    for _ in range(5):
        if silent_all(ws, quiet):
            return
    raise AssertionError("frames keep coming")


def assert_lost(ws: Any) -> None:
    ws.ws.settimeout(3)
    with pytest.raises(LOST):
        while True:  # what was already on its way, then the cut
            ws.ws.recv_data()


def in_thread(fn: Callable[[], object]) -> threading.Event:
    done = threading.Event()
    threading.Thread(target=lambda: (fn(), done.set()), daemon=True).start()
    return done


def sim_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mmws-sim-")]


# -- finding the lines -----------------------------------------------------------------------


def test_mm_connections_lists_the_subscribed_lines_of_a_key_oldest_first(
    sim: Simulator, connect: Connect
) -> None:
    a, a_id, b, b_id = two_lines(sim, connect)
    unsubscribed = connect(sim.mm_url)
    other, other_id = line(sim, connect, KEY_A2)
    connect(sim.feed_url)
    assert sim.wait_for(lambda: sim.stats.connections_active == 5, 2)
    lines = sim.mm_connections(KEY_A)
    assert [c.id for c in lines] == [a_id, b_id]
    assert lines[0].opened_at <= lines[1].opened_at
    assert all(c.endpoint == "mm" and c.api_key == KEY_A and c.subscribed for c in lines)
    assert lines[0].subscription_id != lines[1].subscription_id
    assert all(c.delay == 0 and not c.half_open and not c.closing for c in lines)
    assert [c.id for c in sim.mm_connections()] == [a_id, b_id, other_id]
    unsubscribed.send({"type": "ping"})
    assert unsubscribed.recv() == {"type": "pong"}  # open, but never in mm_connections
    assert len(sim.mm_connections()) == 3
    a.send({"type": "unsubscribe"})
    a.send({"type": "ping"})
    assert a.recv() == {"type": "pong"}  # answered in order: the unsubscribe is done
    assert [c.id for c in sim.mm_connections(KEY_A)] == [b_id]
    assert b.silent(0.01) and other.silent(0.01)


def test_the_arguments_are_checked(sim: Simulator, connect: Connect) -> None:
    closed, closed_id = line(sim, connect)
    closed.ws.close()
    assert sim.wait_for(lambda: not info(sim, closed_id).open, 3)
    _, a_id = line(sim, connect)
    calls: list[tuple[Callable[..., object], tuple[Any, ...]]] = [
        (sim.delay_connection, (1.0,)),
        (sim.drop_connection, ()),
        (sim.half_open, ()),
    ]
    for bad_id in ("1", True, 1.0, None):
        for method, rest in calls:
            with pytest.raises(TypeError, match="connection_id"):
                method(bad_id, *rest)
    for missing in (closed_id, 999):
        for method, rest in calls:
            with pytest.raises(ConfigError, match=f"connection_id {missing}"):
                method(missing, *rest)
        with pytest.raises(ConfigError, match=f"connection_id {missing}"):
            sim.skip_broadcasts(1, missing)
    with pytest.raises(TypeError, match="seconds"):
        sim.delay_connection(a_id, "1")  # type: ignore[arg-type]
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="seconds"):
            sim.delay_connection(a_id, bad)
    with pytest.raises(TypeError, match="reset"):
        sim.drop_connection(a_id, reset=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="api_key"):
        sim.mm_connections(1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="api_key"):
        sim.mm_connections(UNKNOWN_KEY)
    info_a = info(sim, a_id)  # nothing was changed by the refused calls
    assert info_a.open and info_a.delay == 0 and not info_a.half_open and not info_a.closing


# -- delay -----------------------------------------------------------------------------------


def test_a_delayed_line_gets_every_frame_later_and_in_order(
    sim: Simulator, connect: Connect
) -> None:
    a, a_id, b, b_id = two_lines(sim, connect)
    sim.delay_connection(a_id, DELAY)
    assert info(sim, a_id).delay == DELAY and info(sim, b_id).delay == 0
    publish(sim, "1", "2", "3")
    assert fixture_ids(b, 3) == ["1", "2", "3"]  # B on time ...
    assert a.silent(0.1)  # ... while A has none of them yet
    assert fixture_ids(a, 3) == ["1", "2", "3"]  # then A gets all three, in order
    sim.delay_connection(a_id, 0)
    publish(sim, "4")
    assert fixture_ids(a, 1) == ["4"]  # on time again: before B is read at all
    assert fixture_ids(b, 1) == ["4"]


def test_the_delay_covers_replies_and_pongs_and_keeps_the_order(
    sim: Simulator, connect: Connect
) -> None:
    a, a_id, b, _ = two_lines(sim, connect)
    sim.delay_connection(a_id, DELAY)
    a.send({"type": "ping"})
    b.send({"type": "ping"})
    assert b.recv() == {"type": "pong"}
    assert a.silent(0.1)
    assert a.recv(3) == {"type": "pong"}
    publish(sim, "x")  # queued before the command below is even sent
    a.send({"type": "subscribe", "apiKey": KEY_A, "channels": ["bogus"]})  # an error reply
    assert fixture_ids(b, 1) == ["x"]
    assert a.silent(0.1)
    assert fixture_ids(a, 1) == ["x"]
    assert a.recv(3)["type"] == "error"


def test_ending_the_delay_does_not_let_later_frames_overtake(
    sim: Simulator, connect: Connect
) -> None:
    a, a_id, b, _ = two_lines(sim, connect)
    sim.delay_connection(a_id, DELAY)
    publish(sim, "early")
    sim.delay_connection(a_id, 0)
    publish(sim, "late")  # due at once, but queued behind "early"
    assert fixture_ids(b, 2) == ["early", "late"]
    assert a.silent(0.1)
    assert fixture_ids(a, 2) == ["early", "late"]


def test_the_delay_covers_heartbeats(make_sim: MakeSim, connect: Connect) -> None:
    sim = make_sim(heartbeat_interval=0.05)
    a, a_id, b, _ = two_lines(sim, connect)
    sim.delay_connection(a_id, 1.0)
    drain(a)  # what was queued before the delay
    assert b.recv() == {"type": "heartbeat"}  # B's keep coming; A's are held back
    assert a.silent(0.2)
    assert a.recv(3) == {"type": "heartbeat"}


def test_the_delay_survives_a_stall(sim: Simulator, connect: Connect) -> None:
    a, a_id, b, _ = two_lines(sim, connect)
    sim.delay_connection(a_id, DELAY)
    sim.stall()
    publish(sim, "held")
    sim.resume()  # at once: A's frame is not due yet
    assert fixture_ids(b, 1) == ["held"]
    assert a.silent(0.1)
    assert fixture_ids(a, 1) == ["held"]


def test_a_frame_due_during_a_stall_waits_for_the_resume(
    sim: Simulator, connect: Connect
) -> None:
    a, a_id, b, _ = two_lines(sim, connect)
    sim.delay_connection(a_id, 0.1)
    sim.stall()
    publish(sim, "held")
    assert a.silent(0.3) and b.silent(0.01)  # due, but the stall holds it
    sim.resume()
    assert fixture_ids(a, 1) == ["held"]
    assert fixture_ids(b, 1) == ["held"]


def test_a_delayed_burst_is_written_in_order(sim: Simulator, connect: Connect) -> None:
    a, a_id, b, _ = two_lines(sim, connect)
    sim.delay_connection(a_id, DELAY)
    done = in_thread(lambda: sim.burst(5))
    ids = [b.recv()["payload"]["orderId"] for _ in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert not done.is_set()  # burst() blocks until A's copies are written too
    assert a.silent(0.1)
    assert [a.recv(3)["payload"]["orderId"] for _ in range(5)] == [1, 2, 3, 4, 5]
    assert done.wait(3)
    assert sim.last_burst is not None and sim.last_burst.frames == 10


def test_close_writes_a_delayed_queue_at_once(make_sim: MakeSim, connect: Connect) -> None:
    sim = make_sim()
    a, a_id = line(sim, connect)
    sim.delay_connection(a_id, 60.0)
    publish(sim, "1", "2", "3")
    started = time.monotonic()
    done = in_thread(sim.close)
    assert fixture_ids(a, 3) == ["1", "2", "3"]  # not dropped: written at once
    assert a.recv_close() == (1001, "server shutting down")
    assert done.wait(4), "Simulator.close() waited for a delayed frame"
    assert time.monotonic() - started < 4  # the delay (60 s) and close()'s timeout (5 s)
    assert not sim_threads()


def test_drop_connection_ends_a_delayed_line_at_once(sim: Simulator, connect: Connect) -> None:
    a, a_id, b, b_id = two_lines(sim, connect)
    sim.delay_connection(a_id, 60.0)
    publish(sim, "1")
    assert fixture_ids(b, 1) == ["1"]
    sim.drop_connection(a_id)
    assert_lost(a)
    # Its writer does not wait 60 s (nor the server side the writer's join, 3 s).
    assert sim.wait_for(lambda: not info(sim, a_id).open, 2)
    assert [c.id for c in sim.active_connections] == [b_id]


# -- drop ------------------------------------------------------------------------------------


@pytest.mark.parametrize("reset", [True, False], ids=["rst", "fin"])
def test_dropping_one_line_leaves_the_other_receiving(
    reset: bool, sim: Simulator, connect: Connect
) -> None:
    a, a_id, b, b_id = two_lines(sim, connect)
    sim.drop_connection(a_id, reset=reset)
    assert [c.id for c in sim.mm_connections(KEY_A)] == [b_id]  # cut: left out at once
    assert_lost(a)
    publish(sim, "after")
    assert fixture_ids(b, 1) == ["after"]
    assert sim.wait_for(lambda: not info(sim, a_id).open, 3)
    assert info(sim, a_id).close_code == 1006  # no closing handshake either way
    assert info(sim, b_id).open
    with pytest.raises(ConfigError, match=f"connection_id {a_id}"):
        sim.drop_connection(a_id)


# -- half-open -------------------------------------------------------------------------------


def test_a_half_open_line_gets_nothing_while_the_other_gets_everything(
    make_sim: MakeSim, connect: Connect
) -> None:
    sim = make_sim(heartbeat_interval=0.05)
    a, a_id, b, b_id = two_lines(sim, connect)
    sim.half_open(a_id)
    assert info(sim, a_id).half_open and not info(sim, b_id).half_open
    drain(a)  # what was already on its way
    written = info(sim, a_id).frames_sent
    a.send({"type": "ping"})
    a.ws.ping(b"anyone?")  # not even websockets' own pong
    b.send({"type": "ping"})
    sent = sim.publish("scores", "UPDATE", {"fixtureId": "only-b"})
    assert sent == 1
    not_heartbeat: Callable[[Any], bool] = lambda m: m["type"] != "heartbeat"  # noqa: E731
    got = [b.recv_until(not_heartbeat), b.recv_until(not_heartbeat)]
    assert {"type": "pong"} in got and any(m.get("type") == "broadcast" for m in got)
    assert b.recv() == {"type": "heartbeat"}  # B's heartbeats flow
    assert silent_all(a, 0.3)  # A: no pong, no broadcast, no heartbeat
    assert info(sim, a_id).frames_sent == written  # none even queued for it
    # A's ping arrived and was recorded, just not answered; the connection is open.
    assert sim.wait_for(lambda: len(info(sim, a_id).received) == 2, 2)
    assert info(sim, a_id).received[-1].json == {"type": "ping"}
    assert info(sim, a_id).open and [c.id for c in sim.mm_connections(KEY_A)] == [a_id, b_id]
    a.send({"type": "unsubscribe"})  # not acted on either ...
    a.send({"type": "ping"})
    assert sim.wait_for(lambda: len(info(sim, a_id).received) == 4, 2)  # ... when the next is read
    assert info(sim, a_id).subscribed and len(sim.mm_connections(KEY_A)) == 2
    sim.drop_connection(a_id)  # still cuts it
    assert_lost(a)
    assert sim.wait_for(lambda: not info(sim, a_id).open, 2)
    b.send({"type": "ping"})
    assert b.recv_until(not_heartbeat) == {"type": "pong"}


def test_what_was_held_for_a_half_open_line_is_never_delivered(
    sim: Simulator, connect: Connect
) -> None:
    a, a_id, b, _ = two_lines(sim, connect)
    sim.delay_connection(a_id, DELAY)
    publish(sim, "queued")  # waits in A's queue (its delay) ...
    sim.stall()
    a.ws.ping(b"held")  # ... and websockets' pong in the stall's hold
    publish(sim, "stalled")
    sim.half_open(a_id)
    written = info(sim, a_id).frames_sent
    sim.resume()
    assert fixture_ids(b, 2) == ["queued", "stalled"]
    assert silent_all(a, DELAY + 0.3)  # past the delay: still nothing
    assert info(sim, a_id).frames_sent == written  # dropped, not written into the void


def test_a_half_open_line_fin_drop(sim: Simulator, connect: Connect) -> None:
    a, a_id, b, _ = two_lines(sim, connect)
    sim.half_open(a_id)
    sim.drop_connection(a_id, reset=False)
    assert_lost(a)
    publish(sim, "b")
    assert fixture_ids(b, 1) == ["b"]


def test_close_cuts_a_half_open_line_at_once(make_sim: MakeSim, connect: Connect) -> None:
    """A half-open connection cannot get the close frame: close() cuts it instead of waiting
    its grace (1 s here) for a closing handshake that cannot happen."""
    sim = make_sim(close_timeout=5.0)
    a, a_id = line(sim, connect)
    sim.half_open(a_id)
    started = time.monotonic()
    done = in_thread(sim.close)
    assert done.wait(5), "Simulator.close() hung on a half-open connection"
    assert time.monotonic() - started < 0.8
    assert not sim_threads()
    assert_lost(a)


# -- with skip_broadcasts --------------------------------------------------------------------


def test_skip_on_one_line_and_delay_on_the_other(sim: Simulator, connect: Connect) -> None:
    a, a_id, b, b_id = two_lines(sim, connect)
    sim.skip_broadcasts(1, a_id)
    sim.delay_connection(b_id, DELAY)
    publish(sim, "1", "2", "3")
    assert fixture_ids(a, 2) == ["2", "3"]  # A: on time, but without the first
    assert b.silent(0.1)  # B: nothing yet ...
    assert fixture_ids(b, 3) == ["1", "2", "3"]  # ... then all three, in order
    assert a.silent(0.1)
    assert (info(sim, a_id).skipped, info(sim, b_id).skipped) == (1, 0)
    assert (info(sim, a_id).delay, info(sim, b_id).delay) == (0, DELAY)


def test_a_half_open_line_does_not_use_up_the_skip_and_duplicate_counts(
    sim: Simulator, connect: Connect
) -> None:
    a, a_id, b, b_id = two_lines(sim, connect)
    sim.skip_broadcasts(1, b_id)
    sim.half_open(a_id)
    sim.skip_broadcasts(1, a_id)  # allowed on an open connection; it gets nothing anyway
    publish(sim, "skipped-on-b")
    sim.duplicate_broadcasts(1)
    assert sim.publish("scores", "UPDATE", {"fixtureId": "twice"}) == 1
    assert fixture_ids(b, 2) == ["twice", "twice"]
    assert (info(sim, a_id).skipped, info(sim, b_id).skipped) == (0, 1)
    assert silent_all(a, 0.1)


# -- two MMClients -----------------------------------------------------------------------------


FAST: dict[str, Any] = dict(ping_interval=0.1, pong_timeout=0.3, heartbeat_timeout=None,
                            backoff_base=0.02, backoff_cap=0.1, connect_timeout=2.0)


def test_two_clients_one_half_open_notices_by_its_keepalive(sim: Simulator) -> None:
    with mmws.MMClient(KEY_A, url=sim.mm_url, channels=["orders"], **FAST) as first:
        collect_until(first, of_type(mmws.Subscribed))
        (first_line,) = sim.mm_connections(KEY_A)
        with mmws.MMClient(KEY_A, url=sim.mm_url, channels=["orders"], **FAST) as second:
            collect_until(second, of_type(mmws.Subscribed))
            lines = sim.mm_connections(KEY_A)
            assert [c.id for c in lines][:1] == [first_line.id] and len(lines) == 2
            sim.half_open(first_line.id)
            sim.publish("orders", "INSERT", {"orderId": 1})
            got = collect_until(second, of_type(mmws.OrderEvent))[-1]
            assert got.payload.order_id == 1
            events = collect_until(first, of_type(mmws.Disconnected), timeout=5)
            assert not any(isinstance(e, mmws.OrderEvent) for e in events), events
            assert isinstance(events[-2], mmws.Stale), events  # its pong never came
            collect_until(first, of_type(mmws.Subscribed), timeout=5)  # a new line
            assert sim.wait_for(
                lambda: len([c for c in sim.mm_connections(KEY_A) if not c.half_open]) == 2, 3
            )
            sim.publish("orders", "INSERT", {"orderId": 2})
            for client in (first, second):
                got = collect_until(client, of_type(mmws.OrderEvent))[-1]
                assert got.payload.order_id == 2


def test_two_clients_one_delayed(sim: Simulator) -> None:
    slow_pongs = {**FAST, "pong_timeout": 2.0}  # the delayed line's pongs are late, not lost
    with mmws.MMClient(KEY_A, url=sim.mm_url, channels=["orders"], **slow_pongs) as first:
        collect_until(first, of_type(mmws.Subscribed))
        (first_line,) = sim.mm_connections(KEY_A)
        with mmws.MMClient(KEY_A, url=sim.mm_url, channels=["orders"], **slow_pongs) as second:
            collect_until(second, of_type(mmws.Subscribed))
            sim.delay_connection(first_line.id, DELAY)
            for order_id in (1, 2, 3):
                sim.publish("orders", "INSERT", {"orderId": order_id})
            assert order_ids(second, 3) == [1, 2, 3]
            with pytest.raises(queue.Empty):  # the first client has none of them yet
                first.get(timeout=0.1)
            assert order_ids(first, 3) == [1, 2, 3]
            assert sim.mm_connections(KEY_A)[0].id == first_line.id  # the same line


def order_ids(client: mmws.MMClient, count: int) -> list[int]:
    events = collect_until(
        client, lambda e: isinstance(e, mmws.OrderEvent) and e.payload.order_id == count
    )
    assert not any(isinstance(e, (mmws.Stale, mmws.Disconnected)) for e in events), events
    return [e.payload.order_id for e in events if isinstance(e, mmws.OrderEvent)]
