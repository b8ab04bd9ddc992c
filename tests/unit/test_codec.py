"""The private cattrs codec: wire rules, round trips and error messages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import attrs
import pytest

from mmws._codec import ModelCodec, camel, converter, model_codec, parse_timestamp
from mmws.mm.models import (
    Account,
    Bet,
    BetStatus,
    Emergency,
    MatchedStatus,
    Order,
    OrderStatus,
    Score,
    SettlementStatus,
)

UTC = timezone.utc
T0 = datetime(2026, 2, 15, 10, 30, 5, tzinfo=UTC)

FULL_ORDER = Order(
    order_id=123,
    fixture_id="id1000000861624412",
    outcome_id=161,
    player_id=0,
    exchange="polymarket",
    account="0x1234...abcd",
    exchange_order_id="0x1a2b3c...",
    exchange_outcome_id="tok-1",
    order_status=OrderStatus.FILLED,
    matched_status=MatchedStatus.FULLY_MATCHED,
    order_cents=0.45,
    order_stake=100.0,
    matched_stake=100.0,
    back=True,
    side="buy",
    settlement_status=SettlementStatus.UNDECIDED,
    settled_at=T0 + timedelta(hours=2),
    bookmaker_outcome_price=1.808,
    bookmaker_outcome_limit=500.0,
    bookmaker_outcome_active=False,
    created_at=T0 - timedelta(seconds=5),
    matched_at=T0,
    updated_at=T0 + timedelta(microseconds=1500),
    extra=MappingProxyType({"hedgeRatio": 0.5}),
)

FULL_ORDER_WIRE = {
    "orderId": 123,
    "fixtureId": "id1000000861624412",
    "outcomeId": 161,
    "playerId": 0,
    "exchange": "polymarket",
    "account": "0x1234...abcd",
    "exchangeOrderId": "0x1a2b3c...",
    "exchangeOutcomeId": "tok-1",
    "orderStatus": "FILLED",
    "matchedStatus": "FULLY_MATCHED",
    "orderCents": 0.45,
    "orderStake": 100.0,
    "matchedStake": 100.0,
    "back": True,
    "side": "buy",
    "settlementStatus": "UNDECIDED",
    "settledAt": "2026-02-15T12:30:05Z",
    "bookmakerOutcomePrice": 1.808,
    "bookmakerOutcomeLimit": 500.0,
    "bookmakerOutcomeActive": False,
    "createdAt": "2026-02-15T10:30:00Z",
    "matchedAt": "2026-02-15T10:30:05Z",
    "updatedAt": "2026-02-15T10:30:05.001500Z",
    "hedgeRatio": 0.5,
}


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("order_id", "orderId"),
        ("bookmaker_outcome_price", "bookmakerOutcomePrice"),
        ("live", "live"),
        ("period1_home", "period1Home"),
    ],
)
def test_camel(name: str, wire: str) -> None:
    assert camel(name) == wire


def test_unstructure_full_order_gives_camel_case_wire_keys_and_plain_values() -> None:
    wire = model_codec(Order).unstructure(FULL_ORDER)
    assert wire == FULL_ORDER_WIRE
    assert type(wire["orderStatus"]) is str
    assert type(wire["matchedStatus"]) is str
    assert type(wire["settlementStatus"]) is str


def test_unstructure_omits_none_and_keeps_extra() -> None:
    order = Order(order_id=7, matched_stake=5.0, extra=MappingProxyType({"newKey": [1, 2]}))
    assert model_codec(Order).unstructure(order) == {
        "orderId": 7,
        "matchedStake": 5.0,
        "newKey": [1, 2],
    }


def test_unstructure_keeps_unknown_enum_strings() -> None:
    bet = Bet(bet_id=1, bet_status="voided", settlement_status=SettlementStatus.HALF_LOST)
    assert model_codec(Bet).unstructure(bet) == {
        "betId": 1,
        "betStatus": "voided",
        "settlementStatus": "HALF_LOST",
    }


def test_unstructure_writes_non_utc_datetimes_as_utc_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    emergency = Emergency(triggered_at=datetime(2026, 2, 15, 12, 30, tzinfo=plus_two))
    assert model_codec(Emergency).unstructure(emergency) == {"triggeredAt": "2026-02-15T10:30:00Z"}


@pytest.mark.parametrize(
    "model",
    [
        FULL_ORDER,
        Order(order_id=1),
        Order(order_id=2, order_status="PARTIAL", matched_status=MatchedStatus.NOT_MATCHED),
        Bet(
            bet_id=456,
            order_id=123,
            bet_status=BetStatus.PLACED,
            settlement_status=SettlementStatus.UNDECIDED,
            sent_data=MappingProxyType({"requestId": "a1b2c3d4", "eventId": 98765}),
            received_data=MappingProxyType({"betId": "789", "status": "U"}),
            placed_at=T0,
        ),
        Account(exchange="kalshi", username="u", active=True, balance=10.5, created_at=T0),
        Score(fixture_id="f", live=False, status_id=3, scores=MappingProxyType({"home": 0})),
        Emergency(emergency=False, reason="resumed", triggered_at=T0),
        Emergency(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_structure_of_unstructure_is_identity(model: Any) -> None:
    codec = model_codec(type(model))
    wire = codec.unstructure(model)
    back = codec.structure(wire)
    assert back == model
    assert dict(back.extra) == dict(model.extra)
    assert codec.unstructure(back) == wire


def test_structure_full_order_from_wire() -> None:
    order = model_codec(Order).structure(FULL_ORDER_WIRE)
    assert order == FULL_ORDER
    assert order.order_status is OrderStatus.FILLED
    assert order.settlement_status is SettlementStatus.UNDECIDED
    assert dict(order.extra) == {"hedgeRatio": 0.5}
    with pytest.raises(TypeError):
        order.extra["hedgeRatio"] = 1.0  # type: ignore[index]  # read-only


@pytest.mark.parametrize("key", ["__mmws_extra__", "\x00extra", "extra"])
def test_a_wire_key_shaped_like_the_internal_extra_slot_is_kept_in_extra(key: str) -> None:
    order = model_codec(Order).structure({"orderId": 3, key: {"x": 1}})
    assert order.order_id == 3
    assert dict(order.extra) == {key: {"x": 1}}


def test_structure_does_not_modify_the_input_mapping() -> None:
    wire = {"id": 5, "newKey": 1}
    order = model_codec(Order, {"orderId": "id"}).structure(wire)
    assert order.order_id == 5
    assert wire == {"id": 5, "newKey": 1}


def test_the_private_converter_dispatches_to_the_model_codecs() -> None:
    assert converter.structure({"orderId": 9, "orderStatus": "placed"}, Order) == Order(
        order_id=9, order_status=OrderStatus.PLACED
    )
    assert converter.unstructure(Score(fixture_id="f", live=True)) == {
        "fixtureId": "f",
        "live": True,
    }


def test_model_codec_is_built_once_per_class() -> None:
    assert model_codec(Order) is model_codec(Order)
    assert model_codec(Order).cls is Order
    assert "orderId" in model_codec(Order).known
    assert "extra" not in model_codec(Order).known


def test_missing_identity_key_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="required field 'betId' is missing"):
        model_codec(Bet).structure({"orderId": 1})


@pytest.mark.parametrize(
    ("wire", "error", "needle"),
    [
        ({"orderId": 1, "outcomeId": True}, TypeError, "field 'outcomeId': expected an integer"),
        ({"orderId": 1, "back": 0}, TypeError, "field 'back': expected true or false, got int"),
        ({"orderId": 1, "back": None, "side": 1}, TypeError, "field 'side': expected a string"),
        ({"orderId": 1, "orderCents": "0.45"}, TypeError, "field 'orderCents': expected a number"),
        ({"orderId": 1, "orderCents": 2**1100}, ValueError, "too large for a float"),
        ({"orderId": 1, "orderStatus": ["FILLED"]}, TypeError, "field 'orderStatus'"),
        ({"orderId": 1, "createdAt": "15/02/2026"}, ValueError, "not an ISO-8601 timestamp"),
        ({"orderId": 1, "createdAt": 0}, TypeError, "expected an ISO-8601 timestamp, got int"),
        ({"orderId": None}, TypeError, "field 'orderId'"),
    ],
)
def test_structure_errors_name_the_wire_field(
    wire: dict[str, Any], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error) as info:
        model_codec(Order).structure(wire)
    assert needle in str(info.value)


def test_mapping_fields_must_be_objects() -> None:
    with pytest.raises(TypeError, match=r"field 'scores': expected an object, got list"):
        model_codec(Score).structure({"fixtureId": "f", "scores": [2, 1]})
    assert model_codec(Score).structure({"fixtureId": "f", "scores": None}).scores is None


def test_explain_falls_back_to_the_original_error_when_every_field_is_fine() -> None:
    original = ValueError("from somewhere else")
    assert model_codec(Order)._explain({"orderId": 1}, original) is original


def test_structure_old_types_known_fields_and_keeps_unknown_ones() -> None:
    old = model_codec(Order).structure_old(
        {"orderStatus": "placed", "matchedStake": 0, "matchedAt": None, "mystery": [1]}
    )
    assert dict(old) == {
        "order_status": OrderStatus.PLACED,
        "matched_stake": 0.0,
        "matched_at": None,
        "mystery": (1,),  # JSON arrays decode to tuples: deep-frozen
    }
    assert type(old["matched_stake"]) is float
    with pytest.raises(TypeError):
        old["order_status"] = None  # type: ignore[index]


def test_structure_old_errors_name_the_field_and_old() -> None:
    with pytest.raises(TypeError, match=r"field 'back' of 'old': expected true or false"):
        model_codec(Order).structure_old({"back": "yes"})
    with pytest.raises(ValueError, match=r"field 'matchedAt' of 'old': not an ISO-8601"):
        model_codec(Order).structure_old({"matchedAt": "soon"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-15T10:30:05Z", T0),
        ("2026-02-15T10:30:05+00:00", T0),
        ("2026-02-15T05:30:05-05:00", T0),
        ("2026-02-15T10:30:05", T0),
        ("2026-02-15 10:30:05Z", T0),
        (None, None),
    ],
)
def test_parse_timestamp(text: str | None, expected: datetime | None) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is timezone.utc


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", ValueError),
        ("2026-13-01T00:00:00Z", ValueError),
        ("9999-12-31T23:59:59-01:00", ValueError),
        (1739615405, TypeError),
        (T0, TypeError),
    ],
)
def test_parse_timestamp_rejects(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_timestamp(value)


def test_a_model_field_without_a_wire_rule_is_caught_at_build_time() -> None:
    @attrs.frozen
    class Weird:
        numbers: list[int]
        extra: Any = None

    with pytest.raises(TypeError, match="no wire rule"):
        ModelCodec(Weird)


def test_slot_constructor_builds_what_the_class_builds_and_it_stays_frozen() -> None:
    from mmws._codec import slot_constructor
    from mmws._frozen import FrozenMap
    from mmws.mm.events import BetEvent, EventKind, OrderEvent

    order = Order(7, order_status=OrderStatus.PLACED)
    old = FrozenMap({"order_status": OrderStatus.PENDING_PLACEMENT})
    make = slot_constructor(OrderEvent)
    built = make(EventKind.UPDATE, order, old, 12.5, "{}")
    assert built == OrderEvent(EventKind.UPDATE, order, old, 12.5)
    assert built.received_at == 12.5 and type(built) is OrderEvent and built.frame == "{}"
    assert hash(built) == hash(OrderEvent(EventKind.UPDATE, order, old, 0.0))  # eq=False field
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.payload = order  # type: ignore[misc]
    with pytest.raises(TypeError):
        make(EventKind.UPDATE, order)  # every field, positionally
    assert slot_constructor(BetEvent) is not make

    class Plain:
        pass

    with pytest.raises(TypeError, match="not a slotted attrs class"):
        slot_constructor(Plain)


def test_timestamps_seen_lately_are_parsed_once_and_the_memory_of_them_is_bounded() -> None:
    from mmws import _codec

    first = parse_timestamp("2026-11-30T10:00:00.123Z")
    assert parse_timestamp("2026-11-30T10:00:00.123Z") is first
    assert first == datetime(2026, 11, 30, 10, 0, 0, 123000, tzinfo=timezone.utc)
    for second in range(_codec._TIMESTAMPS_KEPT + 10):  # all different
        hour, rest = divmod(second, 3600)
        parse_timestamp(f"2026-11-30T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}+01:00")
    assert 0 < len(_codec._TIMESTAMPS) <= _codec._TIMESTAMPS_KEPT
    with pytest.raises(ValueError, match="not an ISO-8601"):
        parse_timestamp("2026-13-45T99:00:00Z")
    assert "2026-13-45T99:00:00Z" not in _codec._TIMESTAMPS
    order = model_codec(Order).structure(
        {"orderId": 1, "createdAt": "2026-11-30T10:00:00.123Z", "updatedAt": "2026-11-30T11:00Z"}
    )
    assert order.created_at is parse_timestamp("2026-11-30T10:00:00.123Z")
    assert order.updated_at == datetime(2026, 11, 30, 11, 0, tzinfo=timezone.utc)


def test_a_payload_refused_half_way_leaves_nothing_half_made_in_the_traceback() -> None:
    """Error trackers render every frame's locals: each must have a working repr."""
    import traceback

    payload = {"orderId": 1, "orderStatus": "PLACED", "updatedAt": 5}  # the last field is bad
    with pytest.raises(TypeError) as info:
        model_codec(Order).structure(payload)
    rendered = "".join(
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    assert "raised in repr()" not in rendered
    assert "field 'updatedAt'" in rendered
