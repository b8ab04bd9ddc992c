"""The pure parts of ``MMRest``: arguments, URLs, body shapes, paging, Retry-After, errors.
No sockets, no threads, no clock."""

from __future__ import annotations

import json
import logging
import math
import pickle
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmws
from mmws import ConfigError, RemoteProtocolError
from mmws._codec import model_codec
from mmws.mm._restwire import (
    EXTRA_PAGES,
    BaseURL,
    Pager,
    backoff_delay,
    date_range,
    decode_items,
    error_detail,
    integer_param,
    items_of,
    number,
    parse_base_url,
    retry_delay,
    statuses,
    text_param,
    total_pages,
    whole,
)
from mmws.mm.models import Order, OrderStatus, TradingStatus

KEY = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
NOW = 1_800_000_000.0
ORDERS = model_codec(Order, {"orderId": "id"})


# -- base URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected", "shown"),
    [
        ("https://mmapi.55-tech.com", BaseURL("https", "mmapi.55-tech.com", 443),
         "https://mmapi.55-tech.com"),
        ("HTTP://Host:8080/", BaseURL("http", "host", 8080), "http://host:8080"),
        ("https://h/pre/fix/", BaseURL("https", "h", 443, "/pre/fix"), "https://h/pre/fix"),
        ("http://[::1]:81", BaseURL("http", "::1", 81), "http://[::1]:81"),
        ("http://127.0.0.1:80", BaseURL("http", "127.0.0.1", 80), "http://127.0.0.1"),
    ],
)
def test_base_urls_that_work(url: str, expected: BaseURL, shown: str) -> None:
    assert parse_base_url(url) == expected
    assert str(parse_base_url(url)) == shown


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (None, "must be a string"),
        ("ftp://host", "http:// or https://"),
        ("https://", "with a host"),
        ("mmapi.55-tech.com", "http:// or https://"),
        ("wss://host/ws", "http:// or https://"),
        ("https://host?x=1", "query"),
        ("https://host/#top", "fragment"),
        ("https://host:0", "port 0"),
        ("https://host:99999", "not a valid URL"),
        ("https://host:abc", "not a valid URL"),
        ("https://host/a b", "spaces or control"),
        ("https://ho\nst", "spaces or control"),
        (" https://host", "spaces or control"),
    ],
)
def test_base_urls_refused(url: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_base_url(url)


def test_a_password_in_the_base_url_is_refused_and_not_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_base_url("https://user:hunter2@host")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_base_url(f"https://host/?apiKey={KEY}")
    assert KEY not in str(caught.value)


def test_targets_carry_the_prefix_and_an_encoded_query() -> None:
    base = parse_base_url("https://h/pre/")
    assert base.target("/api/v1/accounts", {}) == "/pre/api/v1/accounts"
    target = base.target(
        "/api/v1/orders", {"fixtureId": "id 1&x=2", "exchange": None, "page": 3, "status": "A,B"}
    )
    assert target == "/pre/api/v1/orders?fixtureId=id+1%26x%3D2&page=3&status=A%2CB"


# -- arguments -----------------------------------------------------------------------------


def test_dates_of_every_accepted_kind() -> None:
    assert date_range(date(2026, 4, 1), "2026-04-02") == ("2026-04-01", "2026-04-02")
    assert date_range(None, None) == (None, None)
    late_evening_in_new_york = datetime(2026, 4, 1, 22, 30, tzinfo=timezone(timedelta(hours=-4)))
    assert date_range(late_evening_in_new_york, None) == ("2026-04-02", None)  # its UTC date
    assert date_range(None, datetime(2026, 4, 1, 23, 59)) == (None, "2026-04-01")  # naive: UTC


@pytest.mark.parametrize(
    ("from_date", "to_date", "words"),
    [
        ("2026-02-30", None, "from_date is not a real date"),
        ("2026/02/01", None, "from_date must be a date"),
        ("20260201", None, "from_date must be a date"),
        (None, 20260201, "to_date must be a date, a datetime or a 'YYYY-MM-DD' string, got int"),
        (None, "\u0662\u0660\u0662\u0666-\u0660\u0661-\u0660\u0661", "to_date must be a date"),
        ("2026-04-03", date(2026, 4, 2), "from_date .2026-04-03. is after to_date"),
    ],
)
def test_bad_dates_name_the_parameter(from_date: Any, to_date: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        date_range(from_date, to_date)


def test_status_filters() -> None:
    assert statuses(None) is None
    assert statuses("PLACED") == "PLACED"
    assert statuses("PLACED,FILLED") == "PLACED,FILLED"
    assert statuses(["PLACED", OrderStatus.FILLED]) == "PLACED,FILLED"
    assert statuses(s for s in ("won", "lost")) == "won,lost"
    assert statuses(("Placed", "PENDING"), lower=True) == "placed,pending"
    for bad, words in [([], "at least one"), (["A", 3], "got int 3"), (b"A", "got bytes"),
                       ({"A": 1}, "got dict"), (7, "got int"), ([""], "non-empty")]:
        with pytest.raises(ConfigError, match=words):
            statuses(bad)


def test_filters_and_numbers() -> None:
    assert text_param(None, "exchange") is None
    assert text_param("kalshi", "exchange") == "kalshi"
    assert integer_param(12, "order_id") == 12
    for bad in ("", 3, b"x"):
        with pytest.raises(ConfigError, match="exchange must be a non-empty string"):
            text_param(bad, "exchange")
    for bad in (True, "12", 1.5, -1):
        with pytest.raises(ConfigError, match="order_id must be an integer"):
            integer_param(bad, "order_id")
    assert number(3, "timeout", 0.001) == 3.0
    for bad in (math.nan, math.inf, "3", True, None, 10**400, 0.0):
        with pytest.raises(ConfigError, match="timeout must be"):
            number(bad, "timeout", 0.001)
    with pytest.raises(ConfigError, match="between 0 and 600"):
        number(601, "max_retry_after", 0.0, 600.0)
    assert whole(2000, "page_size", 1, 2000) == 2000
    for bad in (0, 2001, True, 5.0):
        with pytest.raises(ConfigError, match="page_size must be an integer between 1 and 2000"):
            whole(bad, "page_size", 1, 2000)


# -- answers -------------------------------------------------------------------------------


def test_list_answers_in_every_tolerated_shape() -> None:
    rows = [{"orderId": 1}]
    keys = ("data", "orders")
    assert items_of(rows, keys, "GET x") is rows
    assert items_of({"data": rows, "total": 1}, keys, "GET x") is rows
    assert items_of({"orders": rows, "count": 1}, keys, "GET x") is rows
    assert items_of({"data": None, "orders": rows}, keys, "GET x") is rows
    with pytest.raises(RemoteProtocolError, match="GET x: the answer is an object with no list"):
        items_of({"bets": rows}, keys, "GET x")
    with pytest.raises(RemoteProtocolError, match="GET x: the answer is a JSON str, not a list"):
        items_of("oops", keys, "GET x")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["data", "orders", "totalPages", "x"]) | st.text(),
                      inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_any_json_body_gives_a_list_or_a_remote_protocol_error(body: Any) -> None:
    try:
        items = items_of(body, ("data", "orders"), "GET /api/v1/orders")
    except RemoteProtocolError as exc:
        assert str(exc).startswith("GET /api/v1/orders: ")
    else:
        assert type(items) is list
    pages = total_pages(body)
    assert pages is None or (type(pages) is int and pages >= 0)
    try:
        decoded = decode_items(ORDERS, body if type(body) is list else [body], "GET x")
    except RemoteProtocolError as exc:
        assert "GET x: item " in str(exc)
    else:
        assert all(type(order) is Order for order in decoded)


def test_total_pages_is_a_count_or_nothing() -> None:
    assert total_pages({"totalPages": 3}) == 3
    for body in ({"totalPages": True}, {"totalPages": "3"}, {"totalPages": -1}, [], None, {}):
        assert total_pages(body) is None


def test_items_that_do_not_decode_are_named_by_index_and_scrubbed() -> None:
    assert decode_items(ORDERS, [{"orderId": 1}, {"id": 2}], "GET x")[1].order_id == 2
    with pytest.raises(RemoteProtocolError, match=r"GET x page 2: item 1 is a JSON list"):
        decode_items(ORDERS, [{"orderId": 1}, []], "GET x page 2")
    with pytest.raises(RemoteProtocolError, match=r"item 0 does not decode \(KeyError: "):
        decode_items(ORDERS, [{"fixtureId": "f"}], "GET x")
    with pytest.raises(RemoteProtocolError) as caught:
        decode_items(ORDERS, [{"orderId": KEY}], "GET x", lambda t: t.replace(KEY, "***"))
    assert KEY not in str(caught.value)
    assert "'orderId'" in str(caught.value)


def test_error_details() -> None:
    assert error_detail(b'{"detail": "Invalid or missing API key"}') == "Invalid or missing API key"
    fastapi = {"detail": [{"loc": ["query", "fromDate"], "msg": "bad date", "type": "x"},
                          {"loc": ["query", "page"], "msg": "too small"}]}
    assert error_detail(json.dumps(fastapi).encode()) == (
        "query.fromDate: bad date; query.page: too small"
    )
    assert error_detail(b'{"message": "slow down"}') == "slow down"
    assert error_detail(b"<html>Bad\r\nGateway</html>") == "<html>Bad  Gateway</html>"
    assert error_detail(b"\xff\xfe") == "\ufffd\ufffd"
    assert error_detail(b'{"other": 1}') == ""
    assert error_detail(b"") == ""
    assert len(error_detail(json.dumps({"detail": "x" * 5000}).encode())) == 300


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_error_body_gives_one_short_printable_line(body: bytes) -> None:
    detail = error_detail(body)
    assert len(detail) <= 300
    assert detail.isprintable()


# -- paging --------------------------------------------------------------------------------


def rows(start: int, count: int) -> list[dict[str, int]]:
    return [{"orderId": n} for n in range(start, start + count)]


def test_paging_stops_at_total_pages() -> None:
    pager = Pager(2)
    assert not pager.last({"data": rows(1, 2), "totalPages": 3}, rows(1, 2), "GET x")
    assert pager.page == 2
    assert not pager.last({"data": rows(3, 2), "totalPages": 3}, rows(3, 2), "GET x")
    assert pager.last({"data": rows(5, 2), "totalPages": 3}, rows(5, 2), "GET x")  # full, last
    assert Pager(2).last({"data": rows(1, 1), "totalPages": 0}, rows(1, 1), "GET x")


def test_without_total_pages_a_short_or_empty_page_is_the_last() -> None:
    pager = Pager(2)
    assert not pager.last(rows(1, 2), rows(1, 2), "GET x")
    assert pager.last(rows(3, 1), rows(3, 1), "GET x")
    pager = Pager(2)
    assert not pager.last(rows(1, 2), rows(1, 2), "GET x")
    assert pager.last([], [], "GET x")
    # a page that is empty before totalPages says so: the list shrank, nothing more comes
    assert Pager(2).last({"data": [], "totalPages": 9}, [], "GET x")


def test_a_server_that_ignores_the_page_number_ends_the_paging() -> None:
    pager = Pager(2)
    assert not pager.last(rows(1, 2), rows(1, 2), "GET x")
    assert pager.last(rows(1, 2), rows(1, 2), "GET x")


def test_a_server_that_never_stops_is_a_protocol_error() -> None:
    pager = Pager(1)
    page = 0
    with pytest.raises(RemoteProtocolError, match="keeps answering full pages past the 2 pages"):
        while True:
            page += 1
            body = {"data": rows(page, 1), "totalPages": page + 1}  # always one more
            assert not pager.last(body, body["data"], "GET x")
    assert page == 2 + EXTRA_PAGES


def test_more_items_than_one_call_collects_is_a_protocol_error() -> None:
    pager = Pager(2, max_items=6)
    with pytest.raises(RemoteProtocolError, match="more than 6 items in 3 pages; narrow"):
        for page in range(1, 100):
            assert not pager.last(rows(2 * page, 2), rows(2 * page, 2), "GET x")
    with pytest.raises(RemoteProtocolError, match="announces 1000000 pages of 2"):
        Pager(2, max_items=6).last({"data": rows(1, 2), "totalPages": 10**6}, rows(1, 2), "GET x")


# -- waits ---------------------------------------------------------------------------------


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_delay("7", NOW, 60.0) == 7.0
    assert retry_delay(" 0 ", NOW, 60.0) == 0.0
    assert retry_delay("3600", NOW, 60.0) == 60.0  # capped
    when = datetime.fromtimestamp(NOW + 30, tz=timezone.utc)
    assert retry_delay(format_datetime(when, usegmt=True), NOW, 60.0) == 30.0
    assert retry_delay(format_datetime(when, usegmt=True), NOW + 100, 60.0) == 0.0  # past
    for garbage in (None, "", "soon", "-5", "1.5", "\u0661\u0662", "Mon, 99 Foo 2026"):
        assert retry_delay(garbage, NOW, 60.0) is None


@given(st.text(max_size=60) | st.integers().map(str), st.floats(0, 600))
def test_any_retry_after_is_none_or_a_wait_within_the_cap(value: str, cap: float) -> None:
    wait = retry_delay(value, NOW, cap)
    assert wait is None or 0.0 <= wait <= cap


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(1.0, n, 60.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(0.001, 2, 60.0) == 0.004
    assert backoff_delay(1e300, 10**6, 60.0) == 60.0


# -- errors, models, the client's arguments ------------------------------------------------


def test_rest_errors_carry_status_detail_and_retry_after_and_pickle() -> None:
    error = mmws.RateLimitError("GET x answered HTTP 429", 429, "slow down", 2.0)
    assert isinstance(error, mmws.RestError)
    assert isinstance(error, mmws.ServerError)
    assert (error.status, error.detail, error.retry_after) == (429, "slow down", 2.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is mmws.RateLimitError
    assert (str(copy), copy.status, copy.detail, copy.retry_after) == (
        str(error), 429, "slow down", 2.0
    )
    assert "RestError" in mmws.errors.__all__
    assert "RateLimitError" in mmws.errors.__all__


def test_trading_status_decodes_with_the_shared_codec() -> None:
    wire = {
        "client": "demo", "clientName": "Demo", "oddsFormat": "decimal", "status": "active",
        "tradingActive": True, "manualPaused": False, "manualPausedAt": "2026-04-01T10:00:00Z",
        "manualPausedReason": None, "manualStopped": False, "manualStoppedAt": None,
        "manualStoppedReason": None, "systemTradingBlocked": False, "emergencyActive": False,
        "systemStopped": False, "softPaused": False, "systemReason": None,
        "systemDurationSeconds": 12, "newField": [1],
    }
    status = model_codec(TradingStatus).structure(wire)
    assert status.trading_active is True
    assert status.manual_paused_at == datetime(2026, 4, 1, 10, tzinfo=timezone.utc)
    assert status.system_duration_seconds == 12.0
    assert status.extra == {"newField": (1,)}
    assert TradingStatus() == TradingStatus(**{})  # every field optional
    with pytest.raises(TypeError):
        model_codec(TradingStatus).structure({"tradingActive": "yes"})


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"page_size": 0}, "page_size must be an integer between 1 and 2000"),
        ({"page_size": 2001}, "page_size"),
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"retries": True}, "retries"),
        ({"timeout": math.nan}, "timeout must be a finite number"),
        ({"timeout": 0}, "timeout must be at least"),
        ({"backoff_base": -1}, "backoff_base"),
        ({"max_retry_after": 601}, "max_retry_after must be between 0 and 600"),
        ({"verify_tls": "no"}, "verify_tls must be True or False"),
        ({"ssl_context": object()}, "ssl_context must be an ssl.SSLContext"),
        ({"ca_file": 3}, "ca_file must be a path"),
        ({"ca_file": "/nonexistent/ca.pem"}, "cannot load the CA file"),
        ({"base_url": "ws://127.0.0.1:1"}, "base_url must be an http:// or https://"),
    ],
)
def test_bad_client_arguments_are_config_errors(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        mmws.MMRest(KEY, **{"base_url": "https://127.0.0.1:1", **kwargs})


@pytest.mark.parametrize("key", ["not-a-uuid", f" {KEY}", f"{{{KEY}}}", KEY[:-1], 12])
def test_a_bad_key_is_refused_without_showing_it(key: Any) -> None:
    with pytest.raises(ConfigError, match="api_key") as caught:
        mmws.MMRest(key, "https://127.0.0.1:1")
    assert str(key).strip(" {}") not in str(caught.value)


def test_the_repr_shows_the_url_and_a_hint_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rest = mmws.MMRest(KEY, "https://127.0.0.1:1/prefix/")
    assert repr(rest) == "<MMRest https://127.0.0.1:1/prefix api_key='…4e5f'>"
    rest.close()
    assert repr(rest).endswith(" closed>")
    with pytest.raises(mmws.ClientClosed):
        rest.accounts()
    rest.close()  # idempotent
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_turning_verification_off_or_plain_http_to_a_remote_host_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mmws.rest")
    mmws.MMRest(KEY, "https://127.0.0.1:1", verify_tls=False).close()
    mmws.MMRest(KEY, "http://127.0.0.1:1").close()  # loopback: no warning
    assert [r.getMessage() for r in caplog.records] == [
        "TLS certificate verification is DISABLED for https://127.0.0.1:1 (verify_tls=False): "
        "anyone on the network path can read the API key and change the answers"
    ]
    caplog.clear()
    mmws.MMRest(KEY, "http://mmapi.example").close()  # nothing is sent: no request is made
    assert "unencrypted" in caplog.records[0].getMessage()
