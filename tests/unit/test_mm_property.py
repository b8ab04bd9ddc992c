"""Property: whatever the server sends, ``MMProtocol.receive_text`` yields events or raises
``RemoteProtocolError``, never anything else, and the next valid frame still decodes.

The valid frame is the seed's "Payload examples, Order fill".
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any, get_args

import attrs
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mmws import (
    AccountEvent,
    BetEvent,
    EmergencyEvent,
    Heartbeat,
    MMProtocol,
    OrderEvent,
    OrderStatus,
    Pong,
    RemoteProtocolError,
    ScoreEvent,
    ServerErrorEvent,
    Subscribed,
    UnknownMessage,
)
from mmws._codec import camel, model_codec
from mmws.errors import ServerError
from mmws.mm import CHANNELS
from mmws.mm.models import Account, Bet, Emergency, Order, Score

pytestmark = pytest.mark.usefixtures("json_backend")  # both JSON parsers

ORDER_FILL = (Path(__file__).resolve().parent.parent / "data" / "seed_order_fill.json").read_text(
    encoding="utf-8"
)
EVENT_TYPES = (
    OrderEvent,
    BetEvent,
    AccountEvent,
    ScoreEvent,
    EmergencyEvent,
    Subscribed,
    Pong,
    Heartbeat,
    ServerErrorEvent,
    UnknownMessage,
)
IDENTITY = {
    OrderEvent: ("order_id", int),
    BetEvent: ("bet_id", int),
    ScoreEvent: ("fixture_id", str),
}
MODELS = {
    "orders": Order,
    "bets": Bet,
    "accounts": Account,
    "scores": Score,
    "emergency": Emergency,
}

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- strategies -----------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, 1, -1, 2**63, 10**400, -(10**400)])
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
timestamps = st.datetimes(timezones=st.none()).flatmap(
    lambda dt: st.sampled_from(
        [
            dt.isoformat(),
            dt.isoformat() + "Z",
            dt.replace(tzinfo=timezone(timedelta(hours=5))).isoformat(),
            dt.replace(tzinfo=timezone(timedelta(hours=-5))).isoformat(),
        ]
    )
) | st.sampled_from(
    # valid ISO-8601 text whose UTC value does not fit in a datetime
    ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-02-15T10:30:05Z"]
)


def _typed(tp: Any) -> st.SearchStrategy[Any]:
    """Values of the right wire type for one model attribute (sometimes ``null``)."""
    members = [a for a in get_args(tp) or (tp,) if a is not type(None)]
    first = members[0]
    if isinstance(first, type) and issubclass(first, Enum):
        values = [m.value for m in first]
        known = st.sampled_from(values + [v.lower() for v in values] + [v.upper() for v in values])
        return known | st.text(max_size=10)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        int: st.integers(),
        float: st.floats() | st.integers() | st.sampled_from([10**308 * 10, -(10**400)]),
        bool: st.booleans(),
        str: st.text(max_size=20),
        datetime: timestamps,
    }
    if first in simple:
        return simple[first]
    return st.dictionaries(st.text(max_size=8), json_values, max_size=4)


def _payloads(channel: str) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly well-typed payloads of the channel's model, now and then with one bad value."""
    cls = MODELS[channel]
    typed = {
        camel(f.name): _typed(f.type) | st.none() for f in attrs.fields(cls) if f.name != "extra"
    }
    identity = {"orders": "orderId", "bets": "betId", "scores": "fixtureId"}.get(channel)
    required = {identity: typed.pop(identity).filter(lambda v: v is not None)} if identity else {}
    optional = {**typed, "id": st.integers(), "newField": json_values}
    wire_keys = [*sorted(model_codec(cls).known), "id", "\x00extra"]
    bad_value = st.tuples(st.sampled_from(wire_keys) | st.text(max_size=6), json_values)
    corrupt = st.one_of(st.none(), st.none(), st.none(), bad_value)  # one in four

    def build(parts: tuple[dict[str, Any], Any]) -> dict[str, Any]:
        payload, bad = parts
        if bad is not None:
            payload[bad[0]] = bad[1]
        return payload

    return st.tuples(st.fixed_dictionaries(required, optional=optional), corrupt).map(build)


@st.composite
def broadcasts(draw: st.DrawFn) -> dict[str, Any]:
    """Broadcast-shaped frames: mostly decodable, with every part sometimes junk."""

    def sometimes_junk(good: st.SearchStrategy[Any]) -> Any:
        return draw(json_values) if draw(st.integers(0, 4)) == 0 else draw(good)

    channel = sometimes_junk(st.sampled_from(CHANNELS))
    known = isinstance(channel, str) and channel in MODELS
    payload = _payloads(channel if known else draw(st.sampled_from(CHANNELS)))
    frame: dict[str, Any] = {"type": "broadcast", "channel": channel}
    if draw(st.integers(0, 9)):
        frame["event"] = sometimes_junk(st.sampled_from(["INSERT", "UPDATE", "upsert"]))
    frame["payload"] = sometimes_junk(payload)
    if draw(st.booleans()):
        frame["old"] = sometimes_junk(payload)
    return frame


control_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribed", "error", "pong", "heartbeat", "hello"]) | json_values},
    optional={
        "subscriptionId": json_values,
        "subscription_id": json_values,
        "channels": json_values,
        "message": json_values,
        "error": json_values,
        "detail": json_values,
        "code": json_values,
    },
)

# -- the property ---------------------------------------------------------------------------


def assert_survives(frame: str | bytes) -> None:
    proto = MMProtocol()
    proto.start(0.0)
    proto.ping(now=0.5)
    try:
        proto.receive_text(frame, 1.0)
    except RemoteProtocolError as exc:
        event("RemoteProtocolError")
        assert str(exc)
        assert len(exc.raw) <= 200
    for decoded in proto.events_received():
        event(type(decoded).__name__)
        assert isinstance(decoded, EVENT_TYPES), decoded
        if isinstance(decoded, (OrderEvent, BetEvent, ScoreEvent)):
            name, tp = IDENTITY[type(decoded)]
            assert type(getattr(decoded.payload, name)) is tp
        if isinstance(decoded, ServerErrorEvent):
            assert isinstance(decoded.message, str)
            assert isinstance(decoded.error, ServerError)
    proto.receive_text(ORDER_FILL, 2.0)
    [fill] = proto.events_received()
    assert type(fill) is OrderEvent
    assert fill.payload.order_id == 123
    assert fill.payload.order_status is OrderStatus.FILLED
    assert fill.payload.matched_at == datetime(2026, 2, 15, 10, 30, 5, tzinfo=timezone.utc)
    assert fill.received_at == 2.0


@SETTINGS
@given(st.text())
def test_any_text(text: str) -> None:
    assert_survives(text)


@SETTINGS
@given(st.binary())
def test_any_bytes(data: bytes) -> None:
    assert_survives(data)


@SETTINGS
@given(json_values)
def test_any_json_value(value: Any) -> None:
    assert_survives(json.dumps(value))


@SETTINGS
@given(broadcasts())
def test_broadcast_shaped_frames(frame: dict[str, Any]) -> None:
    assert_survives(json.dumps(frame))


@SETTINGS
@given(control_frames)
def test_control_shaped_frames(frame: dict[str, Any]) -> None:
    assert_survives(json.dumps(frame))


@SETTINGS
@given(broadcasts())
def test_broadcast_frames_as_utf8_bytes(frame: dict[str, Any]) -> None:
    assert_survives(json.dumps(frame, ensure_ascii=False).encode("utf-8", "surrogatepass"))


# -- the generated structure functions against cattrs' own ------------------------------------


def _outcome(codec: Any, payload: Any, run: Any) -> Any:
    """What a structure function made of ``payload``, or the error a user would see: with
    several bad fields, cattrs' function and ours may trip over different ones first, and
    ``ModelCodec.structure`` reports the first bad one in field order (``_explain``)."""
    try:
        return ("ok", run())
    except KeyError as exc:
        return ("error", KeyError, str(exc))
    except (TypeError, ValueError) as exc:
        shown = codec._explain(payload, exc)
        return ("error", type(shown), str(shown))


@SETTINGS
@given(data=st.data(), channel=st.sampled_from(sorted(MODELS)))
def test_the_generated_structure_function_decodes_exactly_as_cattrs(
    data: st.DataObject, channel: str
) -> None:
    """Same instance, or the same kind of error, for any payload: well typed, junk in any
    field, unknown keys (moved to ``extra`` first, as :meth:`ModelCodec.structure` does)."""
    codec = model_codec(MODELS[channel])
    payload = data.draw(_payloads(channel))
    if not codec.known.issuperset(payload):
        payload = codec._rewrite(payload)
    theirs = _outcome(codec, payload, lambda: codec.reference(payload, codec.cls))
    for build in (codec._build, codec._build_lazy):  # frozen now, or on first read
        mine = _outcome(codec, payload, lambda: build(payload))  # noqa: B023 - called at once
        assert mine[0] == theirs[0]
        if mine[0] == "error":
            assert mine == theirs
        else:
            built = mine[1]
            assert type(built) is type(theirs[1])
            # repr: NaN is never equal to itself, but prints the same
            assert repr(attrs.asdict(built, recurse=False)) == repr(
                attrs.asdict(theirs[1], recurse=False)
            )
            with pytest.raises(attrs.exceptions.FrozenInstanceError):
                built.extra = {}  # type: ignore[misc]


def test_with_several_bad_fields_both_structure_functions_report_the_first_in_field_order() -> None:
    """Found by the property test above: cattrs checks required fields last, ours in field
    order; what a user sees (``ModelCodec.structure``) is the same."""
    codec = model_codec(Order)
    payload = codec._rewrite(
        {"orderId": None, "id": 9, "updatedAt": "0001-01-01T00:00:00+05:00"}
    )
    mine = _outcome(codec, payload, lambda: codec._build(payload))
    assert mine == _outcome(codec, payload, lambda: codec.reference(payload, Order))
    assert mine == ("error", TypeError, "field 'orderId': expected a value, got null")
    with pytest.raises(TypeError, match="field 'orderId': expected a value, got null"):
        codec.structure({"orderId": None, "updatedAt": "0001-01-01T00:00:00+05:00"})
