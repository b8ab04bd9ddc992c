"""Edges of the shared client machinery: settings validation, reconnect=False, callbacks that
raise, quiet lines, closing mid-reconnect, the feed's command path and token errors."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from clientutil import KEY, collect_until, of_type, types_of, wait_until

import mmws
from mmws.sim import Simulator

FAST: dict[str, Any] = dict(ping_interval=0.1, pong_timeout=1.0, backoff_base=0.02,
                            backoff_cap=0.1, connect_timeout=2.0)
API_TOKEN = "b1b2c3d4e5f60718293a4b5c6d7e8f90"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_keys={KEY: "a"}, rate=0, heartbeat_interval=None, feed_rate=0,
                   feed_batch_interval=None, feed_api_tokens={API_TOKEN: "MEGA"}) as server:
        yield server


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ping_interval": 0}, "ping_interval"),
        ({"pong_timeout": -1}, "pong_timeout"),
        ({"heartbeat_timeout": "soon"}, "heartbeat_timeout"),
        ({"connect_timeout": True}, "connect_timeout"),
        ({"maxsize": 0}, "maxsize"),
        ({"backoff_base": 0}, "backoff_base"),
        ({"url": "http://example.invalid/ws"}, "ws:// or wss://"),
        ({"on_event": "print"}, "on_event must be callable"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_setting(
    kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"url": "ws://127.0.0.1:9/ws/subscribe", **kwargs}
    with pytest.raises(mmws.ConfigError, match=message):
        mmws.MMClient(KEY, **args)


def test_a_url_with_a_token_is_redacted_in_config_errors() -> None:
    with pytest.raises(mmws.ConfigError) as info:
        mmws.FeedClient(url="http://h/?token=sekrit-token-value")
    assert "sekrit-token-value" not in str(info.value)


def test_connect_twice_is_harmless_and_connect_after_close_is_refused(sim: Simulator) -> None:
    client = mmws.MMClient(KEY, url=sim.mm_url, **FAST)
    assert client.connect() is client.connect()
    client.close()
    client.close()  # idempotent
    with pytest.raises(mmws.ClientClosed):
        client.connect()


def test_without_reconnect_a_drop_ends_the_stream(sim: Simulator) -> None:
    with mmws.MMClient(KEY, url=sim.mm_url, reconnect=False, **FAST) as client:
        collect_until(client, of_type(mmws.Subscribed))
        sim.drop_connections()
        events = list(client)
    assert types_of(events)[-2:] == ["Disconnected", "Closed"]
    assert events[-2].will_reconnect is False and events[-1].error is None
    assert client.health().state == "closed"


def test_a_raising_callback_is_logged_and_the_stream_goes_on(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Any] = []
    second = threading.Event()

    def callback(event: Any) -> None:
        calls.append(event)
        if isinstance(event, mmws.OrderEvent):
            if event.payload.order_id == 1:
                raise RuntimeError("user bug")
            second.set()

    with mmws.MMClient(KEY, url=sim.mm_url, on_event=callback, **FAST):
        sim.publish("orders", "INSERT", {"orderId": 1})
        sim.publish("orders", "INSERT", {"orderId": 2})
        assert second.wait(5)
    assert any("on_event raised" in r.getMessage() for r in caplog.records)


def test_a_quiet_line_is_not_an_error(sim: Simulator) -> None:
    # io_timeout expires between frames; the reader keeps reading, nothing reconnects
    with mmws.MMClient(KEY, url=sim.mm_url, io_timeout=0.05, **FAST) as client:
        collect_until(client, of_type(mmws.Subscribed))
        wait_until(lambda: client.health().last_rtt is not None, what="a pong")
        sim.publish("orders", "INSERT", {"orderId": 4})
        events = collect_until(client, of_type(mmws.OrderEvent))
        assert not any(isinstance(e, mmws.Disconnected) for e in events)


def test_close_during_the_backoff_wait_is_prompt(sim: Simulator) -> None:
    client = mmws.MMClient(KEY, url=sim.mm_url, **{**FAST, "backoff_base": 30.0,
                                                  "backoff_cap": 60.0})
    client.connect()
    sim.reject_handshakes(503)
    sim.drop_connections()
    collect_until(client, of_type(mmws.Reconnecting))
    client.close(timeout=2)
    assert not any(t.is_alive() for t in client._engine._threads)
    events = list(client)
    assert isinstance(events[-1], mmws.Closed)


def test_backoff_resets_after_a_stable_connection(sim: Simulator) -> None:
    with mmws.MMClient(KEY, url=sim.mm_url, backoff_reset_after=1e-6, **FAST) as client:
        for _ in range(3):
            collect_until(client, of_type(mmws.Subscribed))
            wait_until(lambda: client.health().last_rtt is not None)
            sim.drop_connections()
            reconnecting = collect_until(client, of_type(mmws.Reconnecting))[-1]
            assert reconnecting.attempt == 1  # the counter started again every time


def test_get_on_a_client_that_never_connected_times_out() -> None:
    client = mmws.MMClient(KEY, url="ws://127.0.0.1:9/ws/subscribe")
    with pytest.raises(queue.Empty):
        client.get(timeout=0.01)
    client.close()
    assert client.get(timeout=0.01) == mmws.Closed(None)
    with pytest.raises(mmws.ClientClosed):
        client.get(timeout=0.01)


# -- feed-specific edges ----------------------------------------------------------------------


def test_feed_needs_exactly_one_of_url_and_token_provider(sim: Simulator) -> None:
    with pytest.raises(mmws.ConfigError, match="exactly one"):
        mmws.FeedClient()
    with pytest.raises(mmws.ConfigError, match="exactly one"):
        mmws.FeedClient(url=sim.feed_url, token_provider=lambda: sim.feed_url)
    with pytest.raises(mmws.ConfigError, match="callable"):
        mmws.FeedClient(token_provider="not callable")  # type: ignore[arg-type]
    with pytest.raises(mmws.ConfigError, match="scope_style"):
        mmws.FeedClient(url=sim.feed_url, scope_style="dotted")  # type: ignore[arg-type]


def test_feed_commands_before_connect_are_refused(sim: Simulator) -> None:
    feed = mmws.FeedClient(url=sim.feed_url)
    with pytest.raises(mmws.LocalProtocolError, match="connect"):
        feed.subscribe("MAIN", "all")
    with pytest.raises(mmws.LocalProtocolError, match="connect"):
        feed.ping()


def test_feed_commands_after_close_raise_client_closed(sim: Simulator) -> None:
    feed = mmws.FeedClient(url=sim.feed_url, **FAST).connect()
    feed.close()
    with pytest.raises(mmws.ClientClosed):
        feed.subscribe("MAIN", "match:1")


def test_feed_ping_times_out_when_pongs_are_withheld(sim: Simulator) -> None:
    with mmws.FeedClient(url=sim.feed_url, **{**FAST, "ping_interval": None}) as feed:
        sim.delay_pongs(float("inf"))
        with pytest.raises(mmws.TransportTimeout, match="no pong"):
            feed.ping(timeout=0.2)
        sim.delay_pongs(0)


def test_feed_subscribe_times_out_when_the_server_is_stalled(sim: Simulator) -> None:
    with mmws.FeedClient(url=sim.feed_url, **{**FAST, "ping_interval": None}) as feed:
        sim.stall()
        with pytest.raises(mmws.TransportTimeout, match=r"no reply.*stays requested"):
            feed.subscribe("ODDS", "all", timeout=0.2)
        # not refused, only unanswered: it stays wanted, so a late confirmation is tracked
        assert "ODDS:all" in feed.subscriptions
        sim.resume()
        collect_until(feed, lambda e: isinstance(e, mmws.FeedSubscribed) and e.topic == "ODDS:all")


def test_a_failing_token_provider_is_a_config_error_without_details() -> None:
    def provider() -> str:
        raise RuntimeError("secret-internal-detail")

    with pytest.raises(mmws.ConnectError, match="token_provider failed") as info:
        mmws.FeedClient(token_provider=provider).connect()
    assert "secret-internal-detail" not in str(info.value)
    with pytest.raises(mmws.ConfigError, match="ws:// or wss://"):
        mmws.FeedClient(token_provider=lambda: "http://nope").connect()


def test_rest_token_provider_errors(sim: Simulator) -> None:
    with pytest.raises(mmws.ConfigError, match="base_url"):
        mmws.RestTokenProvider(API_TOKEN, base_url="ftp://x")
    bad = mmws.RestTokenProvider("wrong-api-token-0000", base_url=sim.rest_url)
    with pytest.raises(mmws.AuthenticationError, match="HTTP 401") as info:
        bad()
    assert "wrong-api-token-0000" not in str(info.value)
    assert bad.renew_due() is None and bad.expires_at is None
    good = mmws.RestTokenProvider(API_TOKEN, base_url=sim.rest_url)
    url = good()
    assert url.startswith("ws://") and good() == url  # cached while fresh
    assert good.expires_at is not None and good.info["max_connections"] >= 1
    good.renew()
    nowhere = mmws.RestTokenProvider(API_TOKEN, base_url="http://127.0.0.1:9", timeout=1)
    with pytest.raises(mmws.ConnectError, match="/v1/ws/new failed"):
        nowhere()


def test_feed_deliver_keepalive_shows_pongs(sim: Simulator) -> None:
    with mmws.FeedClient(url=sim.feed_url, deliver_keepalive=True, **FAST) as feed:
        pong = collect_until(feed, of_type(mmws.FeedPong))[-1]
        assert pong.server_ts is not None and pong.server_ts > 0


def test_mm_deliver_keepalive_shows_pongs_and_heartbeats() -> None:
    with Simulator(api_keys={KEY: "a"}, rate=0, heartbeat_interval=0.05) as sim, \
            mmws.MMClient(KEY, url=sim.mm_url, deliver_keepalive=True, **FAST) as client:
        collect_until(client, of_type(mmws.Heartbeat))
        assert collect_until(client, of_type(mmws.Pong))[-1].rtt is not None


def test_debug_logging_of_websocket_client_does_not_show_the_key(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="websocket")
    with mmws.MMClient(KEY, url=sim.mm_url, **FAST) as client:
        collect_until(client, of_type(mmws.Subscribed))
    assert KEY not in caplog.text


def test_a_second_concurrent_connect_is_refused(sim: Simulator) -> None:
    client = mmws.MMClient(KEY, url=sim.mm_url, **{**FAST, "connect_timeout": 30.0})
    sim.stall()  # the first connect() waits for its subscription confirmation
    first = threading.Thread(target=client.connect, daemon=True)
    opened = sim.stats.connections_opened
    first.start()
    wait_until(lambda: sim.stats.connections_opened > opened, what="the first connection")
    with pytest.raises(mmws.LocalProtocolError, match="already running"):
        client.connect()
    sim.resume()
    first.join(5)
    assert client.health().state == "connected"
    client.close()


def test_feed_ping_works_when_pongs_are_delivered_too(sim: Simulator) -> None:
    with mmws.FeedClient(url=sim.feed_url, deliver_keepalive=True,
                         **{**FAST, "ping_interval": None}) as feed:
        assert feed.ping(timeout=2) > 0
        assert feed.health().last_rtt is not None
        assert collect_until(feed, of_type(mmws.FeedPong))[-1].rtt is not None


def test_a_thread_that_dies_on_an_unexpected_error_closes_the_client_loudly(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    class Boom(BaseException):  # not an Exception: nothing in the normal path catches it
        pass

    calls = [0]

    def provider() -> str:
        calls[0] += 1
        if calls[0] > 1:
            raise Boom("provider exploded")
        return sim.feed_url

    with mmws.FeedClient(token_provider=provider, **FAST) as feed:
        collect_until(feed, of_type(mmws.FeedSubscribed))
        sim.drop_connections()  # the reconnect asks the provider again
        events = list(feed)  # ends: the stream does not just go quiet
    closed = events[-1]
    assert isinstance(closed, mmws.Closed) and isinstance(closed.error, mmws.MmwsError)
    assert "internal error in mmws-reader: Boom" in str(closed.error)
    assert any("mmws-reader failed" in r.getMessage() for r in caplog.records)
