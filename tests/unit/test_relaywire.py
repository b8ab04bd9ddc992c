"""The relay's entries (pure): every event written as an entry reads back equal, whatever a
broker hands back; bad entries become MalformedFrame, never an exception."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmws
from mmws import errors
from mmws._frozen import FrozenMap, freeze
from mmws._relaywire import (
    FORMAT,
    EntryDecoder,
    RelayLoss,
    decode_event,
    decode_snapshot,
    encode_entry,
    encode_snapshot,
)
from mmws.lifecycle import MalformedFrame, UnknownMessage
from mmws.mm.events import EventKind, GapDetected, OrderEvent
from mmws.mm.models import Order, OrderStatus
from mmws.mm.protocol import MMProtocol
from mmws.mm.state import MMState
from mmws.sim.scenario import Scenario

DATA = Path(__file__).resolve().parents[1] / "data"
WHEN = datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=timezone.utc)


def as_redis(fields: dict[str, Any]) -> dict[bytes, bytes]:
    """What redis-py hands back: bytes keys and values."""
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def through(event: Any, number: int = 1) -> Any:
    decoded, envelope = EntryDecoder().decode(as_redis(encode_entry(event, number, "run1")))
    assert envelope.number == number and envelope.run == "run1"
    return decoded


def same_error(a: BaseException | None, b: BaseException | None) -> None:
    assert type(a) is type(b)
    if a is not None:
        assert str(a) == str(b)
        simple = {k: v for k, v in vars(a).items() if isinstance(v, str | int | float | None)}
        assert {k: getattr(b, k, "missing") for k in simple} == simple


LIFECYCLE = [
    mmws.Connected("wss://example.invalid/ws", 3, line=1),
    mmws.Disconnected("connection closed with code 1006", True, errors.ConnectionClosed(1006, "x")),
    mmws.Disconnected("refused", False, errors.AuthenticationError("invalid key", "AUTH")),
    mmws.Reconnecting(2, 0.25, line=0),
    mmws.Stale(12.5, errors.HeartbeatTimeout("no pong in 10 s")),
    mmws.Overflow("scores", 17),
    mmws.MalformedFrame(errors.RemoteProtocolError("bad frame", '{"type": 1')),
    mmws.Closed(None),
    mmws.Closed(errors.RestError("GET /orders: HTTP 500", 500, "boom", 2.5)),
    mmws.Subscribed(7, ("orders", "bets"), ("scores",), line=2),
    mmws.Unsubscribed(),
    mmws.Pong(0.0123),
    mmws.Heartbeat(),
    mmws.ServerErrorEvent("too many", "LIMIT", errors.ConnectionLimitError("too many", "LIMIT")),
    GapDetected("orders", 100001, "matched_stake", 10.0, 20.0),
    GapDetected("accounts", ("kalshi", "mm1"), "balance", None, 5.5),
    GapDetected("orders", 7, "order_status", OrderStatus.PLACED, OrderStatus.FILLED),
    GapDetected("orders", 7, None, None, Order(7, order_status=OrderStatus.PLACED)),
    GapDetected("bets", 9, "settled_at", WHEN, None),
    mmws.Resynced("reconnect", 12, 3, 2, 0.042),
    mmws.ResyncFailed(errors.RateLimitError("429", 429, "slow down", 1.0), True),
    mmws.ResyncFailed(OSError("disk on fire"), False),
    UnknownMessage(FrozenMap({"type": "news", "items": (1, 2, FrozenMap({"a": None}))})),
    RelayLoss(5, "buffer"),
]


@pytest.mark.parametrize("event", LIFECYCLE, ids=lambda e: type(e).__name__)
def test_every_event_but_a_broadcast_reads_back_equal(event: Any) -> None:
    back = through(event)
    assert type(back) is type(event)
    values = [getattr(event, f.name) for f in attrs.fields(type(event))]
    if not any(isinstance(value, BaseException) for value in values):
        assert back == event  # (an exception equals only itself: compared below)
    for field in attrs.fields(type(event)):
        value, got = getattr(event, field.name), getattr(back, field.name)
        if isinstance(value, BaseException):
            if type(value) in vars(errors).values():
                same_error(value, got)
            else:  # not an mmws error: its class name and message, as an MmwsError
                assert type(got) is mmws.MmwsError and str(got) == "OSError: disk on fire"
        else:
            assert got == value and type(got) is type(value), field.name


def test_the_lifecycle_list_covers_every_event_class() -> None:
    from mmws._relaywire import _EVENTS

    assert {type(e).__name__ for e in LIFECYCLE} == set(_EVENTS) - {"KeepaliveEvent",
                                                                      "LifecycleEvent"}


def broadcast_frames() -> list[str]:
    names = ["seed_order_fill", "seed_bet_placed", "seed_emergency", "seed_score_update",
             "seed_broadcast_order_update_short", "hist_order_id_alias"]  # fmt: skip
    return [(DATA / f"{name}.json").read_text(encoding="utf-8") for name in names]


@pytest.mark.parametrize("frame", broadcast_frames())
def test_a_broadcast_travels_as_the_frame_the_server_sent(frame: str) -> None:
    protocol = MMProtocol()
    protocol.receive_text(frame, 41.5)
    (event,) = protocol.events_received()
    assert event.frame == frame
    fields = encode_entry(event, 1, "r")
    assert fields["k"] == "frame" and fields["f"] == frame and fields["v"] == FORMAT
    back = through(event)
    assert back == event and back.frame == frame.encode()
    assert back.received_at == 41.5  # the relay host's clock, carried in the envelope


def test_a_broadcast_built_in_code_travels_as_an_equal_frame() -> None:
    event = OrderEvent(
        EventKind.UPDATE,
        Order(7, order_status=OrderStatus.FILLED, matched_stake=20.0, created_at=WHEN,
              extra=freeze({"venueNote": {"k": [1, 2]}})),
        FrozenMap({"order_status": OrderStatus.PLACED, "matched_stake": 10.0,
                   "created_at": WHEN, "someUnknownWire": "x"}),
    )  # fmt: skip
    assert event.frame is None
    back = through(event)
    assert back == event
    assert back.payload.extra == event.payload.extra


def test_the_envelope_carries_line_number_time_and_the_snapshot_mark() -> None:
    fields = encode_entry(mmws.Connected("u", 1, line=3), 42, "abc", snapshot=True)
    event, envelope = EntryDecoder().decode(as_redis(fields))
    assert event == mmws.Connected("u", 1, line=3)
    assert (envelope.number, envelope.run, envelope.line, envelope.snapshot) == (42, "abc", 3, True)
    fields = encode_entry(mmws.Heartbeat(), 43, "abc")
    assert EntryDecoder().decode(fields)[1].snapshot is False  # str fields work too
    assert EntryDecoder().decode(fields)[1].line is None


def test_an_entry_of_another_format_or_kind_is_a_malformed_frame_that_says_why() -> None:
    fields = encode_entry(mmws.Heartbeat(), 1, "r")
    event, _ = EntryDecoder().decode({**fields, "v": "9"})
    assert isinstance(event, MalformedFrame) and "format '9'" in str(event.error)
    event, _ = EntryDecoder().decode({**fields, "k": "pickle"})
    assert isinstance(event, MalformedFrame) and "unknown kind 'pickle'" in str(event.error)
    event, _ = EntryDecoder().decode({**fields, "e": "{not json"})
    assert isinstance(event, MalformedFrame) and "not JSON" in str(event.error)
    event, _ = EntryDecoder().decode({"v": FORMAT, "k": "frame", "f": '{"type": "heartbeat"}'})
    assert isinstance(event, MalformedFrame) and "gave 0 events" in str(event.error)
    event, _ = EntryDecoder().decode({"v": FORMAT, "k": "frame", "f": "[1"})
    assert isinstance(event, MalformedFrame)


def test_names_from_the_wire_build_only_mmws_classes() -> None:
    # an event type, an enum or an error class this version does not know stays data
    unknown = json.dumps({"type": "FutureEvent", "fields": {"x": 1}})
    assert decode_event(unknown) == UnknownMessage(FrozenMap(json.loads(unknown)))
    shifted = json.dumps({"type": "Overflow", "fields": {"channel": "scores"}})  # no 'dropped'
    assert isinstance(decode_event(shifted), UnknownMessage)
    extra = json.dumps({"type": "Overflow", "fields": {"channel": "s", "dropped": 1, "new": 2}})
    assert decode_event(extra) == mmws.Overflow("s", 1)  # a field of a newer version: ignored
    enum = {"$e": ["OrderStatus", "TELEPORTED"]}
    gap = json.dumps({"type": "GapDetected", "fields": {"channel": "o", "key": 1, "got": enum}})
    assert decode_event(gap).got == "TELEPORTED"
    foreign = {"$e": ["subprocess.Popen", "x"]}
    gap = json.dumps({"type": "GapDetected", "fields": {"channel": "o", "key": 1, "got": foreign}})
    assert decode_event(gap).got == "x"
    error = {"$x": ["os.system", "rm -rf", {"code": 1}]}
    closed = decode_event(json.dumps({"type": "Closed", "fields": {"error": error}}))
    assert type(closed.error) is mmws.MmwsError and str(closed.error) == "os.system: rm -rf"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "k", "n", "r", "t", "l", "s", "f", "e", "x"]),
                       st.binary(max_size=60) | st.text(max_size=60), max_size=9))  # fmt: skip
def test_any_entry_decodes_to_an_event_or_a_malformed_frame(fields: dict[str, Any]) -> None:
    event, envelope = EntryDecoder().decode(fields)
    assert event is not None
    assert envelope.number is None or isinstance(envelope.number, int)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["Connected", "GapDetected", "Closed", "Resynced", "Nope", 3]),
       st.dictionaries(st.text(max_size=10), json_values, max_size=5), json_values)  # fmt: skip
def test_any_event_json_decodes_without_raising(name: Any, fields: Any, tagged: Any) -> None:
    for body in ({"type": name, "fields": fields},
                 {"type": name, "fields": {k: {"$m": tagged} for k in fields}},
                 {"type": name, "fields": {k: {"$x": tagged} for k in fields}}):  # fmt: skip
        decode_event(json.dumps(body))


def state_after(seed: int, count: int) -> MMState:
    state = MMState()
    protocol = MMProtocol()
    for item in Scenario(seed).take(count):
        protocol.receive_text(json.dumps(item.frame()), 0.0)
        for event in protocol.events_received():
            state.apply(event)
    state.publish()
    return state


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 600))
def test_a_state_snapshot_reads_back_equal(seed: int, count: int) -> None:
    snap = state_after(seed, count).snapshot()
    back = decode_snapshot(encode_snapshot(snap))
    assert back == snap
    assert dict(back.open_orders) == dict(snap.open_orders)
    loaded = MMState()
    loaded.load(back)
    assert loaded.snapshot() == snap


def test_a_damaged_snapshot_says_what_is_wrong() -> None:
    with pytest.raises(mmws.RemoteProtocolError, match="relay state snapshot"):
        decode_snapshot("{}")
    good = json.loads(encode_snapshot(state_after(1, 50).snapshot()))
    with pytest.raises(mmws.RemoteProtocolError, match="'orders' is not a list"):
        decode_snapshot(json.dumps({**good, "orders": 5}))
    with pytest.raises(mmws.RemoteProtocolError, match="relay state snapshot"):
        decode_snapshot(json.dumps({**good, "bets": [{"betId": "x"}]}))


@st.composite
def read_streams(draw: Any) -> tuple[bool, list[tuple[str, int]], int, int]:
    """Entries as a reader sees them: runs numbered from 1, some entries gone (trimmed),
    some written twice in a row; with the missing and repeated counts a reader must find
    (a new run's lost first entries only count in the first run, for a reader of the whole
    stream)."""
    whole = draw(st.booleans())
    seen: list[tuple[str, int]] = []
    missing = repeats = 0
    for index in range(draw(st.integers(1, 4))):
        run = f"run{index}"
        total = draw(st.integers(1, 40))
        kept = sorted(draw(st.sets(st.integers(1, total), min_size=1)))
        if index == 0 and whole:
            missing += kept[0] - 1
        missing += kept[-1] - kept[0] + 1 - len(kept)
        for number in kept:
            seen.append((run, number))
            if draw(st.integers(0, 5)) == 0:
                seen.append((run, number))
                repeats += 1
    return whole, seen, missing, repeats


@settings(max_examples=500, deadline=None)
@given(read_streams())
def test_numbering_finds_every_lost_and_every_repeated_entry(case: Any) -> None:
    from mmws._relaywire import Numbering

    whole, seen, missing, repeats = case
    numbering = Numbering(whole=whole)
    found = [numbering.check(run, number) for run, number in seen]
    assert found.count(None) == repeats
    assert sum(n for n in found if n) == missing


def test_a_damaged_entry_never_stops_the_stream() -> None:
    damaged = [
        {"type": "GapDetected", "fields": {"channel": "o", "key": 1, "got": {"$o": ["Order", {}]}}},
        {"type": "Closed", "fields": {"error": {"$x": ["ConnectionClosed", "x", {"code": []}]}}},
        {"type": "Resynced", "fields": {"reason": {"$d": "not a date"}}},
    ]
    for body in damaged:
        event, _ = EntryDecoder().decode({"v": FORMAT, "k": "event", "e": json.dumps(body)})
        assert isinstance(event, UnknownMessage | MalformedFrame | mmws.Closed), event
    deep = "[" * 100_000 + "]" * 100_000
    event, _ = EntryDecoder().decode({"v": FORMAT, "k": "event", "e": deep})
    assert isinstance(event, MalformedFrame)
    event, _ = EntryDecoder().decode({"v": FORMAT, "k": "frame", "f": deep})
    assert isinstance(event, MalformedFrame)
