"""Decoding of server frames by the MM protocol core, checked against the seed's examples.

Every seed JSON example lives in ``tests/data/seed_*.json``; each test names the seed section
("Connection flow" steps, "Payload examples", "Error messages") it comes from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mmws import (
    Bet,
    BetEvent,
    BetStatus,
    Emergency,
    EmergencyEvent,
    EventKind,
    Heartbeat,
    MatchedStatus,
    MMProtocol,
    Order,
    OrderEvent,
    OrderStatus,
    Pong,
    RemoteProtocolError,
    Score,
    ScoreEvent,
    SettlementStatus,
    Subscribed,
    UnknownMessage,
)
from mmws.mm import AccountEvent

DATA = Path(__file__).resolve().parent.parent / "data"
UTC = timezone.utc
FILL_AT = datetime(2026, 2, 15, 10, 30, 5, tzinfo=UTC)


def seed_text(name: str) -> str:
    return (DATA / f"{name}.json").read_text(encoding="utf-8")


def seed_json(name: str) -> dict[str, Any]:
    return json.loads(seed_text(name))  # type: ignore[no-any-return]


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def order_frame(payload: Any, **more: Any) -> str:
    return frame(type="broadcast", channel="orders", event="UPDATE", payload=payload, **more)


def decode(text: str | bytes, now: float = 5.0, proto: MMProtocol | None = None) -> Any:
    """Feed one frame to a protocol and return the single event it produced."""
    proto = proto if proto is not None else MMProtocol()
    proto.receive_text(text, now)
    events = proto.events_received()
    assert len(events) == 1, events
    return events[0]


def assert_seed_order_fill(event: Any) -> None:
    assert type(event) is OrderEvent
    assert event.payload.order_id == 123
    assert event.payload.order_status is OrderStatus.FILLED
    assert event.payload.matched_at == FILL_AT


# -- every seed example decodes to its event type --------------------------------------------


@pytest.mark.parametrize(
    ("name", "event_type"),
    [
        ("seed_subscribed", Subscribed),
        ("seed_broadcast_order_update_short", OrderEvent),
        ("seed_pong", Pong),
        ("seed_heartbeat", Heartbeat),
        ("seed_order_fill", OrderEvent),
        ("seed_bet_placed", BetEvent),
        ("seed_score_update", ScoreEvent),
        ("seed_emergency", EmergencyEvent),
    ],
)
def test_every_seed_server_frame_decodes_to_its_event_type(name: str, event_type: type) -> None:
    event = decode(seed_text(name))
    assert type(event) is event_type


def test_seed_fixtures_match_the_seed_spec_shapes() -> None:
    """The fixture files are the seed's examples: spot-check a few wire keys and values."""
    assert seed_json("seed_subscribe") == {
        "type": "subscribe",
        "apiKey": "your-uuid-api-key",
        "channels": ["orders", "bets", "accounts", "scores", "emergency"],
    }
    assert seed_json("seed_ping") == {"type": "ping"}
    assert seed_json("seed_pong") == {"type": "pong"}
    assert seed_json("seed_heartbeat") == {"type": "heartbeat"}
    assert seed_json("seed_unsubscribe") == {"type": "unsubscribe"}
    assert seed_json("seed_order_fill")["payload"]["exchangeOrderId"] == "0x1a2b3c..."
    assert seed_json("seed_bet_placed")["payload"]["sentData"]["eventId"] == 98765


# -- Connection flow ------------------------------------------------------------------------


def test_connection_flow_3_confirmation_seed_subscribed() -> None:
    """Connection flow, 3. Confirmation: subscriptionId and the channel list."""
    proto = MMProtocol()
    proto.subscribe("8b4f6a9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", ["orders", "bets"])
    event = decode(seed_text("seed_subscribed"), proto=proto)
    assert event == Subscribed(1, ("orders", "bets", "accounts", "scores", "emergency"))
    assert proto.subscription_id == 1
    assert proto.state.value == "SUBSCRIBED"


def test_connection_flow_3_confirmation_legacy_subscription_id_spelling() -> None:
    """Connection flow, 3. Confirmation, in the pre-2026-04-18 docs: ``subscription_id``."""
    proto = MMProtocol()
    event = decode(seed_text("hist_subscribed_snake"), proto=proto)
    assert event == Subscribed(1, ("orders", "bets"))
    assert proto.subscription_id == 1


def test_connection_flow_3_confirmation_without_id_or_channels_uses_our_channels() -> None:
    proto = MMProtocol()
    proto.subscribe("8b4f6a9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", ["scores"])
    event = decode(frame(type="subscribed", channels="scores"), proto=proto)
    assert event == Subscribed(None, ("scores",))


def test_connection_flow_4_receive_broadcasts_short_order_update() -> None:
    """Connection flow, 4. Receive broadcasts: the first (4-field) order UPDATE example."""
    event = decode(seed_text("seed_broadcast_order_update_short"), now=42.5)
    assert type(event) is OrderEvent
    assert event.channel == "orders"
    assert event.event is EventKind.UPDATE
    assert event.received_at == 42.5
    assert event.payload == Order(
        order_id=123,
        order_status=OrderStatus.FILLED,
        matched_stake=100.0,
        matched_at=FILL_AT,
    )
    assert event.payload.fixture_id is None  # partial: absent fields stay None
    assert dict(event.old) == {"order_status": OrderStatus.PLACED, "matched_stake": 0.0}
    assert type(event.old["matched_stake"]) is float
    assert dict(event.changes) == {
        "order_status": (OrderStatus.PLACED, OrderStatus.FILLED),
        "matched_stake": (0.0, 100.0),
    }


def test_connection_flow_5_keep_alive_pong_and_heartbeat() -> None:
    """Connection flow, 5. Keep alive: ``pong`` answers a ping; ``heartbeat`` every 60 s."""
    proto = MMProtocol()
    proto.start(100.0)
    proto.ping(now=110.0)
    assert decode(seed_text("seed_pong"), now=110.25, proto=proto) == Pong(0.25)
    assert decode(seed_text("seed_pong"), now=111.0, proto=proto) == Pong(None)
    assert decode(seed_text("seed_heartbeat"), now=170.0, proto=proto) == Heartbeat()
    assert proto.keepalive.last_received == 170.0


# -- Payload examples -----------------------------------------------------------------------


def test_payload_examples_order_fill() -> None:
    """Payload examples, Order fill: every field typed, ``old`` and ``changes``."""
    event = decode(seed_text("seed_order_fill"))
    assert type(event) is OrderEvent
    assert event.event is EventKind.UPDATE
    payload = event.payload
    assert payload == Order(
        order_id=123,
        fixture_id="id1000000861624412",
        outcome_id=161,
        exchange="polymarket",
        exchange_order_id="0x1a2b3c...",
        order_status=OrderStatus.FILLED,
        matched_status=MatchedStatus.FULLY_MATCHED,
        order_cents=0.45,
        order_stake=100.0,
        matched_stake=100.0,
        matched_at=datetime(2026, 2, 15, 10, 30, 5, tzinfo=timezone.utc),
    )
    assert payload.matched_at is not None
    assert payload.matched_at.utcoffset() == timedelta(0)
    assert payload.order_status is OrderStatus.FILLED
    assert payload.matched_status is MatchedStatus.FULLY_MATCHED
    assert dict(payload.extra) == {}
    assert dict(event.old) == {
        "order_status": OrderStatus.PLACED,
        "matched_status": MatchedStatus.NOT_MATCHED,
        "matched_stake": 0.0,
    }
    assert dict(event.changes) == {
        "order_status": (OrderStatus.PLACED, OrderStatus.FILLED),
        "matched_status": (MatchedStatus.NOT_MATCHED, MatchedStatus.FULLY_MATCHED),
        "matched_stake": (0.0, 100.0),
    }


def test_payload_examples_hedge_bet_placed() -> None:
    """Payload examples, Hedge bet placed: an INSERT without ``old``; nested objects kept."""
    event = decode(seed_text("seed_bet_placed"))
    assert type(event) is BetEvent
    assert event.channel == "bets"
    assert event.event is EventKind.INSERT
    bet = event.payload
    assert bet == Bet(
        bet_id=456,
        order_id=123,
        client="your-client",
        bookmaker="vertex",
        placed_price=1.808,
        placed_stake=100.0,
        bet_status=BetStatus.PLACED,
        sent_data={
            "requestId": "a1b2c3d4",
            "eventId": 98765,
            "price": 1.808,
            "amount": 100.0,
            "side": "1",
        },
        received_data={"betId": "789", "status": "U"},
        placed_at=datetime(2026, 2, 15, 10, 30, 8, tzinfo=UTC),
    )
    assert bet.bet_status is BetStatus.PLACED
    assert isinstance(bet.sent_data, Mapping)
    assert list(bet.sent_data) == ["requestId", "eventId", "price", "amount", "side"]
    assert bet.sent_data["requestId"] == "a1b2c3d4"
    assert bet.received_data is not None and bet.received_data["betId"] == "789"
    with pytest.raises(TypeError):
        bet.sent_data["side"] = "2"  # type: ignore[index]
    assert dict(event.old) == {}
    assert dict(event.changes) == {}


def test_payload_examples_live_score_update() -> None:
    """Payload examples, Live score update."""
    event = decode(seed_text("seed_score_update"))
    assert type(event) is ScoreEvent
    assert event.event is EventKind.UPDATE
    assert event.payload == Score(
        fixture_id="id1000000861624412",
        live=True,
        status_id=1,
        current_period="2nd Half",
        current_minute=67,
        scores={"home": 2, "away": 1, "period1Home": 1, "period1Away": 0},
    )
    assert event.payload.live is True
    assert event.payload.scores is not None
    assert dict(event.payload.scores) == {"home": 2, "away": 1, "period1Home": 1, "period1Away": 0}
    assert dict(event.old) == {}


def test_payload_examples_emergency_status() -> None:
    """Payload examples, Emergency status."""
    event = decode(seed_text("seed_emergency"))
    assert type(event) is EmergencyEvent
    assert event.channel == "emergency"
    assert event.payload == Emergency(
        emergency=True,
        reason="Manual trigger",
        triggered_at=datetime(2026, 2, 15, 10, 30, 0, tzinfo=UTC),
    )


def test_channels_accounts_update_from_rest_field_names() -> None:
    """Channels, accounts: no WS example exists; the REST account fields decode."""
    text = frame(
        type="broadcast",
        channel="accounts",
        event="UPDATE",
        payload={"exchange": "polymarket", "username": "0x1234", "balance": 50000, "active": False},
        old={"balance": 49000.5},
    )
    event = decode(text)
    assert type(event) is AccountEvent
    assert event.payload.exchange == "polymarket"
    assert event.payload.balance == 50000.0 and type(event.payload.balance) is float
    assert event.payload.active is False
    assert dict(event.changes) == {"balance": (49000.5, 50000.0)}


# -- tolerance: partial, unknown fields, unknown enums, unknown types -------------------------


def test_partial_update_leaves_absent_fields_none() -> None:
    """Payload examples, Order fill, sent as a partial UPDATE (only the changed fields)."""
    event = decode(order_frame({"orderId": 7, "matchedStake": 55}, old={"matchedStake": 20}))
    assert event.payload == Order(order_id=7, matched_stake=55.0)
    assert event.payload.order_status is None
    assert event.payload.fixture_id is None
    assert dict(event.changes) == {"matched_stake": (20.0, 55.0)}


def test_changes_of_a_field_missing_from_a_partial_payload_reads_none_on_the_new_side() -> None:
    event = decode(order_frame({"orderId": 7}, old={"orderStatus": "PLACED"}))
    assert dict(event.changes) == {"order_status": (OrderStatus.PLACED, None)}


def test_unknown_payload_field_is_kept_read_only_in_extra() -> None:
    """Payload examples, Order fill, with a field the docs do not list."""
    payload = {**seed_json("seed_order_fill")["payload"], "hedgeRatio": 0.5, "tags": ["a"]}
    event = decode(order_frame(payload))
    order = event.payload
    assert order.order_id == 123
    assert dict(order.extra) == {"hedgeRatio": 0.5, "tags": ("a",)}  # deep-frozen
    assert not hasattr(order, "hedge_ratio")
    with pytest.raises(TypeError):
        order.extra["hedgeRatio"] = 1.0


def test_unknown_field_in_old_keeps_its_wire_name() -> None:
    event = decode(order_frame({"orderId": 1}, old={"hedgeRatio": 0.25, "orderStatus": "PLACED"}))
    assert dict(event.old) == {"hedgeRatio": 0.25, "order_status": OrderStatus.PLACED}


def test_unknown_enum_value_stays_a_plain_str() -> None:
    """A.4: ``PARTIAL`` was documented once and removed; any new status must still decode."""
    event = decode(
        order_frame(
            {"orderId": 1, "orderStatus": "PARTIAL", "matchedStatus": "OVER_MATCHED"},
            old={"orderStatus": "SOMETHING_NEW"},
        )
    )
    status = event.payload.order_status
    assert status == "PARTIAL"
    assert type(status) is str
    assert not isinstance(status, OrderStatus)
    assert type(event.payload.matched_status) is str
    assert event.old["order_status"] == "SOMETHING_NEW"


def test_unknown_broadcast_event_kind_stays_a_plain_str() -> None:
    text = frame(type="broadcast", channel="orders", event="DELETE", payload={"orderId": 1})
    event = decode(text)
    assert event.event == "DELETE"
    assert type(event.event) is str


def test_missing_event_kind_is_none() -> None:
    event = decode(frame(type="broadcast", channel="orders", payload={"orderId": 1}))
    assert event.event is None
    assert event.payload.order_id == 1


def test_unknown_message_type_becomes_unknown_message() -> None:
    event = decode(frame(type="welcome", server="mm-3"))
    assert type(event) is UnknownMessage
    assert event.type == "welcome"
    assert dict(event.raw) == {"type": "welcome", "server": "mm-3"}


def test_broadcast_on_unknown_channel_becomes_unknown_message() -> None:
    """Channels: a channel the seed does not list (``positions``) is not an error."""
    text = frame(type="broadcast", channel="positions", event="UPDATE", payload={"id": 1})
    event = decode(text)
    assert type(event) is UnknownMessage
    assert event.type == "broadcast"
    assert event.raw["channel"] == "positions"


def test_broadcast_with_a_non_string_channel_becomes_unknown_message() -> None:
    event = decode(frame(type="broadcast", channel=["orders"], payload={"orderId": 1}))
    assert type(event) is UnknownMessage
    assert event.raw["channel"] == ("orders",)  # deep-frozen


def test_old_api_id_alias_for_order_id() -> None:
    """protocols.md A.2: the old API reference sends ``{"id": 123, ...}``."""
    event = decode(seed_text("hist_order_id_alias"))
    assert event.payload == Order(order_id=123, order_status=OrderStatus.FILLED)
    assert dict(event.payload.extra) == {}


def test_old_api_id_alias_for_bet_id() -> None:
    text = frame(type="broadcast", channel="bets", event="UPDATE", payload={"id": 456})
    assert decode(text).payload == Bet(bet_id=456)


def test_order_id_wins_over_id_which_is_kept_in_extra() -> None:
    event = decode(order_frame({"orderId": 5, "id": 99}))
    assert event.payload.order_id == 5
    assert dict(event.payload.extra) == {"id": 99}


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("undecided", SettlementStatus.UNDECIDED),
        ("UNDECIDED", SettlementStatus.UNDECIDED),
        ("half_won", SettlementStatus.HALF_WON),
        ("Won", "Won"),  # mixed case is not one of the two known spellings
    ],
)
def test_bet_settlement_status_is_case_insensitive(wire: str, expected: Any) -> None:
    """Payload examples, Hedge bet placed; bets send ``settlementStatus`` in lowercase."""
    text = frame(
        type="broadcast",
        channel="bets",
        event="UPDATE",
        payload={"betId": 456, "settlementStatus": wire, "betStatus": "PLACED"},
    )
    bet = decode(text).payload
    assert bet.settlement_status == expected
    assert type(bet.settlement_status) is type(expected)
    assert bet.bet_status is BetStatus.PLACED


def test_order_status_lowercase_maps_to_member() -> None:
    event = decode(order_frame({"orderId": 1, "orderStatus": "cancelled"}))
    assert event.payload.order_status is OrderStatus.CANCELLED


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-02-15T10:30:05Z", FILL_AT),
        ("2026-02-15T10:30:05z", FILL_AT),
        ("2026-02-15T12:30:05+02:00", FILL_AT),
        ("2026-02-15T10:30:05", FILL_AT),
        ("2026-02-15T10:30:05.250000Z", FILL_AT + timedelta(milliseconds=250)),
    ],
)
def test_timestamps_become_aware_utc(stamp: str, expected: datetime) -> None:
    event = decode(order_frame({"orderId": 1, "matchedAt": stamp}))
    assert event.payload.matched_at == expected
    assert event.payload.matched_at.tzinfo is timezone.utc


def test_float_field_takes_an_integer_as_float() -> None:
    event = decode(order_frame({"orderId": 1, "orderStake": 100, "orderCents": 0.45}))
    assert event.payload.order_stake == 100.0
    assert type(event.payload.order_stake) is float


def test_null_fields_decode_to_none() -> None:
    payload = {"orderId": 1, "settledAt": None, "orderStatus": None, "back": None}
    event = decode(order_frame(payload))
    assert event.payload == Order(order_id=1)


def test_old_null_or_empty_means_no_old() -> None:
    assert dict(decode(order_frame({"orderId": 1}, old=None)).old) == {}
    assert dict(decode(order_frame({"orderId": 1}, old={})).old) == {}


# -- errors: each one names what was wrong, and the next frame still decodes ----------------

_BAD_FRAMES: list[tuple[str, str | bytes, tuple[str, ...]]] = [
    ("non-JSON", "this is not json", ("not valid JSON",)),
    ("truncated JSON", '{"type": "broadcast", ', ("not valid JSON",)),
    ("JSON array", '[{"type": "pong"}]', ("JSON list", "not an object")),
    ("JSON string", '"pong"', ("JSON str", "not an object")),
    ("JSON null", "null", ("JSON NoneType", "not an object")),
    ("no type", '{"channel": "orders", "payload": {}}', ("no 'type'",)),
    ("invalid UTF-8", b'{"type": "pong", "x": "\xff\xfe"}', ("not valid JSON", "utf-8")),
    ("payload a list", order_frame([1, 2]), ("orders broadcast", "'payload' is list")),
    ("payload missing", frame(type="broadcast", channel="scores"), ("scores", "'payload'")),
    ("old a list", order_frame({"orderId": 1}, old=[1]), ("'old' is list", "not an object")),
    ("old a number", order_frame({"orderId": 1}, old=0), ("'old' is int",)),
    ("old a string", order_frame({"orderId": 1}, old=""), ("'old' is str",)),
    ("old bad value", order_frame({"orderId": 1}, old={"matchedStake": "x"}), ("matchedStake",)),
    ("orderId not int", order_frame({"orderId": "abc"}), ("orderId", "integer")),
    ("orderId a float", order_frame({"orderId": 123.0}), ("orderId", "integer")),
    ("orderId a bool", order_frame({"orderId": True}), ("orderId", "integer")),
    ("orderId missing", order_frame({"orderStatus": "FILLED"}), ("orderId", "missing")),
    ("float a string", order_frame({"orderId": 1, "orderStake": "100"}), ("orderStake",)),
    ("float a bool", order_frame({"orderId": 1, "orderStake": True}), ("orderStake",)),
    ("float overflow", order_frame({"orderId": 1, "orderStake": 10**400}), ("orderStake",)),
    ("enum not str", order_frame({"orderId": 1, "orderStatus": 3}), ("orderStatus", "string")),
    ("str not str", order_frame({"orderId": 1, "exchange": 7}), ("exchange", "string")),
    ("bad timestamp", order_frame({"orderId": 1, "matchedAt": "yesterday"}), ("matchedAt",)),
    ("timestamp int", order_frame({"orderId": 1, "matchedAt": 1700000000}), ("matchedAt",)),
    (
        "timestamp overflow",
        order_frame({"orderId": 1, "matchedAt": "0001-01-01T00:00:00+01:00"}),
        ("matchedAt", "out of range"),
    ),
    (
        "event a list",
        frame(type="broadcast", channel="orders", event=["UPDATE"], payload={"orderId": 1}),
        ("'event' is list",),
    ),
    (
        "live a string",
        frame(
            type="broadcast",
            channel="scores",
            event="UPDATE",
            payload={"fixtureId": "f1", "live": "true"},
        ),
        ("scores broadcast", "live", "true or false"),
    ),
    (
        "live an int",
        frame(type="broadcast", channel="scores", payload={"fixtureId": "f1", "live": 1}),
        ("live",),
    ),
    (
        "sentData a list",
        frame(type="broadcast", channel="bets", payload={"betId": 1, "sentData": [1]}),
        ("sentData", "object"),
    ),
    (
        "fixtureId missing",
        frame(type="broadcast", channel="scores", payload={"live": True}),
        ("fixtureId", "missing"),
    ),
]


@pytest.mark.parametrize(
    ("text", "needles"),
    [pytest.param(text, needles, id=name) for name, text, needles in _BAD_FRAMES],
)
def test_bad_frame_is_a_remote_protocol_error_naming_the_problem(
    text: str | bytes, needles: tuple[str, ...]
) -> None:
    proto = MMProtocol()
    with pytest.raises(RemoteProtocolError) as info:
        proto.receive_text(text, 1.0)
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)
    preview = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    assert info.value.raw == preview[:200]
    assert proto.events_received() == []
    # the protocol is not poisoned: the seed's order fill still decodes
    assert_seed_order_fill(decode(seed_text("seed_order_fill"), proto=proto))


def test_bool_strictness_names_the_field() -> None:
    """Payload examples, Live score update, with ``"live": "true"``: not a bool, an error."""
    seed = seed_json("seed_score_update")
    seed["payload"]["live"] = "true"
    with pytest.raises(RemoteProtocolError, match=r"'live'.*expected true or false"):
        MMProtocol().receive_text(json.dumps(seed), 1.0)


def test_int_strictness_names_order_id() -> None:
    """Payload examples, Order fill, with ``"orderId": "abc"``."""
    seed = seed_json("seed_order_fill")
    seed["payload"]["orderId"] = "abc"
    with pytest.raises(RemoteProtocolError, match=r"field 'orderId': expected an integer"):
        MMProtocol().receive_text(json.dumps(seed), 1.0)


def test_remote_protocol_error_raw_is_capped_at_200_characters() -> None:
    text = "x" * 1000
    with pytest.raises(RemoteProtocolError) as info:
        MMProtocol().receive_text(text, 1.0)
    assert info.value.raw == "x" * 200


def test_bytes_frame_decodes_like_text() -> None:
    event = decode(seed_text("seed_order_fill").encode("utf-8"))
    assert_seed_order_fill(event)


def test_deeply_nested_json_is_a_remote_protocol_error() -> None:
    """Refused before parsing: no parser recursion, whatever the depth."""
    text = "[" * 100_000 + "]" * 100_000
    with pytest.raises(RemoteProtocolError, match="nested deeper than 100 levels"):
        MMProtocol().receive_text(text, 1.0)


def test_received_at_is_not_part_of_equality() -> None:
    first = decode(seed_text("seed_order_fill"), now=1.0)
    second = decode(seed_text("seed_order_fill"), now=99.0)
    assert first == second
    assert (first.received_at, second.received_at) == (1.0, 99.0)


@pytest.mark.parametrize(
    ("member", "wire"),
    [
        (OrderStatus.PENDING_PLACEMENT, "PENDING_PLACEMENT"),
        (MatchedStatus.PARTIALLY_MATCHED, "PARTIALLY_MATCHED"),
        (SettlementStatus.HALF_LOST, "HALF_LOST"),
        (BetStatus.DECLINED, "declined"),
        (EventKind.INSERT, "INSERT"),
    ],
)
def test_enum_members_print_as_their_wire_value(member: Any, wire: str) -> None:
    assert str(member) == wire
    assert f"{member}" == wire
    assert member == wire  # str enums compare equal to the wire text
