"""The MM protocol core's commands, validation, state machine and error frames.

Seed sections: "Connection flow" steps 2 (Subscribe), 5 (Keep alive), 6 (Unsubscribe),
"Channels", "Connection limits" and "Error messages".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmws import (
    AuthenticationError,
    ConfigError,
    ConnectionLimitError,
    LocalProtocolError,
    MMProtocol,
    ServerError,
    ServerErrorEvent,
    Subscribed,
    Unsubscribed,
)
from mmws._keepalive import Keepalive
from mmws._secret import Secret
from mmws.mm import CHANNELS
from mmws.mm.protocol import MMProtocolState as MMState
from mmws.mm.protocol import classify_error, validate_api_key, validate_channels

DATA = Path(__file__).resolve().parent.parent / "data"
KEY = "8b4f6a9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
ALL = ["orders", "bets", "accounts", "scores", "emergency"]


def seed_json(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def sent(proto: MMProtocol) -> list[Any]:
    return [json.loads(text) for text in proto.data_to_send()]


def only_event(proto: MMProtocol) -> Any:
    events = proto.events_received()
    assert len(events) == 1, events
    return events[0]


# -- commands, checked against the seed fixtures --------------------------------------------


def test_connection_flow_2_subscribe_matches_seed() -> None:
    """Connection flow, 2. Subscribe: the command equals the seed's, with our key."""
    proto = MMProtocol()
    proto.subscribe(KEY, ALL)
    expected = seed_json("seed_subscribe")
    expected["apiKey"] = KEY
    assert sent(proto) == [expected]
    assert proto.state is MMState.SUBSCRIBING
    assert proto.channels == tuple(ALL)
    assert proto.data_to_send() == []  # the buffer was emptied


def test_connection_flow_2_subscribe_legacy_field_names_sends_api_key() -> None:
    """Connection flow, 2. Subscribe, in the pre-2026-04-18 docs: ``api_key``."""
    proto = MMProtocol(legacy_field_names=True)
    proto.subscribe(KEY, ["orders", "bets"])
    expected = seed_json("hist_subscribe_api_key")
    expected["api_key"] = KEY
    [command] = sent(proto)
    assert command == expected
    assert "apiKey" not in command


def test_subscribe_accepts_a_secret_and_reveals_it_only_on_the_wire() -> None:
    proto = MMProtocol()
    proto.subscribe(Secret(KEY), ["scores"])
    assert KEY not in repr(proto)
    assert repr(proto) == "<MMProtocol state=SUBSCRIBING channels=['scores']>"
    assert sent(proto) == [{"type": "subscribe", "apiKey": KEY, "channels": ["scores"]}]


def test_connection_flow_5_ping_matches_seed() -> None:
    """Connection flow, 5. Keep alive: ``{"type": "ping"}`` and the pong clock starts."""
    proto = MMProtocol()
    proto.start(50.0)
    proto.ping(now=80.0)
    assert sent(proto) == [seed_json("seed_ping")]
    assert proto.keepalive.ping_outstanding_since == 80.0
    assert proto.keepalive.last_ping == 80.0


def test_connection_flow_6_unsubscribe_matches_seed() -> None:
    """Connection flow, 6. Unsubscribe: the command, the state and an ``Unsubscribed``."""
    proto = MMProtocol()
    proto.subscribe(KEY, ["orders"])
    proto.receive_text('{"type": "subscribed", "subscriptionId": 9}', 1.0)
    proto.data_to_send()
    proto.events_received()
    proto.unsubscribe()
    assert sent(proto) == [seed_json("seed_unsubscribe")]
    assert proto.state is MMState.UNSUBSCRIBED
    assert only_event(proto) == Unsubscribed()


def test_commands_queue_in_order() -> None:
    proto = MMProtocol()
    proto.subscribe(KEY, ["orders"])
    proto.ping(now=1.0)
    proto.receive_text('{"type": "subscribed", "subscriptionId": 2}', 1.5)
    proto.unsubscribe()
    assert [c["type"] for c in sent(proto)] == ["subscribe", "ping", "unsubscribe"]
    assert proto.events_received() == [Subscribed(2, ("orders",)), Unsubscribed()]
    assert proto.events_received() == []


def test_start_sets_the_keepalive_clocks_and_a_custom_keepalive_is_used() -> None:
    keepalive = Keepalive(ping_interval=5.0, pong_timeout=2.0)
    proto = MMProtocol(keepalive=keepalive)
    assert proto.keepalive is keepalive
    proto.start(10.0)
    assert (keepalive.last_received, keepalive.last_ping) == (10.0, 10.0)
    assert keepalive.ping_due(15.0) and not keepalive.ping_due(14.9)
    proto.receive_text('{"type": "heartbeat"}', 12.0)
    assert keepalive.last_received == 12.0


# -- validation before anything is sent -----------------------------------------------------


@pytest.mark.parametrize(
    "bad_key",
    [
        "your-uuid-api-key",
        "sk_live_SUPERSECRETVALUE_1234567890",
        "8b4f6a9e-1c2d-4e5f-8a9b-0c1d2e3f4a5",  # one digit short
        "",
    ],
)
def test_non_uuid_api_key_is_a_config_error_that_never_shows_the_key(bad_key: str) -> None:
    """Error messages: ``Invalid apiKey format`` is caught locally, before sending."""
    proto = MMProtocol()
    with pytest.raises(ConfigError) as info:
        proto.subscribe(bad_key, ["orders"])
    message = str(info.value)
    assert "api_key is not a valid UUID" in message
    assert f"{len(bad_key)} characters" in message
    if bad_key:
        assert bad_key not in message
        assert bad_key not in repr(info.value)
    assert isinstance(info.value, ValueError)
    assert proto.data_to_send() == []
    assert proto.state is MMState.IDLE


def test_non_string_api_key_is_a_config_error() -> None:
    proto = MMProtocol()
    with pytest.raises(ConfigError, match=r"must be a string.*got int"):
        proto.subscribe(12345, ["orders"])  # type: ignore[arg-type]
    assert proto.data_to_send() == []


def test_unknown_channel_is_a_config_error_naming_it_and_listing_the_valid_ones() -> None:
    """Channels: only the five documented channels are accepted."""
    proto = MMProtocol()
    with pytest.raises(ConfigError) as info:
        proto.subscribe(KEY, ["orders", "trades"])
    message = str(info.value)
    assert "'trades'" in message
    assert "orders, bets, accounts, scores, emergency" in message
    assert KEY not in message
    assert proto.data_to_send() == []
    assert proto.state is MMState.IDLE
    # a failed validation does not use up the one subscribe this connection has
    proto.subscribe(KEY, ["orders"])
    assert proto.state.value == "SUBSCRIBING"


def test_bad_key_is_reported_before_bad_channels() -> None:
    with pytest.raises(ConfigError, match="UUID"):
        MMProtocol().subscribe("nope", ["trades"])


@pytest.mark.parametrize("channels", [[], "", " , "])
def test_no_channels_is_a_config_error(channels: Any) -> None:
    proto = MMProtocol()
    with pytest.raises(ConfigError) as info:
        proto.subscribe(KEY, channels)
    assert "valid channels are orders, bets, accounts, scores, emergency" in str(info.value)
    assert proto.data_to_send() == []


def test_validate_channels_keeps_order_drops_repeats_and_splits_strings() -> None:
    assert validate_channels(["scores", "orders", "scores"]) == ("scores", "orders")
    assert validate_channels("orders, bets,orders") == ("orders", "bets")
    assert validate_channels(iter(["emergency"])) == ("emergency",)
    assert CHANNELS == ("orders", "bets", "accounts", "scores", "emergency")


@pytest.mark.parametrize(
    ("bad_key", "hint"),
    [
        (KEY + "\n", "whitespace around it"),
        (" " + KEY, "whitespace around it"),
        ("{" + KEY + "}", "8-4-4-4-12 hex digits"),
        ("urn:uuid:" + KEY, "8-4-4-4-12 hex digits"),
        (KEY.replace("-", ""), "8-4-4-4-12 hex digits"),
    ],
)
def test_a_uuid_in_another_spelling_is_refused_with_a_hint(bad_key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_api_key(bad_key)
    message = str(info.value)
    assert hint in message
    assert "the key is not shown" in message
    assert KEY not in message and KEY.replace("-", "") not in message


def test_an_upper_case_uuid_key_is_accepted_as_given() -> None:
    assert validate_api_key(KEY.upper()).reveal() == KEY.upper()


def test_validate_api_key_returns_a_secret() -> None:
    secret = validate_api_key(KEY)
    assert isinstance(secret, Secret)
    assert secret.reveal() == KEY
    assert validate_api_key(Secret(KEY)) == secret


# -- the state machine ----------------------------------------------------------------------


def in_state(state: MMState) -> MMProtocol:
    proto = MMProtocol()
    if state is MMState.IDLE:
        return proto
    if state is MMState.CLOSED:
        proto.connection_lost()
        return proto
    proto.subscribe(KEY, ["orders"])
    if state is MMState.SUBSCRIBED or state is MMState.UNSUBSCRIBED:
        proto.receive_text('{"type": "subscribed", "subscriptionId": 1}', 0.0)
    if state is MMState.UNSUBSCRIBED:
        proto.unsubscribe()
    if state is MMState.FAILED:
        proto.receive_text('{"type": "error", "message": "Invalid API key"}', 0.0)
    proto.data_to_send()
    proto.events_received()
    assert proto.state is state
    return proto


TRANSITIONS = {
    (MMState.IDLE, "subscribe"): MMState.SUBSCRIBING,
    (MMState.SUBSCRIBED, "unsubscribe"): MMState.UNSUBSCRIBED,
}


@pytest.mark.parametrize("state", list(MMState))
@pytest.mark.parametrize("action", ["subscribe", "unsubscribe"])
def test_transition_table_for_commands(state: MMState, action: str) -> None:
    proto = in_state(state)
    expected = TRANSITIONS.get((state, action))
    if expected is None:
        with pytest.raises(LocalProtocolError) as info:
            getattr(proto, action)(*((KEY, ["orders"]) if action == "subscribe" else ()))
        assert str(info.value) == f"cannot {action} in state {state.value}"
        assert proto.state is state
        assert proto.data_to_send() == []
    else:
        getattr(proto, action)(*((KEY, ["orders"]) if action == "subscribe" else ()))
        assert proto.state is expected
        assert len(proto.data_to_send()) == 1


@pytest.mark.parametrize("state", list(MMState))
def test_ping_is_allowed_until_the_connection_failed_or_closed(state: MMState) -> None:
    proto = in_state(state)
    if state in (MMState.FAILED, MMState.CLOSED):
        with pytest.raises(LocalProtocolError, match=f"cannot ping in state {state.value}"):
            proto.ping(now=1.0)
        assert proto.data_to_send() == []
        assert proto.keepalive.ping_outstanding_since is None
    else:
        proto.ping(now=1.0)
        assert proto.data_to_send() == ['{"type": "ping"}']
        assert proto.state is state


@pytest.mark.parametrize("state", list(MMState))
def test_connection_lost_closes_from_any_state(state: MMState) -> None:
    proto = in_state(state)
    proto.connection_lost()
    assert proto.state is MMState.CLOSED


def test_subscribe_twice_is_illegal() -> None:
    proto = MMProtocol()
    proto.subscribe(KEY, ["orders"])
    with pytest.raises(LocalProtocolError, match="cannot subscribe in state SUBSCRIBING"):
        proto.subscribe(KEY, ["bets"])
    assert proto.channels == ("orders",)
    assert len(proto.data_to_send()) == 1


def test_unsubscribe_before_subscribed_is_illegal() -> None:
    proto = MMProtocol()
    with pytest.raises(LocalProtocolError, match="cannot unsubscribe in state IDLE"):
        proto.unsubscribe()
    proto.subscribe(KEY, ["orders"])
    with pytest.raises(LocalProtocolError, match="cannot unsubscribe in state SUBSCRIBING"):
        proto.unsubscribe()
    assert proto.events_received() == []


def test_ping_after_connection_lost_is_illegal() -> None:
    proto = MMProtocol()
    proto.connection_lost()
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        proto.ping(now=3.0)


def test_subscribed_frame_moves_subscribing_to_subscribed_only() -> None:
    proto = in_state(MMState.UNSUBSCRIBED)
    proto.receive_text('{"type": "subscribed", "subscriptionId": 3}', 1.0)
    assert proto.state is MMState.UNSUBSCRIBED
    assert proto.subscription_id == 3
    assert only_event(proto) == Subscribed(3, ("orders",))


def test_error_frame_fails_only_a_pending_subscription() -> None:
    proto = in_state(MMState.SUBSCRIBED)
    proto.receive_text('{"type": "error", "message": "Connection limit exceeded"}', 1.0)
    assert proto.state is MMState.SUBSCRIBED
    assert isinstance(only_event(proto).error, ConnectionLimitError)


# -- Error messages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "exc_type"),
    [
        ("apiKey required", AuthenticationError),
        ("Invalid apiKey format", AuthenticationError),
        ("Invalid API key", AuthenticationError),
        ("Connection limit exceeded", ConnectionLimitError),
        ("api_key required", AuthenticationError),
        ("Invalid api_key format", AuthenticationError),
        ("Internal server error", ServerError),
    ],
)
def test_error_messages_map_to_exception_classes(text: str, exc_type: type) -> None:
    """Error messages: the four documented texts (and the legacy ``api_key`` spellings)."""
    proto = MMProtocol()
    proto.subscribe(KEY, ["orders"])
    proto.receive_text(json.dumps({"type": "error", "message": text}), 2.0)
    event = only_event(proto)
    assert type(event) is ServerErrorEvent
    assert event.message == text
    assert event.code is None
    assert type(event.error) is exc_type
    assert isinstance(event.error, ServerError)
    assert event.error.message == text
    assert str(event.error) == text
    assert proto.state is MMState.FAILED


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"message": "Invalid API key", "error": "x", "detail": "y"}, "Invalid API key"),
        ({"error": "Connection limit exceeded", "detail": "y"}, "Connection limit exceeded"),
        ({"detail": "apiKey required"}, "apiKey required"),
        ({"message": None, "detail": "apiKey required"}, "apiKey required"),
        (
            {"detail": {"loc": ["apiKey"], "msg": "required"}},
            '{"loc": ["apiKey"], "msg": "required"}',
        ),
        ({}, "error frame without a message"),
    ],
)
def test_error_text_is_read_from_message_then_error_then_detail(
    frame: dict[str, Any], expected: str
) -> None:
    proto = MMProtocol()
    proto.receive_text(json.dumps({"type": "error", **frame}), 1.0)
    event = only_event(proto)
    assert event.message == expected
    assert event.error.message == expected


def test_error_frame_code_is_kept_when_it_is_a_string() -> None:
    proto = MMProtocol()
    proto.receive_text('{"type": "error", "code": "AUTH", "message": "Invalid API key"}', 1.0)
    proto.receive_text('{"type": "error", "code": 401, "message": "Invalid API key"}', 1.0)
    first, second = proto.events_received()
    assert first.code == "AUTH"
    assert str(first.error) == "AUTH: Invalid API key"
    assert isinstance(first.error, AuthenticationError)
    assert second.code is None


def test_server_error_event_equality_ignores_the_exception_object() -> None:
    a = ServerErrorEvent("Invalid API key", None, AuthenticationError("Invalid API key"))
    b = ServerErrorEvent("Invalid API key", None, AuthenticationError("Invalid API key"))
    assert a == b
    assert a != ServerErrorEvent("Invalid apiKey format")


def test_classify_error_directly() -> None:
    assert type(classify_error("INVALID APIKEY FORMAT")) is AuthenticationError
    assert type(classify_error("connection LIMIT exceeded", "X")) is ConnectionLimitError
    other = classify_error("rate limited", "429")
    assert type(other) is ServerError
    assert (other.message, other.code) == ("rate limited", "429")
