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


# -- for people and for pandas ----------------------------------------------------------------


def _scenario_events(seed: int, count: int) -> list[object]:
    import json as _json

    from mmws.mm.protocol import MMProtocol
    from mmws.sim.scenario import Scenario

    protocol = MMProtocol()
    events: list[object] = []
    for item in Scenario(seed).take(count):
        protocol.receive_text(_json.dumps(item.frame()), 1.5)
        events.extend(protocol.events_received())
    return events


class _Printer:
    """What IPython hands to ``_repr_pretty_``: something with ``text``."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def text(self, part: str) -> None:
        self.parts.append(part)


def test_str_of_an_event_is_its_one_line_and_the_pretty_form_is_a_readable_block() -> None:
    import mmws
    from mmws.format import format_event

    events = _scenario_events(5, 200)
    lifecycle = [mmws.Connected("ws://127.0.0.1:1/ws", 2), mmws.GapDetected("orders", 7),
                 mmws.RelayLoss(3, "buffer"), mmws.Overflow("scores", 4)]  # fmt: skip
    for event in [*events, *lifecycle]:
        line = str(event)
        assert line == format_event(event) and "\n" not in line
        assert repr(event) != line  # repr stays the exact form
        printer = _Printer()
        event._repr_pretty_(printer, False)  # type: ignore[attr-defined]
        block = printer.parts[0]
        assert block.splitlines()[0] == line and len(block.splitlines()) > 1
        cycled = _Printer()
        event._repr_pretty_(cycled, True)  # type: ignore[attr-defined]
        assert cycled.parts == [repr(event)]
    fill = next(e for e in events if isinstance(e, mmws.OrderEvent) and e.old)
    printer = _Printer()
    fill._repr_pretty_(printer, False)  # type: ignore[attr-defined]
    changed = next(iter(fill.old))
    rows = printer.parts[0].splitlines()[1:]
    assert any(row.split()[0] == changed and "(was " in row for row in rows)


def test_to_dict_is_plain_json_with_the_same_keys_for_every_event_of_a_type() -> None:
    import json as _json

    import pytest

    import mmws

    events = _scenario_events(9, 400)
    keys: dict[type, set[str]] = {}
    for event in events:
        data = mmws.to_dict(event)
        text = _json.dumps(data, allow_nan=False)
        assert _json.loads(text) == data
        assert data["type"] == type(event).__name__ and "frame" not in data
        keys.setdefault(type(event), set(data)).intersection_update(data)
        assert set(data) == keys[type(event)]
    order = next(e for e in events if isinstance(e, mmws.OrderEvent))
    data = mmws.to_dict(order)
    assert data["channel"] == "orders" and data["event"] in ("INSERT", "UPDATE")
    assert data["payload"]["order_id"] == order.payload.order_id
    assert isinstance(data["payload"]["order_status"], str)  # the enum's wire value
    error = mmws.to_dict(mmws.Closed(mmws.AuthenticationError("invalid key", "AUTH")))
    assert error == {"type": "Closed", "error": "AUTH: invalid key"}
    with pytest.raises(TypeError, match="not an mmws event: dict"):
        mmws.to_dict({"type": "broadcast"})


def test_to_records_gives_flat_rows_with_stable_columns_per_type() -> None:
    import pandas as pd

    import mmws

    events = [mmws.Connected("ws://127.0.0.1:1/ws", 0), *_scenario_events(2, 300)]
    rows = mmws.to_records(events)
    assert len(rows) == len(events)
    columns: dict[str, list[str]] = {}
    for row in rows:
        assert all(not isinstance(v, dict | list | tuple) for v in row.values())  # flat
        assert list(row) == columns.setdefault(row["type"], list(row))  # same, same order
    frame = pd.DataFrame(rows)
    orders = frame[frame["type"] == "OrderEvent"]
    assert len(orders) == sum(isinstance(e, mmws.OrderEvent) for e in events)
    assert {"order_id", "order_status", "matched_stake", "old_matched_stake"} <= set(frame)
    filled = orders[orders["order_status"] == "FILLED"]
    assert (filled["matched_stake"] > 0).all()
    moved = orders.dropna(subset=["old_matched_stake"])
    assert len(moved) and (moved["matched_stake"] >= moved["old_matched_stake"]).all()
