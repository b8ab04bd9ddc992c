"""Secrets never leak; the exception tree has the documented shape."""

from __future__ import annotations

import copy
import inspect
import pickle

import pytest

import mmws
import mmws.errors as errors
from mmws._secret import Secret, redact, redact_url
from mmws.errors import (
    AuthenticationError,
    ClientClosed,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    ConnectionLimitError,
    HeartbeatTimeout,
    LocalProtocolError,
    MmwsError,
    ProtocolError,
    RemoteProtocolError,
    ServerError,
    SubscriptionError,
    TransportError,
    TransportTimeout,
)

KEY = "8b4f6a9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

# -- Secret ---------------------------------------------------------------------------------


def test_secret_repr_and_str_show_only_the_last_four_characters() -> None:
    secret = Secret(KEY)
    assert repr(secret) == "Secret('…4a5b')"
    assert str(secret) == repr(secret)
    assert f"{secret}" == "Secret('…4a5b')"
    assert KEY[:-4] not in repr(secret)
    assert secret.hint == "…4a5b"
    assert secret.reveal() == KEY


def test_short_secret_shows_nothing() -> None:
    secret = Secret("abcdefgh")
    assert secret.hint == "…"
    assert "efgh" not in repr(secret)


def test_secret_equality_and_hash_follow_the_value() -> None:
    assert Secret(KEY) == Secret(KEY)
    assert Secret(KEY) != Secret(KEY.upper())
    assert Secret(KEY) != KEY
    assert hash(Secret(KEY)) == hash(Secret(KEY))
    assert len({Secret(KEY), Secret(KEY)}) == 1


def test_secret_has_no_dict_to_leak_through() -> None:
    assert not hasattr(Secret(KEY), "__dict__")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_a_secret_is_refused(protocol: int) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(KEY), protocol=protocol)


def test_copying_a_secret_is_refused_too() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.deepcopy(Secret(KEY))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "wss://ws-eu.soccerfootball.info/?token=abc123xyz789",
            "wss://ws-eu.soccerfootball.info/?token=***",
        ),
        (
            "wss://ws-as.soccerfootball.info/?lang=en&token=abc123&x=1#frag",
            "wss://ws-as.soccerfootball.info/?lang=en&token=***&x=1#frag",
        ),
        (
            "https://api.soccerfootball.info/v1/ws/new/?t=SECRET-TOKEN",
            "https://api.soccerfootball.info/v1/ws/new/?t=***",
        ),
        ("wss://h/?TOKEN=a&apiKey=b&api_key=c", "wss://h/?TOKEN=***&apiKey=***&api_key=***"),
        ("token=abc", "token=***"),
        ("wss://mmapi.55-tech.com/ws/subscribe", "wss://mmapi.55-tech.com/ws/subscribe"),
        ("wss://h/?mytoken=keep&at=keep", "wss://h/?mytoken=keep&at=keep"),
    ],
)
def test_redact_url_hides_token_values(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_replaces_secrets_and_url_tokens() -> None:
    text = f"failed with key {KEY} at wss://h/?token=tok123 (key {KEY})"
    assert redact(text, KEY, "") == "failed with key *** at wss://h/?token=*** (key ***)"


# -- the exception tree ---------------------------------------------------------------------


def _error_classes() -> list[type[BaseException]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    ]


def test_every_class_in_errors_is_an_mmws_error_and_exported() -> None:
    classes = _error_classes()
    assert len(classes) == 19
    assert {c.__name__ for c in classes} == set(errors.__all__)
    for cls in classes:
        assert issubclass(cls, MmwsError), cls
        assert getattr(mmws, cls.__name__) is cls


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (ConfigError, MmwsError),
        (ConfigError, ValueError),
        (ClientClosed, MmwsError),
        (ProtocolError, MmwsError),
        (LocalProtocolError, ProtocolError),
        (RemoteProtocolError, ProtocolError),
        (ServerError, MmwsError),
        (AuthenticationError, ServerError),
        (ConnectionLimitError, ServerError),
        (SubscriptionError, ServerError),
        (errors.RestError, ServerError),
        (errors.RateLimitError, errors.RestError),
        (TransportError, MmwsError),
        (ConnectError, TransportError),
        (TransportTimeout, TransportError),
        (TransportTimeout, TimeoutError),
        (HeartbeatTimeout, TransportTimeout),
        (ConnectionClosed, TransportError),
    ],
)
def test_tree_shape(cls: type, parent: type) -> None:
    assert issubclass(cls, parent)


def test_tree_branches_do_not_overlap() -> None:
    assert not issubclass(ServerError, TransportError)
    assert not issubclass(ConnectionClosed, TimeoutError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)
    assert not issubclass(ConfigError, ProtocolError)


def test_config_error_is_caught_as_value_error() -> None:
    with pytest.raises(ValueError, match="bad channel"):
        raise ConfigError("bad channel")


def test_transport_timeout_is_caught_as_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        raise HeartbeatTimeout("no pong within 10 s of a ping")


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (ConnectionClosed(), "connection closed with code 1006"),
        (ConnectionClosed(1000), "connection closed with code 1000"),
        (
            ConnectionClosed(1008, "Invalid API key"),
            "connection closed with code 1008 (Invalid API key)",
        ),
    ],
)
def test_connection_closed_reads_as_a_sentence(exc: ConnectionClosed, text: str) -> None:
    assert str(exc) == text


def test_connection_closed_keeps_code_and_reason() -> None:
    exc = ConnectionClosed(1011, "internal error")
    assert (exc.code, exc.reason) == (1011, "internal error")


@pytest.mark.parametrize(
    "exc",
    [
        ServerError("Invalid API key"),
        ServerError("Channel STATS_REALTIME is not available", "CHANNEL_NOT_ALLOWED"),
        AuthenticationError("Invalid apiKey format"),
        ConnectionLimitError("Connection limit exceeded"),
        SubscriptionError("Maximum subscriptions reached", "SUBSCRIPTION_LIMIT"),
    ],
)
def test_server_errors_pickle_round_trip(exc: ServerError) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert (back.message, back.code) == (exc.message, exc.code)
    assert str(back) == str(exc)


def test_server_error_message_and_code() -> None:
    exc = SubscriptionError("Channel X is not available", "CHANNEL_NOT_ALLOWED")
    assert str(exc) == "CHANNEL_NOT_ALLOWED: Channel X is not available"
    assert exc.message == "Channel X is not available"
    assert exc.code == "CHANNEL_NOT_ALLOWED"
    assert str(ServerError("plain")) == "plain"


@pytest.mark.parametrize("exc", [ConnectionClosed(), ConnectionClosed(1008, "policy")])
def test_connection_closed_pickle_round_trip(exc: ConnectionClosed) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is ConnectionClosed
    assert (back.code, back.reason, str(back)) == (exc.code, exc.reason, str(exc))


def test_remote_protocol_error_keeps_at_most_200_characters_of_raw() -> None:
    exc = RemoteProtocolError("frame is not valid JSON", "y" * 500)
    assert exc.raw == "y" * 200
    assert str(exc) == "frame is not valid JSON"
    assert RemoteProtocolError("no raw").raw == ""


def test_connect_error_status() -> None:
    assert ConnectError("upgrade refused", status=429).status == 429
    assert ConnectError("dns failed").status is None
