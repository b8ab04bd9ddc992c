"""FeedProtocol, the Sans-I/O core of the Soccer Football Info feed.

Seed: ``soccer-feed-commands.txt`` (commands subscribe / unsubscribe / ping, the scope
options, the four error codes). Frame shapes: protocols.md part B.2; every documented frame
lives in ``tests/data/feed_*.json``. No sockets, no clock: every ``now`` is explicit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmws.errors import (
    ConfigError,
    LocalProtocolError,
    RemoteProtocolError,
    ServerError,
    SubscriptionError,
)
from mmws.feed.events import (
    FeedError,
    FeedEvent,
    FeedPong,
    FeedSubscribed,
    FeedUnsubscribed,
    OddsRealtimeUpdate,
    OddsUpdate,
    StatsRealtimeUpdate,
    StatsUpdate,
)
from mmws.feed.protocol import FEED_CHANNELS, FeedProtocol, Request, topic_of
from mmws.mm.events import UnknownMessage

pytestmark = pytest.mark.usefixtures("json_backend")  # both JSON parsers

DATA = Path(__file__).resolve().parent.parent / "data"


def fixture_text(name: str) -> str:
    return (DATA / f"{name}.json").read_text(encoding="utf-8")


def fixture(name: str) -> dict[str, Any]:
    value = json.loads(fixture_text(name))
    assert isinstance(value, dict)
    return value


def sent(proto: FeedProtocol) -> list[dict[str, Any]]:
    return [json.loads(text) for text in proto.data_to_send()]


def is_done(request: Request) -> bool:
    """``request.done`` read through a call, so a type checker does not narrow it for good."""
    return request.done


def receive(proto: FeedProtocol, frame: dict[str, Any] | str, now: float = 0.0) -> list[Any]:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    proto.receive_text(text, now)
    return proto.events_received()


# -- commands -------------------------------------------------------------------------------


def test_the_six_channels() -> None:
    """Seed: MAIN, STATS, ODDS, STATS_REALTIME, ODDS_REALTIME; current docs add MAIN_REALTIME."""
    assert FEED_CHANNELS == (
        "MAIN",
        "STATS",
        "ODDS",
        "STATS_REALTIME",
        "ODDS_REALTIME",
        "MAIN_REALTIME",
    )


@pytest.mark.parametrize(
    ("name", "style", "action", "channel", "scope"),
    [
        ("feed_subscribe_all", "seed", "subscribe", "MAIN", "all"),
        ("feed_subscribe_all", "split", "subscribe", "MAIN", "all"),
        ("feed_subscribe_seed_scope", "seed", "subscribe", "STATS", "match:12345"),
        ("feed_subscribe_split_scope", "split", "subscribe", "MAIN", "match:b01d28ac92221034"),
        ("feed_unsubscribe_seed_scope", "seed", "unsubscribe", "STATS", "match:12345"),
    ],
)
def test_commands_match_the_documented_requests(
    name: str, style: Any, action: str, channel: str, scope: str
) -> None:
    proto = FeedProtocol(scope_style=style)
    request = getattr(proto, action)(channel, scope)
    assert sent(proto) == [fixture(name)]
    assert (request.action, request.channel, request.scope) == (action, channel, scope)
    assert request.topic == f"{channel}:{scope}"
    assert not is_done(request) and request.error is None
    assert proto.pending == 1


@pytest.mark.parametrize("action", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize(
    ("scope", "seed_body", "split_body"),
    [
        ("all", {"scope": "all"}, {"scope": "all"}),
        ("match:12345", {"scope": "match:12345"}, {"scope": "match", "id": "12345"}),
        ("league:67890", {"scope": "league:67890"}, {"scope": "league", "id": "67890"}),
        (
            "league:f2b16fa54cb525d",
            {"scope": "league:f2b16fa54cb525d"},
            {"scope": "league", "id": "f2b16fa54cb525d"},
        ),
    ],
)
def test_every_scope_form_in_both_styles(
    action: str, scope: str, seed_body: dict[str, str], split_body: dict[str, str]
) -> None:
    for style, body in (("seed", seed_body), ("split", split_body)):
        proto = FeedProtocol(scope_style=style)  # type: ignore[arg-type]
        getattr(proto, action)("ODDS", scope)
        assert sent(proto) == [{"action": action, "channel": "ODDS", **body}], style


@pytest.mark.parametrize("channel", FEED_CHANNELS)
@pytest.mark.parametrize("style", ["seed", "split"])
def test_every_channel_is_accepted(channel: str, style: Any) -> None:
    proto = FeedProtocol(scope_style=style)
    proto.subscribe(channel, "all")
    proto.unsubscribe(channel, "all")
    assert sent(proto) == [
        {"action": "subscribe", "channel": channel, "scope": "all"},
        {"action": "unsubscribe", "channel": channel, "scope": "all"},
    ]
    assert proto.pending == 2


def test_requests_go_out_in_call_order() -> None:
    proto = FeedProtocol()
    proto.subscribe("MAIN", "all")
    proto.ping(1.0)
    proto.unsubscribe("MAIN", "all")
    assert [body["action"] for body in sent(proto)] == ["subscribe", "ping", "unsubscribe"]
    assert proto.data_to_send() == []


@pytest.mark.parametrize("style", ["seed", "split"])
def test_ping_is_a_bare_action_and_arms_the_keepalive(style: Any) -> None:
    proto = FeedProtocol(scope_style=style)
    proto.start(10.0)
    proto.ping(42.5)
    assert sent(proto) == [fixture("feed_ping")]
    assert proto.pending == 0  # a ping is not a request awaiting a subscribe reply
    assert proto.keepalive.ping_outstanding_since == 42.5
    assert proto.keepalive.last_ping == 42.5


def test_start_sets_the_keepalive_clocks() -> None:
    proto = FeedProtocol()
    proto.start(7.0)
    assert proto.keepalive.last_received == 7.0
    assert proto.keepalive.last_ping == 7.0
    assert proto.keepalive.ping_outstanding_since is None


@pytest.mark.parametrize(
    "channel",
    ["main", "LIVE", "", "MAIN ", "STATS-REALTIME", "MAIN_REALTIME2", "all"],
)
@pytest.mark.parametrize("action", ["subscribe", "unsubscribe"])
def test_a_bad_channel_is_a_config_error_and_nothing_is_queued(channel: str, action: str) -> None:
    proto = FeedProtocol()
    with pytest.raises(ConfigError) as caught:
        getattr(proto, action)(channel, "all")
    assert repr(channel) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert proto.pending == 0
    assert proto.data_to_send() == []


@pytest.mark.parametrize(
    "scope",
    [
        "",
        "ALL",
        "All",
        "match",
        "match:",
        "league:",
        "team:1",
        "match:12 345",
        "match:1:2",
        "match:12345 ",
        " all",
        "league:" + "x" * 65,
        "match:1/2",
    ],
)
@pytest.mark.parametrize("style", ["seed", "split"])
def test_a_bad_scope_is_a_config_error_and_nothing_is_queued(scope: str, style: Any) -> None:
    proto = FeedProtocol(scope_style=style)
    with pytest.raises(ConfigError) as caught:
        proto.subscribe("MAIN", scope)
    assert repr(scope) in str(caught.value)
    assert proto.pending == 0
    assert proto.data_to_send() == []


def test_a_non_string_scope_is_a_config_error() -> None:
    proto = FeedProtocol()
    bad: Any = 12345
    with pytest.raises(ConfigError, match="12345"):
        proto.subscribe("MAIN", bad)
    assert proto.pending == 0 and proto.data_to_send() == []


def test_longest_allowed_id_and_id_characters() -> None:
    proto = FeedProtocol(scope_style="split")
    ident = "A-b_9." + "z" * 58  # 64 characters
    proto.subscribe("MAIN", f"match:{ident}")
    assert sent(proto) == [
        {"action": "subscribe", "channel": "MAIN", "scope": "match", "id": ident}
    ]


def test_a_bad_scope_style_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'both'"):
        FeedProtocol(scope_style="both")  # type: ignore[arg-type]


def test_topic_of_is_the_servers_topic_key() -> None:
    assert topic_of("STATS", "match:12345") == "STATS:match:12345"
    assert topic_of("MAIN", "all") == "MAIN:all"
    assert Request("subscribe", "ODDS", "league:9").topic == "ODDS:league:9"


# -- replies --------------------------------------------------------------------------------


def test_documented_subscribed_replies_match_by_topic_key_out_of_order() -> None:
    proto = FeedProtocol()
    main = proto.subscribe("MAIN", "all")
    stats = proto.subscribe("STATS", "match:12345")
    events = receive(proto, fixture_text("feed_subscribed_match"))
    assert stats.done and stats.error is None
    assert not is_done(main)
    assert events == [
        FeedSubscribed("STATS", "match:12345", "STATS:match:12345", "Successfully subscribed")
    ]
    events = receive(proto, fixture_text("feed_subscribed_all"))
    assert main.done and main.error is None
    assert events == [FeedSubscribed("MAIN", "all", "MAIN:all", "Successfully subscribed")]
    assert proto.pending == 0
    assert proto.active == {
        "STATS:match:12345": ("STATS", "match:12345"),
        "MAIN:all": ("MAIN", "all"),
    }


def test_split_style_reply_without_topic_key_matches_by_channel_scope_and_id() -> None:
    proto = FeedProtocol(scope_style="split")
    first = proto.subscribe("STATS", "match:111")
    second = proto.subscribe("STATS", "match:222")
    third = proto.subscribe("STATS", "league:222")
    events = receive(
        proto, {"type": "subscribed", "channel": "STATS", "scope": "match", "id": "222"}
    )
    assert second.done and not is_done(first) and not is_done(third)
    assert events == [FeedSubscribed("STATS", "match:222", "STATS:match:222", "")]
    receive(proto, {"type": "subscribed", "channel": "STATS", "scope": "league", "id": "222"})
    assert third.done and not is_done(first)
    assert proto.pending == 1


def test_a_numeric_id_in_a_reply_still_matches() -> None:
    proto = FeedProtocol(scope_style="split")
    request = proto.subscribe("ODDS", "match:12345")
    receive(proto, {"type": "subscribed", "channel": "ODDS", "scope": "match", "id": 12345})
    assert request.done and request.error is None


def test_seed_style_reply_with_scope_string_matches() -> None:
    proto = FeedProtocol()
    other = proto.subscribe("ODDS", "all")
    request = proto.subscribe("ODDS", "league:67890")
    events = receive(proto, {"type": "subscribed", "channel": "ODDS", "scope": "league:67890"})
    assert request.done and not is_done(other)
    assert events == [FeedSubscribed("ODDS", "league:67890", "ODDS:league:67890", "")]


def test_a_reply_naming_no_topic_answers_the_oldest_request() -> None:
    proto = FeedProtocol()
    first = proto.subscribe("MAIN", "all")
    second = proto.subscribe("ODDS", "all")
    events = receive(proto, {"type": "subscribed", "message": "ok"})
    assert first.done and not is_done(second)
    assert events == [FeedSubscribed("MAIN", "all", "MAIN:all", "ok")]


def test_a_confirmation_for_another_topic_does_not_consume_a_pending_request() -> None:
    proto = FeedProtocol()
    request = proto.subscribe("MAIN", "all")
    events = receive(proto, {"type": "subscribed", "topicKey": "ODDS:match:9", "channel": "ODDS"})
    assert not is_done(request) and proto.pending == 1
    # an unsolicited confirmation is still reported, and tracked as active
    assert events == [FeedSubscribed("ODDS", "match:9", "ODDS:match:9", "")]
    assert proto.active == {"ODDS:match:9": ("ODDS", "match:9")}


def test_unsubscribed_reply_answers_the_unsubscribe_not_the_subscribe_of_the_same_topic() -> None:
    proto = FeedProtocol()
    sub = proto.subscribe("STATS", "match:12345")
    unsub = proto.unsubscribe("STATS", "match:12345")
    events = receive(
        proto,
        {
            "type": "unsubscribed",
            "channel": "STATS",
            "scope": "match",
            "id": "12345",
            "topicKey": "STATS:match:12345",
            "message": "Successfully unsubscribed",
        },
    )
    assert unsub.done and not is_done(sub)
    assert events == [
        FeedUnsubscribed("STATS", "match:12345", "STATS:match:12345", "Successfully unsubscribed")
    ]


def test_active_topics_follow_subscribed_and_unsubscribed() -> None:
    proto = FeedProtocol()
    proto.subscribe("STATS", "match:12345")
    proto.subscribe("MAIN", "all")
    receive(proto, fixture_text("feed_subscribed_match"))
    receive(proto, fixture_text("feed_subscribed_all"))
    assert set(proto.active) == {"STATS:match:12345", "MAIN:all"}
    unsub = proto.unsubscribe("STATS", "match:12345")
    assert set(proto.active) == {"STATS:match:12345", "MAIN:all"}  # not before the reply
    receive(proto, {"type": "unsubscribed", "topicKey": "STATS:match:12345"})
    assert unsub.done and unsub.error is None
    assert proto.active == {"MAIN:all": ("MAIN", "all")}
    # an unsolicited unsubscribed for an unknown topic changes nothing and is reported
    events = receive(proto, {"type": "unsubscribed", "topicKey": "ODDS:all", "channel": "ODDS"})
    assert events == [FeedUnsubscribed("ODDS", "all", "ODDS:all", "")]
    assert proto.active == {"MAIN:all": ("MAIN", "all")}
    assert "MAIN:all" in repr(proto) and "pending=0" in repr(proto)


def test_the_documented_error_reply_answers_the_oldest_pending_request() -> None:
    proto = FeedProtocol()
    first = proto.subscribe("STATS_REALTIME", "all")
    second = proto.subscribe("MAIN", "all")
    events = receive(proto, fixture_text("feed_error"))
    assert events == []  # the request carries the error; no loose FeedError
    assert first.done
    assert isinstance(first.error, SubscriptionError)
    assert first.error.code == "CHANNEL_NOT_ALLOWED"
    assert first.error.message == "Channel STATS_REALTIME is not available for your plan"
    assert not is_done(second) and proto.pending == 1
    assert proto.active == {}
    receive(proto, {"type": "error", "code": "SUBSCRIPTION_LIMIT", "message": "limit"})
    assert second.done and second.error is not None and second.error.code == "SUBSCRIPTION_LIMIT"
    assert proto.pending == 0


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("CHANNEL_NOT_ALLOWED", "Channel STATS is not available for your plan"),
        ("SUBSCRIPTION_LIMIT", "Maximum subscriptions reached"),
        ("INVALID_CHANNEL", "Channel name is not valid"),
        ("INVALID_SCOPE", "Scope format is not valid"),
        ("SOMETHING_NEW", "A code the docs never listed"),
    ],
)
def test_each_error_code_becomes_a_subscription_error(code: str, message: str) -> None:
    proto = FeedProtocol()
    request = proto.subscribe("STATS", "match:12345")
    receive(proto, {"type": "error", "code": code, "message": message})
    error = request.error
    assert request.done
    assert isinstance(error, SubscriptionError) and isinstance(error, ServerError)
    assert error.code == code
    assert error.message == message
    assert str(error) == f"{code}: {message}"


def test_an_error_naming_a_topic_answers_that_request() -> None:
    proto = FeedProtocol()
    first = proto.subscribe("MAIN", "all")
    second = proto.unsubscribe("STATS", "match:12345")
    receive(
        proto,
        {
            "type": "error",
            "code": "NOT_SUBSCRIBED",
            "topicKey": "STATS:match:12345",
            "message": "x",
        },
    )
    assert second.done and second.error is not None and second.error.code == "NOT_SUBSCRIBED"
    assert not is_done(first)


def test_an_error_with_no_pending_request_is_a_feed_error_event() -> None:
    proto = FeedProtocol()
    events = receive(
        proto, {"type": "error", "code": "INVALID_COMMAND", "message": "Unknown action: foo"}
    )
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, FeedError)
    assert not issubclass(type(event), FeedEvent)
    assert event.code == "INVALID_COMMAND"
    assert event.message == "Unknown action: foo"
    assert event.topic is None
    assert isinstance(event.error, SubscriptionError)
    assert event.error.code == "INVALID_COMMAND"


def test_an_error_without_code_or_message_still_carries_a_message() -> None:
    proto = FeedProtocol()
    request = proto.subscribe("MAIN", "all")
    receive(proto, {"type": "error"})
    assert request.error is not None
    assert request.error.code is None
    assert request.error.message == "error without a message"
    events = receive(proto, {"type": "error", "code": 429})
    assert events == [FeedError("429", "error without a message", None)]


def test_connection_lost_fails_every_pending_request() -> None:
    proto = FeedProtocol()
    requests = [proto.subscribe("MAIN", "all"), proto.unsubscribe("ODDS", "league:1")]
    proto.connection_lost()
    assert proto.pending == 0
    for request in requests:
        assert request.done
        assert isinstance(request.error, SubscriptionError)
        assert request.error.code is None
        assert "closed" in request.error.message
    assert requests[0].error is not requests[1].error
    with pytest.raises(LocalProtocolError):
        proto.subscribe("MAIN", "all")
    with pytest.raises(LocalProtocolError):
        proto.ping(1.0)
    assert proto.data_to_send() == [
        '{"action": "subscribe", "channel": "MAIN", "scope": "all"}',
        '{"action": "unsubscribe", "channel": "ODDS", "scope": "league:1"}',
    ]


# -- pong -----------------------------------------------------------------------------------


def test_pong_gives_server_time_and_round_trip_time() -> None:
    proto = FeedProtocol()
    proto.start(0.0)
    proto.ping(100.0)
    events = receive(proto, fixture_text("feed_pong"), now=100.25)
    assert events == [FeedPong(1705314600000, 0.25)]
    assert proto.keepalive.last_rtt == 0.25
    assert proto.keepalive.ping_outstanding_since is None


def test_pong_without_a_ping_or_timestamp() -> None:
    proto = FeedProtocol()
    assert receive(proto, {"type": "pong"}, now=5.0) == [FeedPong(None, None)]
    proto.ping(6.0)
    assert receive(proto, {"type": "pong", "ts": "1705314600000"}, now=6.5) == [FeedPong(None, 0.5)]
    proto.ping(7.0)
    assert receive(proto, {"type": "pong", "ts": True}, now=7.0) == [FeedPong(None, 0.0)]


def test_receiving_anything_updates_last_received() -> None:
    proto = FeedProtocol()
    proto.start(0.0)
    receive(proto, fixture_text("feed_pong"), now=3.0)
    assert proto.keepalive.last_received == 3.0
    with pytest.raises(RemoteProtocolError):
        proto.receive_text("garbage", 4.0)
    assert proto.keepalive.last_received == 4.0


# -- garbage --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "",
        "{",
        "[1, 2]",
        "[]",
        '"text"',
        "42",
        "null",
        "true",
        '{"no": "type"}',
        '{"type": 5}',
        '{"type": null}',
        '{"type": ["pong"]}',
        b"\xff\xfe\x00garbage",
        b'{"type": "pong", "x": "\xc3\x28"}',
        b"\x80",
        "[" * 100_000,
    ],
)
def test_garbage_raises_remote_protocol_error_and_the_next_frame_decodes(
    frame: str | bytes,
) -> None:
    proto = FeedProtocol()
    proto.ping(1.0)
    with pytest.raises(RemoteProtocolError) as caught:
        proto.receive_text(frame, 2.0)
    assert len(caught.value.raw) <= 200
    assert proto.events_received() == []
    proto.receive_text(fixture_text("feed_pong").encode(), 3.0)
    assert proto.events_received() == [FeedPong(1705314600000, 2.0)]


def test_bytes_frames_decode_like_text() -> None:
    proto = FeedProtocol()
    proto.subscribe("MAIN", "all")
    proto.receive_text(fixture_text("feed_subscribed_all").encode("utf-8"), 0.0)
    assert proto.events_received() == [
        FeedSubscribed("MAIN", "all", "MAIN:all", "Successfully subscribed")
    ]


def test_a_data_frame_without_channel_is_an_unknown_message() -> None:
    proto = FeedProtocol()
    events = receive(proto, {"type": "something", "x": 1})
    assert len(events) == 1
    assert isinstance(events[0], UnknownMessage)
    assert events[0].raw == {"type": "something", "x": 1}


# -- property -------------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
_json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_odd_strings = st.sampled_from(
    [
        "55;45",
        "1.90;1.90|2.5",
        "x;y",
        "|",
        "",
        "match",
        "league",
        "all",
        "12345",
        "2024-01-15T10:00:00Z",
    ]
)
_field = _json_values | _odd_strings
_types = st.sampled_from(
    [
        "subscribed",
        "unsubscribed",
        "error",
        "pong",
        "event",
        "match_start",
        "goal",
        "stats_update",
        "odds_update",
        "stats_update_realtime",
        "odds_update_realtime",
        "batch_update",
        "mystery",
    ]
)
_changed = st.lists(
    st.fixed_dictionaries({}, optional={"stat": _field, "market": _field, "value": _field}),
    max_size=3,
)
_frames = st.fixed_dictionaries(
    {"type": _types | _json_values},
    optional={
        "channel": st.sampled_from(FEED_CHANNELS) | _field,
        "scope": st.sampled_from(["all", "match", "league", "match:1"]) | _field,
        "id": _field,
        "topicKey": st.sampled_from(["MAIN:all", "STATS:match:1"]) | _field,
        "code": _field,
        "message": _field,
        "ts": _field,
        "matchId": _field,
        "leagueId": _field,
        "eventType": _types | _field,
        "eventId": _field,
        "data": st.dictionaries(st.text(max_size=8), _field, max_size=4)
        | st.fixed_dictionaries({"changedStats": _changed, "changedOdds": _changed})
        | _field,
    },
)
_inputs = (
    st.text()
    | st.binary()
    | _json_values.map(json.dumps)
    | _frames.map(json.dumps)
    | _frames.map(lambda frame: json.dumps(frame).encode("utf-8"))
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(_inputs, min_size=1, max_size=4))
def test_receive_text_yields_events_or_remote_protocol_error(frames: list[str | bytes]) -> None:
    proto = FeedProtocol(scope_style="split")
    proto.subscribe("MAIN", "all")
    proto.subscribe("STATS", "match:1")
    proto.ping(0.0)
    for index, frame in enumerate(frames):
        try:
            proto.receive_text(frame, float(index))
        except RemoteProtocolError:
            continue
        for event in proto.events_received():
            # the typed views must not raise either
            if isinstance(event, StatsUpdate | StatsRealtimeUpdate):
                dict(event.stats)
            if isinstance(event, OddsUpdate | OddsRealtimeUpdate):
                dict(event.odds)
            repr(event)
    assert proto.pending <= 2
