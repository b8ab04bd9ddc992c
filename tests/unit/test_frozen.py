"""Decoded events are immutable all the way down, and hashable like any frozen value."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from mmws._frozen import EMPTY, FrozenMap, freeze, thaw
from mmws.feed.protocol import FeedProtocol
from mmws.mm.protocol import MMProtocol


def decode_mm(obj: Any) -> Any:
    proto = MMProtocol()
    proto.receive_text(json.dumps(obj), 0.0)
    (event,) = proto.events_received()
    return event


def decode_feed(obj: Any) -> Any:
    proto = FeedProtocol()
    proto.receive_text(json.dumps(obj), 0.0)
    (event,) = proto.events_received()
    return event


def assert_immutable(value: Any) -> None:
    with pytest.raises((TypeError, AttributeError)):
        value["__x__"] = 1
    with pytest.raises(AttributeError):
        value.append(0)


BROADCAST = {"type": "broadcast", "channel": "bets", "event": "UPDATE",
             "payload": {"betId": 1, "sentData": {"meta": {"a": [1, 2]}}, "tags": ["a"]},
             "old": {"betStatus": "pending", "notes": {"x": [1]}}}


def test_nested_free_form_mappings_are_read_only() -> None:
    event = decode_mm(BROADCAST)
    assert_immutable(event.payload.sent_data["meta"])
    assert event.payload.sent_data["meta"]["a"] == (1, 2)


def test_extra_and_unknown_old_values_are_read_only() -> None:
    event = decode_mm(BROADCAST)
    assert_immutable(event.payload.extra)
    assert event.payload.extra["tags"] == ("a",)
    assert_immutable(event.old["notes"])


def test_unknown_message_raw_is_read_only() -> None:
    event = decode_mm({"type": "brand_new", "nested": {"x": [1]}})
    assert_immutable(event.raw)
    assert_immutable(event.raw["nested"])


def test_feed_data_and_raw_are_read_only() -> None:
    event = decode_feed({"type": "stats_update_realtime", "channel": "STATS_REALTIME",
                         "matchId": "1", "data": {"changedStats": [{"stat": "corners",
                                                                    "value": "5;2"}]}})
    assert_immutable(event.data)
    assert_immutable(event.raw["data"]["changedStats"][0])
    assert event.stats["corners"].team_a == 5.0


@pytest.mark.parametrize("decode,obj", [
    (decode_mm, BROADCAST),
    (decode_mm, {"type": "subscribed", "subscriptionId": [1], "channels": [{"x": 1}]}),
    (decode_mm, {"type": "brand_new", "nested": {"x": [1]}}),
    (decode_feed, {"type": "event", "channel": "ODDS", "eventType": "odds_update",
                   "data": {"liveOU": "1.9;1.9|2.5"}}),
])
def test_decoded_events_are_hashable_and_equal_events_hash_equal(decode: Any, obj: Any) -> None:
    first, second = decode(obj), decode(obj)
    assert first == second and hash(first) == hash(second)
    assert len({first, second}) == 1


def test_frozen_map_behaves_like_a_read_only_dict() -> None:
    m = freeze({"a": 1, "b": {"c": [1, {"d": 2}]}})
    assert isinstance(m, FrozenMap) and m == {"a": 1, "b": {"c": (1, {"d": 2})}}
    assert m != {"a": 2} and m != [1] and FrozenMap() == EMPTY
    assert "a" in m and m.get("z", 9) == 9 and len(m) == 2 and list(m) == ["a", "b"]
    assert thaw(m) == {"a": 1, "b": {"c": [1, {"d": 2}]}}
    assert pickle.loads(pickle.dumps(m)) == m
    assert repr(FrozenMap({"a": 1})) == "FrozenMap({'a': 1})"
