"""Each fault of the simulator, and its effect as a plain websocket-client sees it."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import websocket
from clientutil import wait_until

from mmws.sim import Simulator

KEY_A = "11111111-1111-4111-8111-111111111111"  # client-a (conftest's make_sim)

Connect = Callable[..., Any]  # conftest.connect -> conftest.Wire
MakeSim = Callable[..., Simulator]
LOST = (websocket.WebSocketConnectionClosedException, ConnectionError, OSError)


def mm(sim: Simulator, connect: Connect, channels: list[str] | None = None) -> Any:
    ws = connect(sim.mm_url)
    assert ws.subscribe(KEY_A, channels or ["orders", "scores"])["type"] == "subscribed"
    return ws


@pytest.mark.parametrize("reset", [True, False], ids=["rst", "fin"])
def test_drop_connections_cuts_tcp_without_a_close_frame(
    reset: bool, sim: Simulator, connect: Connect
) -> None:
    ws = mm(sim, connect)
    assert sim.drop_connections(reset=reset) == 1
    ws.ws.settimeout(2)
    with pytest.raises(LOST):
        opcode, _ = ws.ws.recv_data()
        pytest.fail(f"got a frame with opcode {opcode} instead of a lost connection")
    assert sim.wait_for(lambda: sim.stats.connections_active == 0, 2)


def test_close_connections_sends_code_and_reason_after_queued_frames(
    sim: Simulator, connect: Connect
) -> None:
    ws = mm(sim, connect)
    sim.publish("scores", "UPDATE", {"fixtureId": "f"})
    assert sim.close_connections(4000, "bye") == 1
    assert ws.recv()["channel"] == "scores"
    assert ws.recv_close() == (4000, "bye")


def test_stall_holds_everything_and_resume_releases_it(make_sim: MakeSim, connect: Connect) -> None:
    sim = make_sim(heartbeat_interval=0.05)
    ws = mm(sim, connect)
    assert ws.recv(timeout=1) == {"type": "heartbeat"}
    sim.stall()
    while not ws.silent(0.15):  # drain a heartbeat that was already on its way
        pass
    ws.send({"type": "ping"})
    ws.ws.ping(b"are you there")  # a WebSocket-level ping is not answered either
    sim.publish("scores", "UPDATE", {"fixtureId": "held"})
    assert ws.silent(0.3)  # no heartbeat, no pong, no broadcast, no control pong
    assert sim.stats.connections_active == 1  # the TCP connection is still open
    sim.resume()
    ws.ws.settimeout(2)
    opcode, data = ws.ws.recv_data(control_frame=True)
    while opcode == websocket.ABNF.OPCODE_TEXT and json.loads(data) == {"type": "heartbeat"}:
        opcode, data = ws.ws.recv_data(control_frame=True)  # one the writer held mid-stall
    assert (opcode, data) == (websocket.ABNF.OPCODE_PONG, b"are you there")
    not_heartbeat: Callable[[Any], bool] = lambda m: m["type"] != "heartbeat"  # noqa: E731
    assert ws.recv_until(not_heartbeat)["payload"] == {"fixtureId": "held"}  # queued, then
    assert ws.recv_until(not_heartbeat) == {"type": "pong"}
    assert ws.recv(timeout=1) == {"type": "heartbeat"}  # heartbeats resume


def test_pause_heartbeats_stops_only_heartbeats(make_sim: MakeSim, connect: Connect) -> None:
    sim = make_sim(heartbeat_interval=0.05)
    ws = mm(sim, connect)
    assert ws.recv(timeout=1) == {"type": "heartbeat"}
    sim.pause_heartbeats()
    while not ws.silent(0.15):  # drain one that was already queued
        pass
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}
    assert ws.silent(0.25)
    sim.resume_heartbeats()
    assert ws.recv(timeout=1) == {"type": "heartbeat"}


def test_delay_pongs(sim: Simulator, connect: Connect) -> None:
    ws = mm(sim, connect)
    sim.delay_pongs(0.3)
    sent = time.monotonic()
    ws.send({"type": "ping"})
    sim.publish("scores", "UPDATE", {"fixtureId": "f"})
    assert ws.recv()["type"] == "broadcast"  # other frames are not delayed
    assert ws.recv(timeout=2) == {"type": "pong"}
    assert time.monotonic() - sent >= 0.28
    sim.delay_pongs(math.inf)
    ws.send({"type": "ping"})
    assert ws.silent(0.3)
    sim.delay_pongs(0)
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}


def test_send_raw_reaches_every_connection_verbatim(sim: Simulator, connect: Connect) -> None:
    first = mm(sim, connect)
    second = connect(sim.mm_url)  # not even subscribed
    feed = connect(sim.feed_url)
    assert sim.wait_for(lambda: sim.stats.connections_active == 3, 2)
    assert sim.send_raw('{"type":"broadcast","channel":') == 3
    assert first.recv_text() == second.recv_text() == '{"type":"broadcast","channel":'
    assert feed.recv_text() == '{"type":"broadcast","channel":'
    assert sim.send_raw("only feed", endpoint="feed") == 1
    assert feed.recv_text() == "only feed"


def test_restart_drops_then_listens_again_on_the_same_port(
    sim: Simulator, connect: Connect
) -> None:
    ws = mm(sim, connect)
    port = sim.port
    sim.restart(down_for=2.0)
    ws.ws.settimeout(5)
    with pytest.raises(LOST):
        ws.ws.recv_data()
    with pytest.raises(ConnectionRefusedError):
        websocket.create_connection(sim.mm_url, timeout=1).close()
    assert sim.wait_for(lambda: sim.listening and sim.stats.restarts == 1, 6)
    assert sim.port == port
    again = mm(sim, connect)
    sim.publish("scores", "UPDATE", {"fixtureId": "after"})
    assert again.recv()["payload"] == {"fixtureId": "after"}


def test_restart_blocking(sim: Simulator, connect: Connect) -> None:
    mm(sim, connect)
    started = time.monotonic()
    sim.restart(down_for=0.1, wait=True)
    assert time.monotonic() - started >= 0.1
    assert sim.listening and sim.stats.restarts == 1
    mm(sim, connect)


@pytest.mark.parametrize("status", [429, 503])
def test_reject_handshakes(status: int, sim: Simulator, connect: Connect) -> None:
    sim.reject_handshakes(status)
    for url in (sim.mm_url, sim.feed_url):
        with pytest.raises(websocket.WebSocketBadStatusException) as caught:
            websocket.create_connection(url, timeout=2).close()
        assert caught.value.status_code == status
        assert caught.value.resp_headers["retry-after"] == "1"
    assert sim.stats.handshakes_rejected == 2
    sim.reject_handshakes(None)
    mm(sim, connect)


def test_slow_consumer_is_closed_when_its_queue_overflows(
    make_sim: MakeSim, connect: Connect
) -> None:
    sim = make_sim(max_send_queue=5)
    ws = mm(sim, connect)
    sim.stall()  # nothing drains: the queue only grows
    for i in range(10):
        sim.publish("scores", "UPDATE", {"fixtureId": str(i)})
    sim.resume()
    assert ws.recv_close() == (1008, "send queue overflow")


# -- the same faults on the feed endpoint ---------------------------------------------------


def test_feed_stall_and_resume(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.feed_url)
    sim.stall()
    ws.send({"action": "ping"})
    assert ws.silent(0.3)
    sim.resume()
    assert ws.recv()["type"] == "pong"


def test_feed_delay_pongs(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.feed_url)
    sim.delay_pongs(0.3)
    sent = time.monotonic()
    ws.send({"action": "ping"})
    assert ws.recv(timeout=2)["type"] == "pong"
    assert time.monotonic() - sent >= 0.28


def test_feed_drop_and_close(sim: Simulator, connect: Connect) -> None:
    first = connect(sim.feed_url)
    second = connect(sim.feed_url)
    mm_ws = mm(sim, connect)
    assert sim.wait_for(lambda: sim.stats.connections_active == 3, 2)
    assert sim.drop_connections(endpoint="feed") == 2
    for ws in (first, second):
        ws.ws.settimeout(2)
        with pytest.raises(LOST):
            ws.ws.recv_data()
    mm_ws.send({"type": "ping"})
    assert mm_ws.recv() == {"type": "pong"}  # the MM connection was not touched
    third = connect(sim.feed_url)
    assert sim.wait_for(lambda: sim.stats.connections_active == 2, 2)
    assert sim.close_connections(1012, "restarting", endpoint="feed") == 1
    assert third.recv_close() == (1012, "restarting")


# -- a client that does not read cannot wedge the controls ----------------------------------

BIG = 16 * 2**20  # one frame larger than any socket buffer: the writer blocks in sendall


def stuck_writer(sim: Simulator, connect: Connect) -> Any:
    """An MM client with a tiny receive buffer that does not read, and the simulator's writer
    blocked sending it one 16 MiB frame (holding websockets' protocol lock)."""
    ws = connect(
        sim.mm_url,
        sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)],
        skip_utf8_validation=True,  # pure-Python validation of 16 MiB is slow
    )
    assert ws.subscribe(KEY_A, ["scores"])["type"] == "subscribed"
    assert sim.publish("scores", "UPDATE", {"fixtureId": "big", "blob": "x" * BIG}) == 1
    (conn,) = sim._conns.values()  # white box: the only way to see the writer is inside send
    wait_until(lambda: conn.sending, 5, "the writer inside its send")
    return ws


def in_thread(fn: Callable[[], object], timeout: float) -> bool:
    """Run ``fn`` in a daemon thread; True if it returned within ``timeout``."""
    done = threading.Event()
    threading.Thread(target=lambda: (fn(), done.set()), daemon=True).start()
    return done.wait(timeout)


def sim_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mmws-sim-")]


def test_close_returns_with_a_client_that_does_not_read(
    make_sim: MakeSim, connect: Connect
) -> None:
    """Regression: close() flushed held frames itself and waited for the protocol lock that
    the blocked writer holds, forever. Now the writer flushes, and close() cuts the TCP
    connection after its grace, which frees the writer; every thread is joined."""
    sim = make_sim()
    stuck_writer(sim, connect)
    started = time.monotonic()
    assert in_thread(sim.close, 10), "Simulator.close() hung behind a client that does not read"
    assert time.monotonic() - started < 4
    assert not sim_threads()


def test_close_with_a_stalled_client_that_does_not_read(
    make_sim: MakeSim, connect: Connect
) -> None:
    sim = make_sim()
    ws = stuck_writer(sim, connect)
    sim.stall()
    ws.ws.ping(b"held")  # its pong is held by the stall; close() must not write it itself
    assert in_thread(sim.close, 10), "Simulator.close() hung behind a client that does not read"
    wait_until(lambda: not sim_threads(), 5, "every simulator thread ended")


def test_resume_returns_at_once_with_a_client_that_does_not_read(
    make_sim: MakeSim, connect: Connect
) -> None:
    """Regression: resume() flushed held frames itself, waiting for the protocol lock held by
    a writer blocked on a client that does not read. Now the writer flushes; resume() returns
    at once and the frames still arrive, in order, when the client reads."""
    sim = make_sim()
    ws = stuck_writer(sim, connect)
    other = mm(sim, connect)
    sim.stall()
    ws.ws.ping(b"late")  # answered after the frame being written
    sim.publish("scores", "UPDATE", {"fixtureId": "after"})
    assert in_thread(sim.resume, 5), "Simulator.resume() blocked behind a slow reader"
    assert other.recv()["payload"] == {"fixtureId": "after"}  # other connections flow
    ws.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2**20)  # read faster now
    ws.ws.settimeout(10)
    first = json.loads(ws.ws.recv_data()[1])
    assert first["payload"]["fixtureId"] == "big" and len(first["payload"]["blob"]) == BIG
    # websockets' reader thread answers the ping as soon as it gets the lock: before or
    # after the held broadcast.
    rest = {ws.ws.recv_data(control_frame=True) for _ in range(2)}
    assert (websocket.ABNF.OPCODE_PONG, b"late") in rest
    (after,) = [json.loads(data) for opcode, data in rest if opcode == websocket.ABNF.OPCODE_TEXT]
    assert after["payload"] == {"fixtureId": "after"}


def test_drop_connections_returns_with_a_client_that_does_not_read(
    make_sim: MakeSim, connect: Connect
) -> None:
    sim = make_sim()
    ws = stuck_writer(sim, connect)
    assert in_thread(sim.drop_connections, 5), "drop_connections() hung"
    assert sim.wait_for(lambda: sim.stats.connections_active == 0, 5)
    ws.ws.settimeout(5)
    with pytest.raises(LOST):
        while True:  # what was already in the client's buffer, then the cut
            ws.ws.recv_data()
