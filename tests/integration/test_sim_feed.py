"""The simulator's feed endpoint on the wire: REST tokens, every command, channel, scope form
and error code (soccer-feed-commands.txt, protocols.md part B)."""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import websocket

from mmws.sim import Simulator
from mmws.sim.feed import CHANNELS, topic_keys

Connect = Callable[..., Any]  # conftest.connect -> conftest.Wire
MakeSim = Callable[..., Simulator]
ERROR_KEYS = {"type", "code", "message"}


def rest(sim: Simulator, route: str, token: str | None) -> tuple[int, Any]:
    url = f"{sim.rest_url}{route}" + (f"?t={token}" if token is not None else "")
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def refused(url: str) -> int:
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        websocket.create_connection(url, timeout=2).close()
    return int(caught.value.status_code)


# -- REST and tokens ------------------------------------------------------------------------


def test_rest_new_issues_a_token(sim: Simulator) -> None:
    """B.1: GET /v1/ws/new?t=API_TOKEN -> the documented result shape."""
    status, body = rest(sim, "/v1/ws/new", sim.feed_api_token)
    assert status == 200
    assert (body["status"], body["errors"], body["pagination"]) == (200, [], [])
    (result,) = body["result"]
    assert set(result) == {
        "is_new", "token", "server", "max_connections", "max_subscribe_per_connection",
        "allowed_channels", "expires_at",
    }  # fmt: skip
    assert result["server"] == f"ws://127.0.0.1:{sim.port}/?token={result['token']}"
    assert result["allowed_channels"] == list(CHANNELS)  # MEGA
    assert (result["max_connections"], result["max_subscribe_per_connection"]) == (5, 20)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", result["expires_at"])
    again = rest(sim, "/v1/ws/new", sim.feed_api_token)[1]["result"][0]
    assert (result["is_new"], again["is_new"], again["token"]) == (True, False, result["token"])


@pytest.mark.parametrize("token", [None, "", "wrong"])
def test_rest_bad_api_token_is_401(token: str | None, sim: Simulator) -> None:
    status, body = rest(sim, "/v1/ws/new", token)
    assert (status, body["status"], body["result"]) == (401, 401, [])


def test_rest_renew_without_an_active_token_is_404(sim: Simulator) -> None:
    assert rest(sim, "/v1/ws/renew", sim.feed_api_token)[0] == 404


def test_token_expiry_closes_connections_and_refuses_new_ones(
    make_sim: MakeSim, connect: Connect
) -> None:
    """B.1 step 4: tokens expire (ttl); open connections close 1008 'token expired'."""
    sim = make_sim(feed_token_ttl=1.0)
    url = sim.feed_url
    ws = connect(url)
    assert ws.recv_close(timeout=5) == (1008, "token expired")
    assert refused(url) == 403
    fresh = rest(sim, "/v1/ws/new", sim.feed_api_token)[1]["result"][0]
    assert fresh["is_new"] is True and fresh["token"] not in url
    assert connect(fresh["server"]).feed("ping")["type"] == "pong"


def test_renew_keeps_the_token_and_extends_expiry(make_sim: MakeSim, connect: Connect) -> None:
    """/v1/ws/renew returns the same token with a later expiry; the connection lives on."""
    sim = make_sim(feed_token_ttl=2.0)
    issued = rest(sim, "/v1/ws/new", sim.feed_api_token)[1]["result"][0]
    started = time.monotonic()
    ws = connect(issued["server"])
    assert ws.silent(0.3)
    status, body = rest(sim, "/v1/ws/renew", sim.feed_api_token)
    renewed = body["result"][0]
    assert (status, renewed["token"], renewed["is_new"]) == (200, issued["token"], False)
    assert renewed["expires_at"] >= issued["expires_at"]
    # past the first expiry (2 s after it was issued): still open
    assert ws.silent(max(0.0, 2.2 - (time.monotonic() - started)))
    assert ws.recv_close(timeout=5) == (1008, "token expired")
    assert time.monotonic() - started >= 2.25  # renewed at 0.3 s or later, for 2 s


def test_connect_without_token_is_401_with_bad_token_403(sim: Simulator) -> None:
    base = f"ws://127.0.0.1:{sim.port}"
    assert refused(f"{base}/") == 401
    assert refused(f"{base}/?token=") == 401
    assert refused(f"{base}/?token=nope") == 403
    assert refused(f"{base}/feed?token=nope") == 403


def test_max_connections_per_token(make_sim: MakeSim, connect: Connect) -> None:
    sim = make_sim(feed_max_connections=1)
    first = connect(sim.feed_url)
    second = connect(sim.feed_url)
    error = second.recv()
    assert error["code"] == "CONNECTION_LIMIT" and set(error) == ERROR_KEYS
    assert second.recv_close() == (1008, "connection limit exceeded")
    assert first.feed("ping")["type"] == "pong"


# -- commands -------------------------------------------------------------------------------


def test_subscribe_seed_scope_form(sim: Simulator, connect: Connect) -> None:
    """Seed: "scope":"match:12345" -> subscribed with scope/id split and topicKey."""
    ws = connect(sim.feed_url)
    assert ws.feed("subscribe", channel="STATS", scope="match:12345") == {
        "type": "subscribed",
        "channel": "STATS",
        "scope": "match",
        "id": "12345",
        "topicKey": "STATS:match:12345",
        "message": "Successfully subscribed",
    }


def test_subscribe_split_scope_form_and_all_and_league(sim: Simulator, connect: Connect) -> None:
    """Current docs: "scope":"match","id":"..."; plus "all" and league scopes."""
    ws = connect(sim.feed_url)
    reply = ws.feed("subscribe", channel="MAIN", scope="match", id="b01d28ac92221034")
    assert reply["topicKey"] == "MAIN:match:b01d28ac92221034"
    assert ws.feed("subscribe", channel="MAIN", scope="all") == {
        "type": "subscribed",
        "channel": "MAIN",
        "scope": "all",
        "id": None,
        "topicKey": "MAIN:all",
        "message": "Successfully subscribed",
    }
    league = ws.feed("subscribe", channel="ODDS", scope="league:67890")
    assert (league["scope"], league["id"], league["topicKey"]) == (
        "league", "67890", "ODDS:league:67890"
    )
    split = ws.feed("subscribe", channel="ODDS", scope="league", id="f2b16fa54cb525d")
    assert split["topicKey"] == "ODDS:league:f2b16fa54cb525d"


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_channel_can_be_subscribed_on_mega(
    channel: str, sim: Simulator, connect: Connect
) -> None:
    ws = connect(sim.feed_url)
    assert ws.feed("subscribe", channel=channel, scope="all")["type"] == "subscribed"


def test_unsubscribe_either_form_and_frees_a_slot(make_sim: MakeSim, connect: Connect) -> None:
    """Seed: unsubscribing frees a subscription slot; both scope forms name one topic."""
    sim = make_sim(feed_max_subscribe_per_connection=1)
    ws = connect(sim.feed_url)
    ws.feed("subscribe", channel="STATS", scope="match", id="12345")
    assert ws.feed("subscribe", channel="MAIN", scope="all")["code"] == "SUBSCRIPTION_LIMIT"
    assert ws.feed("unsubscribe", channel="STATS", scope="match:12345") == {
        "type": "unsubscribed",
        "channel": "STATS",
        "scope": "match",
        "id": "12345",
        "topicKey": "STATS:match:12345",
        "message": "Successfully unsubscribed",
    }
    assert ws.feed("subscribe", channel="MAIN", scope="all")["type"] == "subscribed"


def test_subscribing_twice_uses_one_slot(make_sim: MakeSim, connect: Connect) -> None:
    sim = make_sim(feed_max_subscribe_per_connection=1)
    ws = connect(sim.feed_url)
    for _ in range(2):
        assert ws.feed("subscribe", channel="MAIN", scope="all")["type"] == "subscribed"


def test_ping_gets_pong_with_server_ms(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.feed_url)
    before = int(time.time() * 1000)
    pong = ws.feed("ping")
    assert set(pong) == {"type", "ts"} and pong["type"] == "pong"
    assert isinstance(pong["ts"], int) and before - 5 <= pong["ts"] <= time.time() * 1000 + 5


# -- error codes ----------------------------------------------------------------------------


def test_error_channel_not_allowed(make_sim: MakeSim, connect: Connect) -> None:
    """Error table row CHANNEL_NOT_ALLOWED: plans per B.3 (PRO: MAIN only; BASIC: none)."""
    sim = make_sim(feed_api_tokens={"pro-api-token": "PRO", "basic-api-token": "BASIC"})
    pro = connect(f"ws://127.0.0.1:{sim.port}/?token={sim.issue_feed_token('pro-api-token')}")
    assert pro.feed("subscribe", channel="MAIN", scope="all")["type"] == "subscribed"
    error = pro.feed("subscribe", channel="STATS_REALTIME", scope="all")
    assert error == {
        "type": "error",
        "code": "CHANNEL_NOT_ALLOWED",
        "message": "Channel STATS_REALTIME is not available for your plan",
    }
    basic_token = sim.issue_feed_token("basic-api-token")
    basic = connect(f"ws://127.0.0.1:{sim.port}/?token={basic_token}")
    assert basic.feed("subscribe", channel="MAIN", scope="all")["code"] == "CHANNEL_NOT_ALLOWED"


def test_error_subscription_limit(make_sim: MakeSim, connect: Connect) -> None:
    """Error table row SUBSCRIPTION_LIMIT: max_subscribe_per_connection, per connection."""
    sim = make_sim(feed_max_subscribe_per_connection=2)
    ws = connect(sim.feed_url)
    ws.feed("subscribe", channel="MAIN", scope="all")
    ws.feed("subscribe", channel="STATS", scope="all")
    error = ws.feed("subscribe", channel="ODDS", scope="all")
    assert error["code"] == "SUBSCRIPTION_LIMIT" and set(error) == ERROR_KEYS
    other = connect(sim.feed_url)  # the limit is per connection
    assert other.feed("subscribe", channel="ODDS", scope="all")["type"] == "subscribed"


@pytest.mark.parametrize("channel", ["FOO", "main", 5, None])
def test_error_invalid_channel(channel: Any, sim: Simulator, connect: Connect) -> None:
    """Error table row INVALID_CHANNEL."""
    ws = connect(sim.feed_url)
    message = {"action": "subscribe", "scope": "all"}
    if channel is not None:
        message["channel"] = channel
    ws.send(message)
    error = ws.recv()
    assert error["code"] == "INVALID_CHANNEL" and set(error) == ERROR_KEYS


@pytest.mark.parametrize(
    "scope",
    [
        {},
        {"scope": 5},
        {"scope": "everything"},
        {"scope": "match"},
        {"scope": "match:"},
        {"scope": "match", "id": ""},
        {"scope": "match", "id": 12345},
        {"scope": "league:a b"},
        {"scope": "all", "id": "1"},
        {"scope": "match:1", "id": "2"},
    ],
    ids=str,
)
def test_error_invalid_scope(scope: dict[str, Any], sim: Simulator, connect: Connect) -> None:
    """Error table row INVALID_SCOPE."""
    ws = connect(sim.feed_url)
    ws.send({"action": "subscribe", "channel": "MAIN", **scope})
    error = ws.recv()
    assert error["code"] == "INVALID_SCOPE" and set(error) == ERROR_KEYS


def test_error_not_subscribed(sim: Simulator, connect: Connect) -> None:
    """Seed: unsubscribing from a non-existent subscription errors, others unaffected."""
    ws = connect(sim.feed_url)
    ws.feed("subscribe", channel="MAIN", scope="all")
    error = ws.feed("unsubscribe", channel="MAIN", scope="match:1")
    assert error == {
        "type": "error",
        "code": "NOT_SUBSCRIBED",
        "message": "Not subscribed to MAIN:match:1",
    }
    assert sim.wait_for(lambda: sim.active_connections[0].topics == ("MAIN:all",), 2)


@pytest.mark.parametrize(
    "frame", ["{nope", "[1]", '{"channel": "MAIN"}', '{"action": "dance"}', '{"action": 1}']
)
def test_error_invalid_command(frame: str, sim: Simulator, connect: Connect) -> None:
    """Seed section "Invalid Command Handling"."""
    ws = connect(sim.feed_url)
    ws.send(frame)
    error = ws.recv()
    assert error["code"] == "INVALID_COMMAND" and set(error) == ERROR_KEYS
    assert ws.feed("ping")["type"] == "pong"


def test_error_invalid_command_binary(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.feed_url)
    ws.ws.send_binary(b"\x01")
    assert ws.recv()["code"] == "INVALID_COMMAND"


def test_rate_limit_10_commands_per_second(sim: Simulator, connect: Connect) -> None:
    """Seed: at most 10 commands per second per connection; beyond: RATE_LIMITED, not run."""
    ws = connect(sim.feed_url)
    for _ in range(15):
        ws.send({"action": "ping"})
    replies = [ws.recv() for _ in range(15)]
    assert [r["type"] for r in replies[:10]] == ["pong"] * 10
    assert {r.get("code") for r in replies[10:]} == {"RATE_LIMITED"}
    info = sim.active_connections[0]
    assert len(info.command_times) == 15 and info.rate_limited == 5
    assert ws.silent(1.05)  # the window slides: commands run again
    assert ws.feed("ping")["type"] == "pong"


# -- data -----------------------------------------------------------------------------------


def expected_frames(updates: list[Any], topics: set[str]) -> int:
    count = 0
    for update in updates:
        hits = [k for k in topic_keys(update) if k in topics]
        count += (1 if hits else 0) if update.shape == "match" else len(hits)
    return count


def test_generated_data_on_every_channel_and_scope(sim: Simulator, connect: Connect) -> None:
    """B.3: shape 1 on MAIN/MAIN_REALTIME/STATS_REALTIME/ODDS_REALTIME, shape 2 on STATS and
    ODDS for match and league scopes, odds and stats value formats."""
    match = sim.feed_matches[0]
    ws = connect(sim.feed_url)
    subscriptions = [
        ("MAIN", "all", None),
        ("MAIN_REALTIME", "match", match.realtime_id),
        ("STATS", "match", match.match_id),
        ("STATS", "league", match.league_id),
        ("ODDS", "match", match.match_id),
        ("STATS_REALTIME", "match", match.match_id),
        ("ODDS_REALTIME", "league", match.league_id),
    ]
    topics = set()
    for channel, scope, sid in subscriptions:
        reply = ws.feed("subscribe", channel=channel, scope=scope, id=sid)
        topics.add(reply["topicKey"])
    updates = sim.step_feed(300)
    frames = [ws.recv() for _ in range(expected_frames(updates, topics))]
    assert ws.silent(0.05)
    seen = {(f["channel"], f.get("scope")) for f in frames}
    assert {("STATS", "match"), ("STATS", "league"), ("ODDS", "match")} <= seen
    assert {"MAIN", "MAIN_REALTIME", "STATS_REALTIME", "ODDS_REALTIME"} <= {c for c, _ in seen}
    main_types = {f["type"] for f in frames if f["channel"] == "MAIN"}
    assert {"match_start", "goal", "halftime", "second_half_start", "match_end"} <= main_types
    for frame in frames:
        if frame["channel"] in ("STATS", "ODDS"):
            assert set(frame) == {"type", "channel", "scope", "id", "eventType", "eventId",
                                  "ts", "data"}  # fmt: skip
            assert frame["type"] == "event"
            expected_id = match.match_id if frame["scope"] == "match" else match.league_id
            assert frame["id"] == expected_id
        else:
            assert set(frame) == {"type", "channel", "matchId", "leagueId", "ts", "data"}
    stats = next(f for f in frames if f["channel"] == "STATS")
    assert stats["eventType"] == "stats_update"
    assert re.fullmatch(r"\d+;\d+", stats["data"]["possession"])
    odds = next(f for f in frames if f["channel"] == "ODDS")["data"]
    assert re.fullmatch(r"\d+\.\d\d;\d+\.\d\d;\d+\.\d\d", odds["live1x2"])
    assert re.fullmatch(r"\d+\.\d\d;\d+\.\d\d\|2\.5", odds["liveOU"])
    realtime = next(f for f in frames if f["channel"] == "STATS_REALTIME")
    assert realtime["type"] == "stats_update_realtime" and realtime["data"]["changedStats"]
    odds_rt = next(f for f in frames if f["channel"] == "ODDS_REALTIME")
    assert odds_rt["type"] == "odds_update_realtime" and odds_rt["data"]["changedOdds"]
    main_rt = next(f for f in frames if f["channel"] == "MAIN_REALTIME")
    assert main_rt["matchId"] == match.realtime_id


def test_batch_update_for_all_scope(make_sim: MakeSim, connect: Connect) -> None:
    """B.3: with scope all, STATS/ODDS send batch_update every interval, not each change."""
    sim = make_sim(feed_batch_interval=0.1)
    ws = connect(sim.feed_url)
    ws.feed("subscribe", channel="STATS", scope="all")
    ws.feed("subscribe", channel="ODDS", scope="all")
    sim.step_feed(20)
    frames = [ws.recv(timeout=1) for _ in range(4)]
    assert {f["eventType"] for f in frames} == {"batch_update"}
    assert {f["channel"] for f in frames} == {"STATS", "ODDS"}
    batch = frames[0]
    assert (batch["type"], batch["scope"], batch["id"]) == ("event", "all", None)
    assert batch["data"]["matches"] and {"matchId", "leagueId", "data"} == set(
        batch["data"]["matches"][0]
    )


def test_publish_feed_routes_by_topic(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.feed_url)
    ws.feed("subscribe", channel="MAIN", scope="match:1")
    ws.feed("subscribe", channel="STATS", scope="league:9")
    shape1 = {"type": "goal", "channel": "MAIN", "matchId": "1", "leagueId": "9", "ts": 1,
              "data": {}}  # fmt: skip
    shape2 = {"type": "event", "channel": "STATS", "scope": "league", "id": "9",
              "eventType": "stats_update", "eventId": "e", "ts": 1, "data": {}}  # fmt: skip
    assert sim.publish_feed(shape1) == 1
    assert sim.publish_feed(shape2) == 1
    assert sim.publish_feed({**shape1, "matchId": "2", "leagueId": "8"}) == 0
    assert [ws.recv(), ws.recv()] == [shape1, shape2]


def test_no_token_in_debug_logs(sim: Simulator, connect: Connect,
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = sim.feed_token
    assert rest(sim, "/v1/ws/new", sim.feed_api_token)[0] == 200
    connect(sim.feed_url).feed("ping")
    refused(sim.feed_url.replace(token, "0" * len(token)))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /?token=***" in text and "GET /v1/ws/new?t=***" in text
    assert token not in text and sim.feed_api_token not in text and "0" * 20 not in text


def pieces_in(secret: str, text: str, size: int = 8) -> list[str]:
    """Every ``size``-character piece of ``secret`` found in ``text``."""
    pieces = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    return sorted(p for p in pieces if p in text)


def test_no_token_fragment_in_debug_logs_at_the_end_of_a_long_frame(
    sim: Simulator, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: websockets logs only the first and last characters of a long frame, so a
    secret at the end was not recognised by the patterns. Issued tokens and API tokens are
    now hidden verbatim, in the full frame, before it is shortened."""
    caplog.set_level(logging.DEBUG)
    token = sim.feed_token
    ws = connect(sim.feed_url)
    ws.send({"action": "ping", "padding": "p" * 200, "token": token})
    assert ws.recv()["type"] == "pong"
    ws.send({"action": "ping", "padding": "p" * 200, "key": sim.feed_api_token})
    assert ws.recv()["type"] == "pong"
    ws.ws.close()
    assert sim.wait_for(lambda: sim.stats.connections_active == 0, 2)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "ppp" in text  # the frames were logged ...
    assert pieces_in(token, text) == [] and pieces_in(sim.feed_api_token, text) == []


def test_command_times_and_messages_are_bounded(make_sim: MakeSim, connect: Connect) -> None:
    """Regression: every command's time and body was kept forever."""
    sim = make_sim(max_recorded_messages=3, feed_max_commands_per_second=None)
    ws = connect(sim.feed_url)
    for _ in range(5):
        assert ws.feed("ping")["type"] == "pong"
    info = sim.active_connections[0]
    assert len(info.command_times) == 3 and len(info.received) == 3
    assert list(info.command_times) == sorted(info.command_times)
    assert [m.at for m in info.received] == list(info.command_times)  # the latest three
    assert sim.stats.commands_received == 5


def test_the_subscribed_reply_comes_before_updates_of_that_topic(
    make_sim: MakeSim, connect: Connect
) -> None:
    """With updates and batch updates every few milliseconds, a subscription's reply still
    arrives before anything sent because of it."""
    sim = make_sim(feed_rate=2000, feed_batch_interval=0.002, feed_max_connections=20)
    for _ in range(10):
        for channel in ("STATS", "ODDS"):
            reply = connect(sim.feed_url).feed("subscribe", channel=channel, scope="all")
            assert reply["type"] == "subscribed" and reply["channel"] == channel, reply
