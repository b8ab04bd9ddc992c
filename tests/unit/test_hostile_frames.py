"""Property: any JSON value, placed in any field of every message kind of both protocols,
makes a protocol core raise nothing but ``RemoteProtocolError`` (issue 9, item 2).

Hostile values include what ``json.dumps`` cannot even write: nesting thousands of levels
deep, integers with thousands of digits, ``1e400``, ``NaN`` and ``Infinity``. They go into
the frame's text through a placeholder, so the core sees exactly those bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmws import FeedProtocol, MMProtocol, RemoteProtocolError
from mmws._frozen import MAX_DEPTH, freeze
from mmws.feed.events import FeedPong

pytestmark = pytest.mark.usefixtures("json_backend")  # both JSON parsers

DATA = Path(__file__).resolve().parent.parent / "data"
KEY = "6f1c1c4e-2f62-4a3e-9d7a-0b3f2a1e9c11"
HOLE = "__mmws_hole__"


def _load(name: str) -> dict[str, Any]:
    value = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


MM_TEMPLATES = [
    _load("seed_order_fill.json"),
    _load("seed_bet_placed.json"),
    _load("seed_emergency.json"),
    _load("seed_score_update.json"),
    _load("seed_subscribed.json"),
    _load("seed_pong.json"),
    _load("seed_heartbeat.json"),
    {"type": "broadcast", "channel": "accounts", "event": "UPDATE",
     "payload": {"exchange": "polymarket", "username": "u", "balance": 1.5},
     "old": {"balance": 1.0}},
    {"type": "error", "message": "invalid api key", "code": "AUTH"},
    {"type": "something_new", "data": {"a": [1, 2]}},
]
FEED_TEMPLATES = [
    _load("feed_odds_update.json"),
    _load("feed_stats_update.json"),
    _load("feed_stats_update_realtime.json"),
    _load("feed_match_start.json"),
    _load("feed_subscribed_all.json"),
    _load("feed_subscribed_match.json"),
    _load("feed_error.json"),
    _load("feed_pong.json"),
    {"type": "unsubscribed", "channel": "MAIN", "scope": "all", "topicKey": "MAIN:all"},
    {"type": "batch_update", "channel": "ODDS", "scope": "all", "ts": 1, "data": {"x": [1]}},
]

# Raw JSON texts that json.dumps would refuse or cannot produce.
RAW_VALUES = [
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    # deep enough for json.loads to accept, deep enough to break a freezer or a repr that
    # recurses per level in Python
    "[" * 450 + "]" * 450,
    "[" * 800 + "]" * 800,
    '{"a":' * 800 + "1" + "}" * 800,
    "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1),
    "9" * 4000,
    "-" + "9" * 4000,
    "1" + "0" * 400,
    "1e400",
    "-1e400",
    "1e-400",
    "NaN",
    "Infinity",
    "-Infinity",
    '"\\ud800"',
    '"' + "x" * 100_000 + '"',
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``value`` a new value can go: each existing key or index, and a new
    key in each object."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        out.append((*prefix, "__new__"))
        for key, child in value.items():
            out.append((*prefix, key))
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out.append((*prefix, index))
            out.extend(_paths(child, (*prefix, index)))
    return out


def _place(template: dict[str, Any], path: tuple[Any, ...], value: Any) -> str:
    frame = json.loads(json.dumps(template))
    target = frame
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = HOLE
    return json.dumps(frame).replace(json.dumps(HOLE), value)


def _feed(core: Any, text: str) -> list[Any]:
    try:
        core.receive_text(text, 1.0)
    except RemoteProtocolError:
        pass
    events: list[Any] = core.events_received()
    for event in events:
        repr(event)  # what a log line or the CLI does with it
        hash(event)  # frozen events are hashable all the way down
    return events


def _mm_core() -> MMProtocol:
    core = MMProtocol()
    core.subscribe(KEY, ["orders", "bets", "accounts", "scores", "emergency"])
    core.data_to_send()
    return core


def _feed_core() -> FeedProtocol:
    core = FeedProtocol()
    core.subscribe("ODDS", "match:12345")
    core.subscribe("MAIN", "all")
    core.data_to_send()
    return core


MM_CASES = [(t, p) for t in MM_TEMPLATES for p in _paths(t)]
FEED_CASES = [(t, p) for t in FEED_TEMPLATES for p in _paths(t)]
VALUE_TEXT = st.one_of(
    st.sampled_from(RAW_VALUES),
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(MM_CASES), value=VALUE_TEXT)
def test_mm_core_raises_only_remote_protocol_errors(
    case: tuple[dict[str, Any], tuple[Any, ...]], value: str
) -> None:
    template, path = case
    core = _mm_core()
    _feed(core, _place(template, path, value))
    # the core is still usable: the seed's order fill decodes after any hostile frame
    (event,) = _feed(core, json.dumps(_load("seed_order_fill.json")))
    assert event.payload.order_id == 123


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(FEED_CASES), value=VALUE_TEXT)
def test_feed_core_raises_only_remote_protocol_errors(
    case: tuple[dict[str, Any], tuple[Any, ...]], value: str
) -> None:
    template, path = case
    core = _feed_core()
    _feed(core, _place(template, path, value))
    (event,) = _feed(core, json.dumps(_load("feed_odds_update.json")))
    assert event.match_id == "12345"


@pytest.mark.parametrize("raw", RAW_VALUES, ids=range(len(RAW_VALUES)))
@pytest.mark.parametrize("template", MM_TEMPLATES + FEED_TEMPLATES, ids=lambda t: t["type"])
def test_every_hostile_value_in_every_top_level_field(template: dict[str, Any], raw: str) -> None:
    """The exhaustive corner of the property: each raw value in each top-level field."""
    for key in [*template, "__new__"]:
        text = _place(template, (key,), raw)
        _feed(_mm_core(), text)
        _feed(_feed_core(), text)


def test_whole_frame_hostile() -> None:
    for raw in RAW_VALUES:
        for core in (_mm_core(), _feed_core()):
            assert _feed(core, raw) == []


def test_deep_nesting_is_a_malformed_frame_not_a_recursion_error() -> None:
    deep = "[" * 5000 + "]" * 5000
    for core in (_mm_core(), _feed_core()):
        text = _place({"type": "broadcast", "channel": "orders", "x": 1}, ("x",), deep)
        with pytest.raises(RemoteProtocolError):
            core.receive_text(text, 0.0)
    # just past the limit: refused by the freezer with a message saying so
    too_deep = _place({"type": "event", "channel": "MAIN", "data": 1}, ("data",),
                      "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(RemoteProtocolError, match=f"deeper than {MAX_DEPTH}"):
        _feed_core().receive_text(too_deep, 0.0)
    # at the limit: accepted
    ok = _place({"type": "event", "channel": "MAIN", "data": 1}, ("data",),
                "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    _feed_core().receive_text(ok, 0.0)


def test_freeze_refuses_depth_without_recursing_per_level_to_the_limit() -> None:
    value: Any = []
    for _ in range(MAX_DEPTH + 5):
        value = [value]
    with pytest.raises(RemoteProtocolError):
        freeze(value)


def test_pong_with_an_absurd_server_time_still_counts_without_a_clock() -> None:
    core = _feed_core()
    core.ping(0.0)
    core.data_to_send()
    core.receive_text('{"type": "pong", "ts": 1' + "0" * 400 + "}", 0.5)
    (pong,) = core.events_received()
    assert isinstance(pong, FeedPong)
    assert pong.server_ts is None
    assert pong.rtt == pytest.approx(0.5)


def test_huge_and_special_numbers_in_typed_fields_are_malformed_or_kept() -> None:
    """1e400 reads as infinity: a float field keeps it (the value is what the server sent);
    an integer field refuses it; NaN likewise."""
    core = _mm_core()
    fill = _load("seed_order_fill.json")
    _feed(core, _place(fill, ("payload", "matchedStake"), "1e400"))
    # the event decoded, with the server's infinity
    core.receive_text(_place(fill, ("payload", "matchedStake"), "1e400"), 0.0)
    (event,) = core.events_received()
    assert math.isinf(event.payload.matched_stake)
    with pytest.raises(RemoteProtocolError, match="orderId"):
        core.receive_text(_place(fill, ("payload", "orderId"), "NaN"), 0.0)
