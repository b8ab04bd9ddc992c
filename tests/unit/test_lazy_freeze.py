"""Free-form objects of broadcasts (``sentData``, ``scores``, unknown keys) are frozen on
first read, and a frame that nests too deep is refused before it is parsed."""

from __future__ import annotations

import json
import pickle
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmws._codec import model_codec
from mmws._frozen import MAX_DEPTH, FrozenMap, LazyFrozenMap, within_depth
from mmws.errors import RemoteProtocolError
from mmws.mm.events import BetEvent, OrderEvent
from mmws.mm.models import Bet, Order
from mmws.mm.protocol import MMProtocol

KEY = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"

tricky_text = st.text(alphabet='[]{}"\\ab,:', max_size=8)
values = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values, levels=st.integers(0, 8), as_bytes=st.booleans(), ascii_only=st.booleans())
def test_within_depth_measures_the_nesting_and_is_not_fooled_by_strings(
    value: Any, levels: int, as_bytes: bool, ascii_only: bool
) -> None:
    text: str | bytes = json.dumps(value, ensure_ascii=ascii_only)
    if as_bytes:
        text = text.encode()
    assert within_depth(text, levels) == (depth(value) <= levels)


def nested(levels: int) -> Any:
    value: Any = 1
    for index in range(levels):
        value = {"k": value} if (levels - index) % 2 else [value]  # the outermost an object
    return value


def core() -> MMProtocol:
    proto = MMProtocol()
    proto.subscribe(KEY, ["orders", "bets"])
    proto.receive_text('{"type": "subscribed", "subscriptionId": 1}', 0.0)
    proto.events_received()
    return proto


def decode(frame: dict[str, Any]) -> Any:
    proto = core()
    text = json.dumps(frame).encode()
    proto.receive_text(text + b" " * 2048, 1.0)  # long: frozen on first read
    (event,) = proto.events_received()
    return event


def bet_frame(sent: Any, **more: Any) -> dict[str, Any]:
    return {"type": "broadcast", "channel": "bets", "event": "INSERT",
            "payload": {"betId": 7, "sentData": sent, **more}}  # fmt: skip


def test_a_free_form_value_is_frozen_on_first_read_and_then_kept() -> None:
    sent = {"legs": [{"prices": [1.9, 2.0], "tags": ["a"]}], "n": 1}
    event = decode(bet_frame(sent, futureKey={"x": [1, {"y": [2]}]}))
    assert isinstance(event, BetEvent)
    lazy = event.payload.sent_data
    assert type(lazy) is LazyFrozenMap
    assert type(dict.__getitem__(lazy, "legs")) is list  # nothing frozen yet
    legs = lazy["legs"]
    assert legs == (FrozenMap({"prices": (1.9, 2.0), "tags": ("a",)}),)
    assert lazy["legs"] is legs and lazy.get("legs") is legs  # kept
    assert lazy.get("missing", 5) == 5 and lazy["n"] == 1
    with pytest.raises(TypeError):
        legs[0]["tags"] += ("b",)  # type: ignore[index]
    with pytest.raises(TypeError):
        lazy["n"] = 2  # type: ignore[index]
    assert event.payload.extra == FrozenMap({"futureKey": FrozenMap({"x": (1, FrozenMap(
        {"y": (2,)}))})})  # fmt: skip


@pytest.mark.parametrize(
    "read",
    [
        lambda m: dict(m), lambda m: {**m}, lambda m: dict(m.items()),
        lambda m: dict(zip(m, m.values(), strict=True)), lambda m: m | {}, lambda m: {} | m,
        lambda m: m.copy(), lambda m: pickle.loads(pickle.dumps(m)),
    ],
)  # fmt: skip
def test_every_way_to_read_a_whole_lazy_map_sees_frozen_values(read: Any) -> None:
    raw = {"a": [1, [2]], "b": {"c": [3]}, "d": 4}
    eager = FrozenMap({"a": (1, (2,)), "b": FrozenMap({"c": (3,)}), "d": 4})
    got = read(LazyFrozenMap(json.loads(json.dumps(raw))))
    assert got == eager
    assert type(got["a"]) is tuple and type(got["b"]) is FrozenMap
    lazy = LazyFrozenMap(json.loads(json.dumps(raw)))
    assert lazy == eager and eager == lazy and hash(lazy) == hash(eager)
    assert repr(LazyFrozenMap(json.loads(json.dumps(raw)))) == repr(eager)
    assert json.loads(json.dumps(LazyFrozenMap(json.loads(json.dumps(raw))))) == raw


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sent=st.dictionaries(tricky_text, values, max_size=3), extra=values)
def test_a_lazily_frozen_event_equals_hashes_prints_and_pickles_like_an_eager_one(
    sent: dict[str, Any], extra: Any
) -> None:
    payload = {"betId": 7, "sentData": sent, "receivedData": {"r": [extra]}, "newKey": extra}
    lazy = decode(bet_frame(sent, receivedData={"r": [extra]}, newKey=extra)).payload
    eager = model_codec(Bet).structure(json.loads(json.dumps(payload)))
    assert repr(lazy) == repr(eager)  # reads every field
    lazy = decode(bet_frame(sent, receivedData={"r": [extra]}, newKey=extra)).payload
    assert lazy == eager and hash(lazy) == hash(eager)
    again = decode(bet_frame(sent, receivedData={"r": [extra]}, newKey=extra)).payload
    assert pickle.loads(pickle.dumps(again)) == eager
    evolved = attrs.evolve(decode(bet_frame(sent)).payload, bet_id=8)
    assert evolved.sent_data == model_codec(Bet).structure(
        json.loads(json.dumps({"betId": 8, "sentData": sent}))
    ).sent_data


@pytest.mark.parametrize("where", ["sentData", "futureKey"])
def test_a_free_form_value_may_nest_max_depth_levels_and_no_more(where: str) -> None:
    ok = decode(bet_frame({}, **{where: nested(MAX_DEPTH)}))
    value = ok.payload.sent_data if where == "sentData" else ok.payload.extra[where]
    assert value is not None  # frozen on first read, without an error
    too_deep = json.dumps(bet_frame({}, **{where: nested(MAX_DEPTH + 1)}))
    for text in (too_deep, too_deep + " " * 2048):  # frozen at once, or on first read
        with pytest.raises(RemoteProtocolError, match=f"nested deeper than {MAX_DEPTH} levels"):
            core().receive_text(text, 1.0)


def test_a_short_frame_is_frozen_at_once() -> None:
    proto = core()
    proto.receive_text(json.dumps(bet_frame({"a": [1]})), 1.0)
    (event,) = proto.events_received()
    assert type(event.payload.sent_data) is FrozenMap
    assert event.payload.sent_data == FrozenMap({"a": (1,)})


def test_the_rest_api_and_users_still_get_eagerly_frozen_models() -> None:
    order = model_codec(Order).structure({"orderId": 1, "futureKey": [1, [2]]})
    assert type(order.extra) is FrozenMap
    assert order.extra == FrozenMap({"futureKey": (1, (2,))})
    made = OrderEvent("UPDATE", Order(2, extra=FrozenMap({"a": 1})))
    assert made.payload.extra == FrozenMap({"a": 1})
