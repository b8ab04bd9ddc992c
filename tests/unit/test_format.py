"""mmws.format: one dispatch entry per event type; subclasses use their nearest base."""

from __future__ import annotations

import json

import attrs

import mmws
from mmws.format import event_to_json, format_event


def test_a_subclass_is_formatted_by_its_base_entry() -> None:
    @attrs.frozen
    class MyReconnecting(mmws.Reconnecting):
        pass

    assert format_event(MyReconnecting(3, 1.5)) == "-- reconnecting: attempt 3 in 1.50 s"


def test_an_unknown_type_falls_back_to_its_repr() -> None:
    @attrs.frozen
    class Surprise:
        n: int

    assert format_event(Surprise(1)).startswith("-- ")
    assert "Surprise(n=1)" in format_event(Surprise(1))


def test_a_partial_subscription_is_an_alert_naming_what_is_missing() -> None:
    line = format_event(mmws.Subscribed(1, ("orders",), ("bets",)))
    assert line == "!! subscribed #1 orders (missing bets)"
    assert format_event(mmws.Subscribed(1, ("orders",))) == "-- subscribed #1 orders"


def test_feed_events_use_their_own_details() -> None:
    event = mmws.OddsUpdate("ODDS", "odds_update", "7", None, None,
                            mmws.FeedEvent.__attrs_attrs__.data.default, None, None)
    assert format_event(event) == "ODDS odds_update match 7"
    assert json.loads(event_to_json(event))["type"] == "OddsUpdate"
