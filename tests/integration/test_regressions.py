"""Regression tests for defects found in review, each proven against the simulator first."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from clientutil import KEY, collect_until, of_type, wait_until

import mmws
from mmws.sim import Simulator

FAST: dict[str, Any] = dict(ping_interval=0.1, pong_timeout=1.0, heartbeat_timeout=1.0,
                            backoff_base=0.02, backoff_cap=0.05, connect_timeout=4.0)
FEED: dict[str, Any] = dict(ping_interval=5.0, pong_timeout=3.0, connect_timeout=5.0,
                            backoff_base=0.05, backoff_cap=0.1)
PRO = "prototoken0000000000000000000001"
GOOD = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
WRONG = "ffffeeeeddddccccbbbbaaaa99998888"


def quiet_sim(**options: Any) -> Simulator:
    return Simulator(rate=0, heartbeat_interval=None, feed_rate=0, feed_batch_interval=None,
                     **options)


def feed_conn(sim: Simulator) -> Any:
    return [c for c in sim.active_connections if c.endpoint == "feed"][-1]


# -- MM: a connection-limit close without an error frame ------------------------------------


def test_a_limit_close_without_error_frame_is_a_connection_limit_error() -> None:
    with Simulator(api_keys={KEY: "a"}, rate=0, max_connections_per_key=1,
                   send_error_frames=False) as sim, mmws.MMClient(KEY, url=sim.mm_url, **FAST), \
            pytest.raises(mmws.ConnectionLimitError):
        mmws.MMClient(KEY, url=sim.mm_url, **FAST).connect()


def test_a_reconnect_into_the_limit_keeps_retrying() -> None:
    with Simulator(api_keys={KEY: "a"}, rate=0, max_connections_per_key=1,
                   send_error_frames=False) as sim:
        client = mmws.MMClient(KEY, url=sim.mm_url, **FAST).connect()
        try:
            collect_until(client, of_type(mmws.Subscribed))
            # Other processes now hold every slot for this key (no race with a second client).
            sim.max_connections_per_key = 0
            sim.drop_connections()
            attempts = collect_until(client, lambda e: isinstance(e, mmws.Closed) or (
                isinstance(e, mmws.Reconnecting) and e.attempt >= 3), timeout=5)
            assert not isinstance(attempts[-1], mmws.Closed), attempts[-1]
            sim.max_connections_per_key = 1  # a slot frees up: the client gets back in
            back = collect_until(client, lambda e: isinstance(e, (mmws.Closed, mmws.Subscribed)))
            assert isinstance(back[-1], mmws.Subscribed), back[-1]
        finally:
            client.close()


def test_a_close_with_1008_and_no_reason_still_means_a_refused_key() -> None:
    with Simulator(api_keys={KEY: "a"}, rate=0, send_error_frames=False) as sim, \
            pytest.raises(mmws.AuthenticationError):
        mmws.MMClient("11111111-2222-4333-8444-555555555555", url=sim.mm_url, **FAST).connect()


# -- close() during a reconnect attempt -------------------------------------------------------


def test_close_during_a_reconnect_attempt_joins_every_thread() -> None:
    with Simulator(api_keys={KEY: "a"}, rate=0) as sim:
        client = mmws.MMClient(KEY, url=sim.mm_url, **FAST).connect()
        collect_until(client, of_type(mmws.Subscribed))
        opened = sim.stats.connections_opened
        sim.stall()  # the next subscription is never confirmed
        sim.drop_connections()
        assert sim.wait_for(lambda: sim.stats.connections_opened > opened, 5)
        client.close(timeout=2.0)
        alive = [t.name for t in client._engine._threads if t.is_alive()]
        sim.resume()
        assert alive == []


def test_nothing_is_queued_after_closed() -> None:
    with Simulator(api_keys={KEY: "a"}, rate=0) as sim:
        client = mmws.MMClient(KEY, url=sim.mm_url, **FAST).connect()
        collect_until(client, of_type(mmws.Subscribed))
        opened = sim.stats.connections_opened
        sim.stall()
        sim.drop_connections()
        assert sim.wait_for(lambda: sim.stats.connections_opened > opened, 5)
        sim.revoke_key(KEY)
        client.close(timeout=0.3)
        sim.resume()  # the held subscribe would now be refused
        for thread in client._engine._threads:
            thread.join(5)  # whatever the reader still does, it has done it now
        events = list(client)
        assert isinstance(events[-1], mmws.Closed) and events[-1].error is None
        with pytest.raises(mmws.ClientClosed):
            client.get_nowait()


# -- feed: subscriptions across reconnects and odd replies ------------------------------------


def test_subscribing_again_to_an_active_topic_sends_nothing_and_keeps_it() -> None:
    with quiet_sim() as sim, \
            mmws.FeedClient(url=sim.feed_url, subscriptions=[("MAIN", "all")], **FEED) as feed:
        feed.subscribe("MAIN", "all")  # a defensive repeat
        subs = [m for m in sim.received_messages() if b'"subscribe"' in _b(m.data)]
        assert len(subs) == 1
        sim.drop_connections(endpoint="feed")
        collect_until(feed, lambda e: isinstance(e, mmws.FeedSubscribed)
                      and feed.health().reconnects == 1)
        assert feed_conn(sim).topics == ("MAIN:all",)


def test_subscribe_during_a_reconnect_is_sent_once() -> None:
    with quiet_sim() as sim:
        feed = mmws.FeedClient(url=sim.feed_url, subscriptions=[("MAIN", "all")], **FEED)
        feed.connect()
        try:
            collect_until(feed, of_type(mmws.FeedSubscribed))
            sim.reject_handshakes(503)  # hold the client in its reconnect loop
            sim.drop_connections(endpoint="feed")
            collect_until(feed, of_type(mmws.Reconnecting))
            errors: list[BaseException] = []
            worker = threading.Thread(target=_call(errors, lambda: feed.subscribe(
                "ODDS", "match:77", timeout=10)))
            worker.start()
            wait_until(lambda: "ODDS:match:77" in feed.subscriptions, what="wanted")
            sim.reject_handshakes(None)
            worker.join(10)
            assert errors == []
            conn = feed_conn(sim)
            feed.ping()  # every command before it has been answered
            odds = [m for m in sim.received_messages(conn.id)
                    if m.json.get("action") == "subscribe" and m.json.get("channel") == "ODDS"]
            assert len(odds) == 1
        finally:
            feed.close()


@pytest.mark.parametrize("action", ["subscribe", "unsubscribe"])
def test_an_error_reply_without_a_code_is_a_refusal(action: str) -> None:
    with quiet_sim(feed_api_tokens={PRO: "PRO"}) as sim, \
            mmws.FeedClient(url=sim.feed_url, subscriptions=[("MAIN", "all")], **FEED) as feed:
        conn = feed_conn(sim)
        before = len(sim.received_messages(conn.id))
        sim.stall()  # hold the server's own answer; ours arrives first
        errors: list[BaseException] = []
        call = (lambda: feed.subscribe("STATS", "match:5", timeout=3)) if action == "subscribe" \
            else (lambda: feed.unsubscribe("MAIN", "match:9", timeout=3))
        worker = threading.Thread(target=_call(errors, call))
        worker.start()
        assert sim.wait_for(lambda: len(sim.received_messages(conn.id)) > before, 5)
        sim.send_raw('{"type":"error","message":"Channel STATS is not available"}',
                     endpoint="feed")
        sim.resume()
        worker.join(5)
        assert len(errors) == 1 and type(errors[0]) is mmws.SubscriptionError, errors
        assert errors[0].code is None and "not available" in errors[0].message


# -- secrets in exception chains ---------------------------------------------------------------


def chain_text(exc: BaseException) -> str:
    parts, seen, stack = [], set(), [exc]
    while stack:
        error = stack.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        parts.append(repr(error) + str(error) + repr(getattr(error, "__dict__", {})))
        stack += [error.__cause__, error.__context__]
    return "\n".join(parts)


def test_a_refused_api_token_is_not_reachable_from_the_exception() -> None:
    with quiet_sim(feed_api_tokens={GOOD: "MEGA"}) as sim:
        feed = mmws.FeedClient(token_provider=mmws.RestTokenProvider(WRONG, sim.rest_url))
        with pytest.raises(mmws.AuthenticationError) as info:
            feed.connect()
    assert WRONG not in "".join(traceback.format_exception(info.value))
    assert WRONG not in chain_text(info.value)


def test_a_refused_feed_token_is_not_reachable_from_the_exception() -> None:
    with quiet_sim() as sim:
        bad = sim.feed_url.replace(sim.feed_token, WRONG)
        with pytest.raises(mmws.ConnectError) as info:
            mmws.FeedClient(url=bad, **FEED).connect()
    assert info.value.status == 403
    assert WRONG not in chain_text(info.value)


def test_a_fatal_error_raised_again_keeps_a_short_traceback() -> None:
    with Simulator(api_keys={KEY: "a"}, rate=0) as sim:
        client = mmws.MMClient(KEY, url=sim.mm_url, **FAST).connect()
        sim.revoke_key(KEY)
        sim.drop_connections()
        list(client)
        depths = []
        for _ in range(3):
            with pytest.raises(mmws.AuthenticationError) as info:
                client.get(timeout=1)
            depths.append(len(traceback.extract_tb(info.value.__traceback__)))
        client.close()
    assert depths[0] == depths[1] == depths[2]


def _call(errors: list[BaseException], fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # collected and asserted by the test
            errors.append(exc)

    return run


def _b(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


