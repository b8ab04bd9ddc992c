"""Feed data events: both envelopes, the typed classes, ids, timestamps and value parsing.

protocols.md B.3: shape 1 (``type`` = event name, ``matchId``/``leagueId`` at top level) and
shape 2 (``type: "event"``, ``eventType``, ``scope`` + ``id``). Stats are ``"a;b"`` strings,
odds ``"home;draw;away"`` or ``"over;under|line"``, ``dropping1x2`` signed deltas.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from mmws._frozen import thaw
from mmws.feed.events import (
    BatchUpdate,
    FeedError,
    FeedEvent,
    FeedPong,
    FeedSubscribed,
    FeedUnsubscribed,
    MatchEvent,
    Odds,
    OddsRealtimeUpdate,
    OddsUpdate,
    StatPair,
    StatsRealtimeUpdate,
    StatsUpdate,
    parse_odds,
    parse_pair,
)
from mmws.feed.protocol import FeedProtocol

DATA = Path(__file__).resolve().parent.parent / "data"
UTC = timezone.utc


def fixture(name: str) -> dict[str, Any]:
    value = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


def decode(frame: dict[str, Any], now: float = 12.5) -> Any:
    proto = FeedProtocol()
    proto.receive_text(json.dumps(frame), now)
    events = proto.events_received()
    assert len(events) == 1
    return events[0]


def shape1(event_type: str, channel: str = "MAIN", **extra: Any) -> dict[str, Any]:
    frame = {"type": event_type, "channel": channel, "matchId": "12345", "leagueId": "67890"}
    frame.update(extra)
    return frame


def shape2(event_type: str, channel: str = "STATS", **extra: Any) -> dict[str, Any]:
    frame = {"type": "event", "channel": channel, "scope": "match", "id": "12345"}
    frame["eventType"] = event_type
    frame.update(extra)
    return frame


# -- envelopes ------------------------------------------------------------------------------


def test_match_start_shape_1() -> None:
    frame = fixture("feed_match_start")
    event = decode(frame, now=12.5)
    assert type(event) is MatchEvent
    assert isinstance(event, FeedEvent)
    assert event.channel == "MAIN"
    assert event.event_type == "match_start"
    assert event.match_id == "12345"
    assert event.league_id == "67890"
    assert event.ts == datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
    assert event.ts.utcoffset() == timedelta(0)
    assert event.scope is None
    assert event.event_id is None
    assert event.data["teamA"] == {"id": "1001", "name": "Manchester United"}
    assert event.data["teamB"]["name"] == "Liverpool"
    assert event.data["championship"]["seasonName"] == "2023/2024"
    assert event.raw == frame
    assert event.received_at == 12.5


def test_stats_update_shape_2() -> None:
    frame = fixture("feed_stats_update")
    event = decode(frame)
    assert type(event) is StatsUpdate
    assert event.channel == "STATS"
    assert event.event_type == "stats_update"
    assert event.scope == "match"
    assert event.match_id == "12345"  # from "id" because scope == "match"
    assert event.league_id is None
    assert event.event_id == "abc123"
    assert event.ts == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert event.data["possession"] == "55;45"  # data keeps the wire's strings
    assert event.raw == frame


def test_odds_update_shape_2() -> None:
    event = decode(fixture("feed_odds_update"))
    assert type(event) is OddsUpdate
    assert (event.channel, event.event_type, event.match_id, event.event_id) == (
        "ODDS",
        "odds_update",
        "12345",
        "def456",
    )


def test_stats_update_realtime_shape_1() -> None:
    event = decode(fixture("feed_stats_update_realtime"))
    assert type(event) is StatsRealtimeUpdate
    assert event.channel == "STATS_REALTIME"
    assert event.match_id == "12345" and event.league_id == "67890"
    assert event.stats == {"possession": StatPair(56.0, 44.0), "corners": StatPair(5.0, 2.0)}


@pytest.mark.parametrize(
    ("frame", "cls"),
    [
        (shape1("match_start"), MatchEvent),
        (shape1("goal"), MatchEvent),
        (shape1("halftime"), MatchEvent),
        (shape1("second_half_start"), MatchEvent),
        (shape1("match_end"), MatchEvent),
        (shape1("goal", "MAIN_REALTIME"), MatchEvent),
        (shape2("stats_update"), StatsUpdate),
        (shape2("odds_update", "ODDS"), OddsUpdate),
        (shape1("stats_update_realtime", "STATS_REALTIME"), StatsRealtimeUpdate),
        (shape1("odds_update_realtime", "ODDS_REALTIME"), OddsRealtimeUpdate),
        (shape2("batch_update", scope="all", id=None), BatchUpdate),
        (shape2("card_shown"), FeedEvent),
        (shape1("var_review"), FeedEvent),
        # the other envelope for the same names decodes to the same classes
        (shape2("goal", "MAIN"), MatchEvent),
        (shape1("stats_update", "STATS"), StatsUpdate),
        (shape1("odds_update", "ODDS"), OddsUpdate),
    ],
)
def test_event_name_picks_the_class(frame: dict[str, Any], cls: type[FeedEvent]) -> None:
    event = decode(frame)
    assert type(event) is cls
    assert isinstance(event, FeedEvent)
    expected_name = frame.get("eventType", frame["type"])
    assert event.event_type == expected_name
    assert event.channel == frame["channel"]


def test_shape_2_without_event_type_keeps_the_envelope_name() -> None:
    event = decode({"type": "event", "channel": "STATS", "scope": "all"})
    assert type(event) is FeedEvent
    assert event.event_type == "event"
    event = decode({"type": "event", "channel": "STATS", "eventType": 7})
    assert type(event) is FeedEvent and event.event_type == "event"


def test_league_scope_gives_league_id_and_no_match_id() -> None:
    event = decode(shape2("stats_update", scope="league", id="f2b16fa54cb525d"))
    assert event.league_id == "f2b16fa54cb525d"
    assert event.match_id is None
    assert event.scope == "league"


def test_all_scope_gives_no_ids() -> None:
    event = decode(shape2("batch_update", scope="all", id=None))
    assert event.match_id is None and event.league_id is None and event.scope == "all"


def test_match_id_prefers_match_id_field_and_ids_are_strings() -> None:
    event = decode(shape2("stats_update", matchId=999, leagueId=67890))
    assert event.match_id == "999"
    assert event.league_id == "67890"
    event = decode(shape2("stats_update", id=12345))
    assert event.match_id == "12345"


def test_data_that_is_not_an_object_reads_as_empty_and_raw_keeps_it() -> None:
    event = decode(shape1("goal", data=[1, 2]))
    assert event.data == {}
    assert event.raw["data"] == (1, 2)  # arrays decode to tuples: deep-frozen
    assert decode(shape1("goal")).data == {}


def test_data_and_raw_are_read_only() -> None:
    event = decode(fixture("feed_match_start"))
    with pytest.raises(TypeError):
        event.data["x"] = 1
    with pytest.raises(TypeError):
        event.raw["type"] = "goal"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.match_id = "1"


def test_equality_ignores_received_at() -> None:
    frame = fixture("feed_match_start")
    assert decode(frame, now=1.0) == decode(frame, now=2.0)
    assert decode(frame) != decode({**frame, "matchId": "54321"})


# -- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1705312800000, datetime(2024, 1, 15, 10, 0, tzinfo=UTC)),
        (1705312800500, datetime(2024, 1, 15, 10, 0, 0, 500000, tzinfo=UTC)),
        (1705312800000.0, datetime(2024, 1, 15, 10, 0, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        ("2024-01-15T10:00:00Z", datetime(2024, 1, 15, 10, 0, tzinfo=UTC)),
    ],
)
def test_ts_becomes_an_aware_utc_datetime(ts: Any, expected: datetime) -> None:
    event = decode(shape1("goal", ts=ts))
    assert event.ts == expected
    assert event.ts.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "ts",
    [None, "yesterday", "", True, False, [1705312800000], {"ms": 1}, 10**30, 1e300, -1e300],
)
def test_unreadable_ts_is_none_and_raw_keeps_it(ts: Any) -> None:
    event = decode(shape1("goal", ts=ts))
    assert event.ts is None
    assert thaw(event.raw["ts"]) == ts


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_ts_is_none(text: str) -> None:
    proto = FeedProtocol()
    proto.receive_text('{"type": "goal", "channel": "MAIN", "ts": ' + text + "}", 0.0)
    (event,) = proto.events_received()
    assert event.ts is None
    assert math.isnan(event.raw["ts"]) or math.isinf(event.raw["ts"])


def test_missing_ts_is_none() -> None:
    event = decode({"type": "goal", "channel": "MAIN"})
    assert event.ts is None
    assert "ts" not in event.raw


# -- value parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("55;45", StatPair(55.0, 45.0)),
        ("0;0", StatPair(0.0, 0.0)),
        ("0.85;0.42", StatPair(0.85, 0.42)),
        ("12;9", StatPair(12.0, 9.0)),
    ],
)
def test_parse_pair(text: str, expected: StatPair) -> None:
    assert parse_pair(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.90;1.90|2.5", Odds((1.9, 1.9), 2.5)),
        ("1.95;1.85|-0.5", Odds((1.95, 1.85), -0.5)),
        ("1.90;1.90|-0.25", Odds((1.9, 1.9), -0.25)),
        ("2.10;3.40;3.50", Odds((2.1, 3.4, 3.5), None)),
        ("-0.05;+0.10;+0.15", Odds((-0.05, 0.10, 0.15), None)),
    ],
)
def test_parse_odds(text: str, expected: Odds) -> None:
    assert parse_odds(text) == expected


def test_odds_line_is_none_for_1x2() -> None:
    assert parse_odds("2.10;3.40;3.50").line is None
    assert parse_odds("2.10;3.40;3.50").prices == (2.1, 3.4, 3.5)


@pytest.mark.parametrize("text", ["", "55", "55;45;1", "a;b", "55;", ";45", "55,45", "1.9;x"])
def test_parse_pair_rejects_bad_text_and_names_it(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_pair(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    "text",
    ["", "|2.5", "1.90;1.90|", "1.90;;1.90", "x;y|2.5", "1.9;1.9|two", "1.9|2|3", "2.10,3.40"],
)
def test_parse_odds_rejects_bad_text_and_names_it(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_odds(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("value", [None, 55, ["55", "45"]])
def test_parsers_reject_non_strings(value: Any) -> None:
    with pytest.raises(ValueError, match=type(value).__name__):
        parse_pair(value)
    with pytest.raises(ValueError, match=type(value).__name__):
        parse_odds(value)


def test_stats_update_stats_types_what_parses() -> None:
    event = decode(fixture("feed_stats_update"))
    stats = event.stats
    assert stats["possession"] == StatPair(55.0, 45.0)
    assert stats["score"] == StatPair(1.0, 0.0)
    assert stats["xg"] == StatPair(0.85, 0.42)
    assert stats["fouls"] == StatPair(8.0, 10.0)
    # not pairs: kept as the wire sent them
    assert stats["timer"] == "35"
    assert stats["status"] == "IN_PLAY"
    assert stats["extraTimer"] is None
    # null stays None
    assert stats["score1h"] is None and stats["corners1h"] is None
    assert set(stats) == set(event.data)
    with pytest.raises(TypeError):
        stats["possession"] = StatPair(0, 0)


def test_stats_update_keeps_raw_strings_that_do_not_parse() -> None:
    event = decode(
        shape2("stats_update", data={"possession": "n/a", "corners": 4, "fouls": "8;10"})
    )
    assert event.stats == {"possession": "n/a", "corners": 4, "fouls": StatPair(8.0, 10.0)}


def test_odds_update_odds_types_every_market() -> None:
    event = decode(fixture("feed_odds_update"))
    odds = event.odds
    assert odds["kickoff1x2"] == Odds((2.1, 3.4, 3.5))
    assert odds["live1x2"] == Odds((1.85, 3.6, 4.2))
    assert odds["kickoffOU"] == Odds((1.9, 1.9), 2.5)
    assert odds["liveAH"] == Odds((1.8, 2.0), -0.5)
    assert odds["kickoffAsianCorners"] == Odds((1.85, 1.95), 9.5)
    assert odds["live1hGoals"] == Odds((2.2, 1.65), 0.5)
    assert odds["kickoff1hResult"] == Odds((2.5, 2.2, 3.0))
    assert odds["dropping1x2"] == Odds((-0.05, 0.1, 0.15))
    assert len(odds) == 20
    assert all(isinstance(value, Odds) for value in odds.values())


def test_odds_update_keeps_raw_strings_and_nulls() -> None:
    event = decode(
        shape2(
            "odds_update",
            "ODDS",
            data={"live1x2": "suspended", "liveOU": None, "liveAH": "1.8;2.0|-0.5"},
        )
    )
    assert event.odds == {"live1x2": "suspended", "liveOU": None, "liveAH": Odds((1.8, 2.0), -0.5)}


def test_realtime_stats_tolerate_odd_entries() -> None:
    data = {
        "changedStats": [
            {"stat": "possession", "value": "56;44"},
            {"stat": "corners", "value": None},
            {"stat": "status", "value": "HT"},
            {"value": "1;1"},
            {"stat": 5, "value": "1;1"},
            "possession",
        ]
    }
    event = decode(shape1("stats_update_realtime", "STATS_REALTIME", data=data))
    assert event.stats == {"possession": StatPair(56.0, 44.0), "corners": None, "status": "HT"}
    assert decode(shape1("stats_update_realtime", "STATS_REALTIME")).stats == {}
    bad = shape1("stats_update_realtime", "STATS_REALTIME", data={"changedStats": "possession"})
    assert decode(bad).stats == {}


def test_realtime_odds_parse_changed_odds() -> None:
    data = {
        "changedOdds": [
            {"market": "liveOU", "value": "2.10;1.70|2.5"},
            {"market": "live1x2", "value": "1.85;3.60;4.20"},
            {"market": "liveAH", "value": None},
            {"market": "liveAsianCorners", "value": "closed"},
            {"value": "1;1"},
            7,
        ]
    }
    event = decode(shape1("odds_update_realtime", "ODDS_REALTIME", data=data))
    assert event.odds == {
        "liveOU": Odds((2.1, 1.7), 2.5),
        "live1x2": Odds((1.85, 3.6, 4.2)),
        "liveAH": None,
        "liveAsianCorners": "closed",
    }
    assert decode(shape1("odds_update_realtime", "ODDS_REALTIME")).odds == {}
    bad = shape1("odds_update_realtime", "ODDS_REALTIME", data={"changedOdds": {"a": 1}})
    assert decode(bad).odds == {}


def test_replies_and_pongs_are_not_feed_events() -> None:
    controls: tuple[object, ...] = (
        FeedSubscribed("MAIN", "all", "MAIN:all"),
        FeedUnsubscribed("MAIN", "all", "MAIN:all"),
        FeedError("SUBSCRIPTION_LIMIT", "limit"),
        FeedPong(1, 0.1),
    )
    for control in controls:
        assert not isinstance(control, FeedEvent)


def test_feed_event_defaults() -> None:
    event = FeedEvent("MAIN", "goal")
    assert (event.match_id, event.league_id, event.ts, event.scope, event.event_id) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert event.data == {} and event.raw == {}
    assert "raw" not in repr(event)
