"""FeedClient against the simulator's feed endpoint, over real sockets on 127.0.0.1.

Each test names the seed item it covers (soccer-feed-commands: Commands, Channels, Scope
Options, Error Codes, Ping, Best Practices, Rate Limiting).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from clientutil import collect_until, of_type, wait_until

import mmws
from mmws.sim import Simulator

FAST = dict(ping_interval=0.2, pong_timeout=1.0, connect_timeout=5.0, backoff_base=0.02,
            backoff_cap=0.1)
API_TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
PRO_TOKEN = "prototoken0000000000000000000001"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(rate=0, heartbeat_interval=None, feed_rate=0, feed_batch_interval=None,
                   feed_api_tokens={API_TOKEN: "MEGA", PRO_TOKEN: "PRO"},
                   feed_max_subscribe_per_connection=40) as server:
        yield server


@pytest.fixture
def feed(sim: Simulator) -> Iterator[mmws.FeedClient]:
    client = mmws.FeedClient(url=sim.feed_url, subscriptions=[("MAIN", "all")], **FAST)
    client.connect()
    try:
        yield client
    finally:
        client.close()


def feed_conn(sim: Simulator) -> Any:
    """The one open feed connection (an old one may take a moment to finish closing)."""
    def feed_conns() -> list[Any]:
        return [c for c in sim.active_connections if c.endpoint == "feed"]

    assert sim.wait_for(lambda: len(feed_conns()) == 1, 5), sim.active_connections
    return feed_conns()[0]


def max_in_any_window(times: tuple[float, ...] | list[float], window: float = 1.0) -> int:
    ordered = sorted(times)
    return max((sum(1 for u in ordered if t <= u < t + window) for t in ordered), default=0)


# -- Commands: subscribe, unsubscribe, ping ---------------------------------------------------


def test_commands_subscribe_connect_subscribes_and_acknowledges(
    feed: mmws.FeedClient, sim: Simulator
) -> None:
    events = collect_until(feed, of_type(mmws.FeedSubscribed))
    assert events[-1].topic == "MAIN:all"
    assert feed_conn(sim).topics == ("MAIN:all",)
    assert feed.subscriptions == ("MAIN:all",)


@pytest.mark.parametrize("channel", mmws.feed.FEED_CHANNELS)
def test_channels_each_channel_can_be_subscribed(
    feed: mmws.FeedClient, sim: Simulator, channel: str
) -> None:
    feed.subscribe(channel, "match:12345")
    assert f"{channel}:match:12345" in feed_conn(sim).topics


@pytest.mark.parametrize("style", ["seed", "split"])
@pytest.mark.parametrize("scope", ["all", "match:12345", "league:67890"])
def test_scope_options_in_both_scope_styles(sim: Simulator, style: str, scope: str) -> None:
    with mmws.FeedClient(url=sim.feed_url, subscriptions=[], scope_style=style, **FAST) as feed:
        feed.subscribe("STATS", scope)
        assert feed_conn(sim).topics == (f"STATS:{scope}",)
        sent = [m.json for m in sim.received_messages() if b"subscribe" in _bytes(m.data)]
        if style == "split" and scope != "all":
            kind, _, ident = scope.partition(":")
            assert sent[-1] == {"action": "subscribe", "channel": "STATS", "scope": kind,
                                "id": ident}
        else:
            assert sent[-1] == {"action": "subscribe", "channel": "STATS", "scope": scope}


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def test_commands_unsubscribe_with_the_exact_channel_and_scope(
    feed: mmws.FeedClient, sim: Simulator
) -> None:
    feed.subscribe("ODDS", "match:12345")
    feed.unsubscribe("ODDS", "match:12345")
    assert feed_conn(sim).topics == ("MAIN:all",)
    assert "ODDS:match:12345" not in feed.subscriptions


def test_unsubscribing_a_subscription_we_do_not_have_is_an_error_and_harms_nothing(
    feed: mmws.FeedClient, sim: Simulator
) -> None:
    with pytest.raises(mmws.SubscriptionError) as info:
        feed.unsubscribe("ODDS", "match:999")
    assert info.value.code == "NOT_SUBSCRIBED"
    assert feed_conn(sim).topics == ("MAIN:all",)


def test_commands_ping_returns_the_round_trip_and_the_pong_ts_gives_the_clock_offset(
    feed: mmws.FeedClient,
) -> None:
    rtt = feed.ping()
    assert isinstance(rtt, float) and 0 < rtt < 5
    wait_until(lambda: feed.health().clock_offset is not None, what="a pong with ts")
    assert abs(feed.health().clock_offset or 99) < 1.0  # same machine, same clock


# -- Error Codes ------------------------------------------------------------------------------


def test_error_codes_channel_not_allowed(sim: Simulator) -> None:
    url = sim.feed_url.replace(sim.feed_token, sim.issue_feed_token(PRO_TOKEN))
    with mmws.FeedClient(url=url, subscriptions=[], **FAST) as feed:
        with pytest.raises(mmws.SubscriptionError) as info:
            feed.subscribe("STATS_REALTIME", "all")
        assert info.value.code == "CHANNEL_NOT_ALLOWED"
        assert "STATS_REALTIME" in info.value.message
        assert feed.subscriptions == ()


def test_error_codes_subscription_limit() -> None:
    with Simulator(rate=0, feed_rate=0, feed_batch_interval=None,
                   feed_max_subscribe_per_connection=2) as sim, \
            mmws.FeedClient(url=sim.feed_url, subscriptions=[], **FAST) as feed:
        feed.subscribe("MAIN", "match:1")
        feed.subscribe("MAIN", "match:2")
        with pytest.raises(mmws.SubscriptionError) as info:
            feed.subscribe("MAIN", "match:3")
        assert info.value.code == "SUBSCRIPTION_LIMIT"


def test_error_codes_invalid_channel_and_scope_are_caught_before_sending(
    feed: mmws.FeedClient, sim: Simulator
) -> None:
    def not_pings() -> int:  # keepalive pings may go out meanwhile
        return sum(1 for m in sim.received_messages() if '"ping"' not in str(m.data))

    before = not_pings()
    with pytest.raises(mmws.ConfigError, match="'SCORES'"):
        feed.subscribe("SCORES", "all")
    with pytest.raises(mmws.ConfigError, match="'match:'"):
        feed.subscribe("MAIN", "match:")
    with pytest.raises(mmws.ConfigError, match="'team:1'"):
        feed.subscribe("MAIN", "team:1")
    assert not_pings() == before


def test_connect_with_a_refused_subscription_raises(sim: Simulator) -> None:
    url = sim.feed_url.replace(sim.feed_token, sim.issue_feed_token(PRO_TOKEN))
    client = mmws.FeedClient(url=url, subscriptions=[("ODDS", "all")], **FAST)
    with pytest.raises(mmws.SubscriptionError) as info:
        client.connect()
    assert info.value.code == "CHANNEL_NOT_ALLOWED"
    client.close()


# -- data events ------------------------------------------------------------------------------


def test_both_envelopes_arrive_as_typed_feed_events(feed: mmws.FeedClient, sim: Simulator) -> None:
    match = sim.feed_matches[0]
    feed.subscribe("STATS", f"match:{match.match_id}")
    feed.subscribe("ODDS", f"league:{match.league_id}")
    wait_until(lambda: sim.step_feed(1) is not None and any(
        isinstance(e, mmws.OddsUpdate) for e in _drain(feed, seen)), timeout=10,
        what="an odds update")
    kinds = {type(e) for e in seen}
    assert mmws.OddsUpdate in kinds
    for event in seen:
        if isinstance(event, mmws.FeedEvent):
            assert event.channel in mmws.feed.FEED_CHANNELS and event.ts is not None
        if isinstance(event, mmws.OddsUpdate):
            assert event.league_id == match.league_id
            assert any(isinstance(v, mmws.Odds) for v in event.odds.values())
        if isinstance(event, mmws.StatsUpdate):
            assert event.match_id == match.match_id


seen: list[Any] = []


def _drain(feed: mmws.FeedClient, into: list[Any]) -> list[Any]:
    while True:
        try:
            into.append(feed.get_nowait())
        except Exception:
            return into


def test_garbage_frames_do_not_force_a_reconnect(feed: mmws.FeedClient, sim: Simulator) -> None:
    collect_until(feed, of_type(mmws.FeedSubscribed))
    sim.send_raw("{not json", endpoint="feed")
    sim.send_raw('{"type":"surprise","channel":"MAIN","data":{"odds":"x;y|z"}}', endpoint="feed")
    events = collect_until(feed, lambda e: isinstance(e, mmws.FeedEvent))
    assert any(isinstance(e, mmws.MalformedFrame) for e in events)
    assert events[-1].event_type == "surprise" and type(events[-1]) is mmws.FeedEvent
    assert feed.health().reconnects == 0


# -- Rate Limiting and Best Practices ------------------------------------------------------


def test_rate_limiting_25_subscribes_in_a_burst_all_succeed_within_10_per_second(
    feed: mmws.FeedClient, sim: Simulator
) -> None:
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            feed.subscribe("MAIN", f"match:{1000 + i}", timeout=10)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert errors == []
    conn = feed_conn(sim)
    assert len(conn.topics) == 26 and conn.rate_limited == 0
    assert max_in_any_window(conn.command_times) <= 10


def test_best_practice_ping_every_interval(feed: mmws.FeedClient, sim: Simulator) -> None:
    wait_until(lambda: sum(1 for m in sim.received_messages()
                           if b'"ping"' in _bytes(m.data)) >= 3, timeout=3, what="3 pings")


def test_best_practice_no_pong_means_dead_reconnect_and_restore_every_subscription(
    feed: mmws.FeedClient, sim: Simulator
) -> None:
    feed.subscribe("STATS", "match:12345")
    feed.subscribe("ODDS", "league:67890")
    collect_until(feed, lambda e: isinstance(e, mmws.FeedSubscribed) and e.topic.startswith("ODDS"))
    first = feed_conn(sim).id
    sim.delay_pongs(5.0)
    events = collect_until(feed, of_type(mmws.Stale), timeout=5)  # ping_interval + pong_timeout
    assert "pong" in str(events[-1].error)
    sim.delay_pongs(0)
    restored: set[str] = set()
    collect_until(feed, lambda e: isinstance(e, mmws.FeedSubscribed)
                  and restored.add(e.topic) is None and len(restored) == 3, timeout=5)
    assert restored == {"MAIN:all", "STATS:match:12345", "ODDS:league:67890"}
    conn = feed_conn(sim)
    assert conn.id != first and set(conn.topics) == restored


# -- tokens -----------------------------------------------------------------------------------


def test_expiring_token_is_renewed_through_the_provider_without_losing_subscriptions() -> None:
    with Simulator(rate=0, feed_rate=0, feed_batch_interval=None, feed_token_ttl=3.0,
                   feed_api_tokens={API_TOKEN: "MEGA"}) as sim:
        provider = mmws.RestTokenProvider(API_TOKEN, base_url=sim.rest_url, renew_before=2.0)
        with mmws.FeedClient(token_provider=provider, subscriptions=[("MAIN", "all")],
                             **FAST) as feed:
            first = feed_conn(sim).id
            start = sim.stats.http_responses
            # three renewals span more than the token's first lifetime of 3 s
            wait_until(lambda: sim.stats.http_responses >= start + 3, timeout=10,
                       what="three renewals")
            assert feed_conn(sim).id == first and feed_conn(sim).topics == ("MAIN:all",)
            assert feed.health().reconnects == 0
            assert feed.ping() > 0


def test_expired_token_reconnects_with_a_fresh_one_from_the_provider() -> None:
    with Simulator(rate=0, feed_rate=0, feed_batch_interval=None, feed_token_ttl=1.0,
                   feed_api_tokens={API_TOKEN: "MEGA"}) as sim:
        provider = mmws.RestTokenProvider(API_TOKEN, base_url=sim.rest_url, renew_before=0.0)
        provider.renew_due = lambda: None  # type: ignore[method-assign]  # never renew
        with mmws.FeedClient(token_provider=provider, subscriptions=[("ODDS", "match:5")],
                             **FAST) as feed:
            events = collect_until(feed, lambda e: isinstance(e, mmws.FeedSubscribed)
                                   and feed.health().reconnects >= 1, timeout=10)
            assert any(isinstance(e, mmws.Disconnected) and "token expired" in e.reason
                       for e in events)
            assert feed_conn(sim).topics == ("ODDS:match:5",)


def test_the_token_never_appears_in_logs(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = sim.feed_token
    with mmws.FeedClient(url=sim.feed_url, **FAST) as feed:
        collect_until(feed, of_type(mmws.FeedSubscribed))
        sim.drop_connections()
        collect_until(feed, of_type(mmws.FeedSubscribed))
        text = repr(feed) + repr(feed.health())
    bad = sim.feed_url.replace(token, "0" * len(token))
    with pytest.raises(mmws.ConnectError) as info:
        mmws.FeedClient(url=bad, **FAST).connect()
    text += "".join(traceback.format_exception(info.value))  # chained causes included
    text += "\n".join(r.getMessage() for r in caplog.records)
    assert "connected to" in text and "403" in text
    assert token not in text and "0" * len(token) not in text
    provider = mmws.RestTokenProvider(API_TOKEN, base_url=sim.rest_url)
    assert API_TOKEN not in repr(provider)
