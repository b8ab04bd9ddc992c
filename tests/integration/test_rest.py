"""``MMRest`` against a scripted raw HTTP/1.1 server on 127.0.0.1 (``httpserver.py``).

Real sockets and the real ``http.client``; each test scripts the server's answers and reads
back what the server saw. Waits between retries are recorded by a subclass hook and kept
tiny (``backoff_base=0.001``), so nothing here sleeps to synchronise.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import date, datetime, timezone
from email.utils import format_datetime
from typing import Any

import pytest
import trustme
from httpserver import Reply, ScriptedServer, ok

import mmws
from mmws.mm._restwire import EXTRA_PAGES, MAX_BODY
from mmws.sim import Simulator

KEY = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"


class Recording(mmws.MMRest):
    """Records each wait before a retry (then waits as usual)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waits: list[float] = []

    def _wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        super()._wait(seconds)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as s:
        yield s


def client(server: ScriptedServer, **kwargs: Any) -> Recording:
    options: dict[str, Any] = {"backoff_base": 0.001, "timeout": 5.0, **kwargs}
    return Recording(KEY, server.url, **options)


def order(n: int, **fields: Any) -> dict[str, Any]:
    return {"orderId": n, "fixtureId": f"id{n}", "orderStatus": "PLACED", **fields}


def page(rows: list[dict[str, Any]], number: int, total: int, size: int) -> Reply:
    return ok({"data": rows, "total": 0, "page": number, "pageSize": size, "totalPages": total})


STATUS = {"client": "demo", "status": "active", "tradingActive": True,
          "manualPausedAt": "2026-04-01T10:00:00Z", "systemDurationSeconds": 5}


# -- endpoints and queries -----------------------------------------------------------------


def test_every_endpoint_its_query_and_one_kept_alive_connection(server: ScriptedServer) -> None:
    server.add(
        ok({"orders": [order(1)], "count": 1}),
        page([order(2), order(3)], 1, 1, 2000),
        ok({"data": [{"betId": 9, "orderId": 2, "betStatus": "placed"}], "totalPages": 1}),
        ok({"oddsFormat": "decimal", "accounts": [{"exchange": "kalshi", "username": "u"}],
            "count": 1}),
        ok(STATUS),
    )
    with client(server) as rest:
        assert [o.order_id for o in rest.open_orders(fixture_id="id1", exchange="kalshi")] == [1]
        orders = rest.orders(
            date(2026, 4, 1), "2026-04-02", status=["PLACED", "FILLED"], exchange="kalshi"
        )
        assert [o.order_id for o in orders] == [2, 3]
        assert orders[0].order_status is mmws.OrderStatus.PLACED
        bets = rest.bets(datetime(2026, 4, 1, 23, tzinfo=timezone.utc), order_id=2,
                         bookmaker="pinnacle", status="PLACED")
        assert bets[0].bet_id == 9 and bets[0].bet_status is mmws.BetStatus.PLACED
        accounts = rest.accounts(exchange="kalshi")
        assert accounts == [mmws.Account(exchange="kalshi", username="u")]
        status = rest.trading_status()
        assert status.trading_active is True and status.system_duration_seconds == 5.0
        assert status.manual_paused_at == datetime(2026, 4, 1, 10, tzinfo=timezone.utc)
    seen = server.requests
    assert [(r.method, r.path, r.query) for r in seen] == [
        ("GET", "/api/v1/orders/open", {"fixtureId": "id1", "exchange": "kalshi"}),
        ("GET", "/api/v1/orders", {"exchange": "kalshi", "status": "PLACED,FILLED",
                                   "fromDate": "2026-04-01", "toDate": "2026-04-02",
                                   "page": "1", "pageSize": "2000"}),
        ("GET", "/api/v1/bets", {"orderId": "2", "bookmaker": "pinnacle", "status": "placed",
                                 "fromDate": "2026-04-01", "page": "1", "pageSize": "2000"}),
        ("GET", "/api/v1/accounts", {"exchange": "kalshi"}),
        ("GET", "/api/v1/trading/status", {}),
    ]
    for request in seen:
        assert request.headers["x-api-key"] == KEY
        assert request.headers["accept"] == "application/json"
        assert request.headers["user-agent"] == f"mmws/{mmws.__version__}"
    assert {r.connection for r in seen} == {1}  # kept alive: one connection for all five
    assert server.connections == 1


def test_a_base_url_with_a_path_prefix(server: ScriptedServer) -> None:
    server.add(ok([]))
    with Recording(KEY, server.url + "/mm/", backoff_base=0.001) as rest:
        assert rest.accounts() == []
    assert server.requests[0].target == "/mm/api/v1/accounts"


def test_debug_log_lines_name_each_request(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mmws.rest")
    server.add(ok([]), Reply(404, {"detail": "Not Found"}))
    with client(server) as rest:
        rest.accounts(exchange="kalshi")
        with pytest.raises(mmws.RestError):
            rest.trading_status()
    lines = [r.getMessage() for r in caplog.records if r.name == "mmws.rest"]
    assert lines[0].startswith("GET /api/v1/accounts?exchange=kalshi -> HTTP 200, 2 bytes in ")
    assert lines[0].endswith(" ms (new connection)")
    assert lines[1].startswith("GET /api/v1/trading/status -> HTTP 404, ")


# -- paging --------------------------------------------------------------------------------


def test_paging_until_total_pages(server: ScriptedServer) -> None:
    server.add(
        page([order(1), order(2)], 1, 3, 2),
        page([order(3), order(4)], 2, 3, 2),
        page([order(4, orderStatus="FILLED"), order(5)], 3, 3, 2),  # 4 moved on a page
    )
    with client(server, page_size=2) as rest:
        orders = rest.orders()
    assert [o.order_id for o in orders] == [1, 2, 3, 4, 5]
    assert orders[3].order_status is mmws.OrderStatus.FILLED  # the later copy
    assert [(r.query["page"], r.query["pageSize"]) for r in server.requests] == [
        ("1", "2"), ("2", "2"), ("3", "2")
    ]


def test_paging_without_total_pages_stops_at_a_short_page(server: ScriptedServer) -> None:
    server.add(
        ok([{"betId": 1}, {"betId": 2}]),
        ok({"bets": [{"betId": 3}, {"betId": 4}]}),
        ok({"data": [{"betId": 5}]}),
    )
    with client(server, page_size=2) as rest:
        assert [b.bet_id for b in rest.bets()] == [1, 2, 3, 4, 5]
    assert len(server.requests) == 3


def test_a_server_that_keeps_announcing_more_pages_is_stopped(server: ScriptedServer) -> None:
    for n in range(1, 40):
        server.add(page([order(n)], n, n + 1, 1))
    with client(server, page_size=1) as rest, pytest.raises(
        mmws.RemoteProtocolError, match="keeps answering full pages past the 2 pages"
    ):
        rest.orders()
    assert len(server.requests) == 2 + EXTRA_PAGES


def test_a_server_that_never_ends_a_list_hits_the_cap(server: ScriptedServer) -> None:
    for n in range(1, 40):
        server.add(ok([order(2 * n), order(2 * n + 1)]))
    with client(server, page_size=2) as rest:
        rest.max_items = 6
        with pytest.raises(mmws.RemoteProtocolError, match="more than 6 items in 3 pages"):
            rest.orders()
    assert len(server.requests) == 3


# -- retries -------------------------------------------------------------------------------


def test_429_waits_as_retry_after_says_then_succeeds(server: ScriptedServer) -> None:
    past = format_datetime(datetime(2020, 1, 1, tzinfo=timezone.utc), usegmt=True)
    server.add(
        Reply(429, {"detail": "Rate limit exceeded"}, headers=(("Retry-After", "0"),)),
        Reply(429, {"detail": "Rate limit exceeded"}, headers=(("Retry-After", past),)),
        Reply(429, {"detail": "Rate limit exceeded"}, headers=(("Retry-After", "3600"),)),
        ok([]),
    )
    with client(server, max_retry_after=0.002) as rest:
        assert rest.accounts() == []
        assert rest.waits == [0.0, 0.0, 0.002]  # seconds, an HTTP date, capped
    assert len(server.requests) == 4
    assert {r.connection for r in server.requests} == {1}


def test_429_without_retry_after_backs_off_1_2_4(server: ScriptedServer) -> None:
    server.add(*[Reply(429)] * 3, ok([]))
    with client(server) as rest:
        assert rest.accounts() == []
        assert rest.waits == [0.001, 0.002, 0.004]
    assert len(server.requests) == 4


def test_429_exhausted_is_a_rate_limit_error(server: ScriptedServer) -> None:
    server.add(*[Reply(429, {"detail": "slow"}, headers=(("Retry-After", "0"),))] * 3)
    with client(server, retries=2) as rest, pytest.raises(mmws.RateLimitError) as caught:
        rest.accounts()
    error = caught.value
    assert (error.status, error.detail, error.retry_after) == (429, "slow", 0.0)
    assert str(error) == "GET /api/v1/accounts answered HTTP 429 (rate limited) (attempt 3): slow"
    assert len(server.requests) == 3


def test_5xx_is_retried_then_succeeds(server: ScriptedServer) -> None:
    server.add(Reply(500), Reply(502), Reply(503), Reply(504), ok(STATUS))
    with client(server, retries=4) as rest:
        assert rest.trading_status().client == "demo"
        assert rest.waits == [0.001, 0.002, 0.004, 0.008]
    assert len(server.requests) == 5


def test_5xx_exhausted_carries_the_status_and_detail(server: ScriptedServer) -> None:
    server.add(Reply(502, "<html>Bad Gateway</html>"), Reply(503, {"detail": "down"}))
    with client(server, retries=1) as rest, pytest.raises(mmws.RestError) as caught:
        rest.accounts()
    assert type(caught.value) is mmws.RestError
    assert (caught.value.status, caught.value.detail) == (503, "down")
    assert str(caught.value) == "GET /api/v1/accounts failed with HTTP 503 (attempt 2): down"
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_an_authentication_error_not_retried(
    server: ScriptedServer, status: int
) -> None:
    server.add(Reply(status, {"detail": "Invalid or missing API key"}))
    with client(server) as rest, pytest.raises(mmws.AuthenticationError) as caught:
        rest.open_orders()
    assert str(caught.value) == (
        f"GET /api/v1/orders/open refused the API key with HTTP {status}: "
        "Invalid or missing API key"
    )
    assert len(server.requests) == 1


def test_404_and_422_name_status_path_and_detail(server: ScriptedServer) -> None:
    invalid = {"detail": [{"loc": ["query", "fromDate"], "msg": "invalid date", "type": "x"}]}
    server.add(Reply(404, {"detail": "Not Found"}), Reply(422, invalid))
    with client(server) as rest:
        with pytest.raises(mmws.RestError) as caught:
            rest.trading_status()
        assert (caught.value.status, caught.value.detail) == (404, "Not Found")
        assert str(caught.value) == "GET /api/v1/trading/status failed with HTTP 404: Not Found"
        with pytest.raises(mmws.RestError) as caught:
            rest.orders("2026-04-01")
        assert caught.value.status == 422
        assert str(caught.value) == (
            "GET /api/v1/orders failed with HTTP 422: query.fromDate: invalid date"
        )
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed(server: ScriptedServer, status: int) -> None:
    with ScriptedServer(ok([])) as elsewhere:
        target = elsewhere.url + "/api/v1/accounts"
        server.add(Reply(status, headers=(("Location", target),)))
        with client(server) as rest, pytest.raises(mmws.RestError) as caught:
            rest.accounts()
        assert caught.value.status == status
        assert target in str(caught.value)
        assert "not followed" in str(caught.value)
        assert elsewhere.connections == 0 and elsewhere.requests == []
    assert len(server.requests) == 1


# -- hostile and broken answers ------------------------------------------------------------


def test_garbage_json_then_the_connection_still_works(server: ScriptedServer) -> None:
    server.add(ok("{not json"), ok(b"\xff\xfe"), ok([]))
    with client(server) as rest:
        with pytest.raises(mmws.RemoteProtocolError, match="body that is not JSON") as caught:
            rest.accounts()
        assert caught.value.raw == "{not json"
        with pytest.raises(mmws.RemoteProtocolError, match="UnicodeDecodeError"):
            rest.accounts()
        assert rest.accounts() == []
    assert len(server.requests) == 3  # not retried
    assert {r.connection for r in server.requests} == {1}


def test_wrong_shapes_and_undecodable_items(server: ScriptedServer) -> None:
    server.add(
        ok({"rows": []}),
        ok('"text"'),
        ok({"data": [order(1), {"orderId": "x"}], "totalPages": 1}),
        ok([7]),
        ok([]),
    )
    with client(server) as rest:
        with pytest.raises(mmws.RemoteProtocolError, match="no list under 'data' or 'accounts'"):
            rest.accounts()
        with pytest.raises(mmws.RemoteProtocolError, match="trading/status: the answer is a JSON"):
            rest.trading_status()
        with pytest.raises(
            mmws.RemoteProtocolError, match=r"GET /api/v1/orders page 1: item 1 does not decode"
        ):
            rest.orders()
        with pytest.raises(mmws.RemoteProtocolError, match="open: item 0 is a JSON int"):
            rest.open_orders()
        assert rest.open_orders() == []


def test_a_huge_content_length_is_refused_unread(server: ScriptedServer) -> None:
    server.add(Reply(200, b"[]", content_length=10**12), ok([]))
    with client(server) as rest:
        with pytest.raises(mmws.RemoteProtocolError, match="announces a body of 1000000000000"):
            rest.accounts()
        assert rest.accounts() == []  # on a new connection
    assert [r.connection for r in server.requests] == [1, 2]


def test_a_body_larger_than_the_cap_is_refused(server: ScriptedServer) -> None:
    size = MAX_BODY + 1
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    server.add(Reply(raw=head + b"%x\r\n" % size + b"[" * size + b"\r\n0\r\n\r\n"))
    with client(server, retries=0) as rest, pytest.raises(
        mmws.RemoteProtocolError, match="sent a body of more than 67108864 bytes"
    ):
        rest.accounts()


def test_chunked_and_dribbled_answers(server: ScriptedServer) -> None:
    rows = [order(n) for n in range(5)]
    server.add(ok(rows, chunked=True, chunk=3), ok(rows, dribble=True),
               ok(rows, chunked=True, dribble=True))
    with client(server) as rest:
        for _ in range(3):
            assert [o.order_id for o in rest.open_orders()] == list(range(5))
    assert {r.connection for r in server.requests} == {1}


def test_garbage_instead_of_http_is_a_protocol_error(server: ScriptedServer) -> None:
    server.add(Reply(raw=b"SSH-2.0-OpenSSH\r\n\r\n"))
    with client(server) as rest, pytest.raises(mmws.RemoteProtocolError, match="not valid HTTP"):
        rest.accounts()
    assert len(server.requests) == 1


def test_a_truncated_body_is_retried(server: ScriptedServer) -> None:
    full = len(ok([order(1)]).encode())
    server.add(ok([order(1)], cut=full - 5), ok([order(1)]))  # Content-Length not met
    with client(server) as rest:
        assert [o.order_id for o in rest.open_orders()] == [1]
        assert rest.waits == [0.001]
    assert [r.connection for r in server.requests] == [1, 2]


def test_a_truncated_chunked_body_exhausted(server: ScriptedServer) -> None:
    full = len(ok([order(1)], chunked=True).encode())
    server.add(ok([order(1)], chunked=True, cut=full - 8))  # a chunk cut short
    with client(server, retries=0) as rest, pytest.raises(mmws.TransportError) as caught:
        rest.open_orders()
    assert "IncompleteRead" in str(caught.value)
    assert type(caught.value) is mmws.TransportError


def test_a_hang_up_before_the_answer(server: ScriptedServer) -> None:
    server.add(Reply(hangup=True), Reply(hangup=True), ok([]))
    with client(server, retries=1) as rest:
        with pytest.raises(mmws.TransportError, match="the connection failed waiting for the"):
            rest.accounts()  # a new connection that fails is a failure, not a stale one
        assert rest.accounts() == []  # the third answer
    assert len(server.requests) == 3


def test_a_stalled_server_times_out(server: ScriptedServer) -> None:
    server.add(Reply(stall=True), Reply(stall=True))
    with client(server, timeout=0.05, retries=1) as rest, pytest.raises(
        mmws.TransportTimeout, match=r"timed out waiting for the answer \(timeout=0.05 s\)"
    ):
        rest.accounts()
    assert len(server.requests) == 2


def test_connection_refused_is_retried_then_a_connect_error() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with Recording(KEY, f"http://127.0.0.1:{port}", retries=2, backoff_base=0.001) as rest, \
            pytest.raises(mmws.ConnectError, match=r"cannot connect to .* \(attempt 3\)"):
        rest.accounts()
    assert rest.waits == [0.001, 0.002]


# -- connections ---------------------------------------------------------------------------


def test_connection_close_and_a_silent_close_reopen_without_a_retry(
    server: ScriptedServer,
) -> None:
    server.add(ok([]), ok([], close=True), ok([], drop_after=True), ok([]))
    with client(server, retries=0) as rest:
        rest.accounts()
        rest.accounts()  # the server says Connection: close
        rest.accounts()  # the next request opens connection 2, which the server drops quietly
        server.wait_for(lambda s: s.closed_connections == 2)
        rest.accounts()  # the kept-alive connection 2 is dead: reopened, not counted
        assert rest.waits == []
    assert [r.connection for r in server.requests] == [1, 1, 2, 3]


def test_threads_share_one_client_one_request_at_a_time(server: ScriptedServer) -> None:
    server.add(*[ok([{"exchange": "x", "username": str(n)}]) for n in range(40)])
    errors: list[BaseException] = []
    with client(server) as rest:

        def work() -> None:
            try:
                for _ in range(10):
                    assert len(rest.accounts()) == 1
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert errors == []
    assert len(server.requests) == 40
    assert server.connections == 1


def test_close_during_a_long_retry_after_wait_returns_promptly(server: ScriptedServer) -> None:
    server.add(Reply(429, headers=(("Retry-After", "30"),)))
    outcome: list[BaseException] = []
    rest = client(server, max_retry_after=60)

    def work() -> None:
        try:
            rest.accounts()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    server.wait_requests(1)
    started = time.monotonic()
    rest.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5  # not the 30 s the server asked for
    assert len(outcome) == 1 and isinstance(outcome[0], mmws.ClientClosed)
    with pytest.raises(mmws.ClientClosed):
        rest.accounts()
    assert len(server.requests) == 1


def test_close_during_a_stalled_request_wakes_it(server: ScriptedServer) -> None:
    server.add(Reply(stall=True))
    outcome: list[BaseException] = []
    rest = client(server, timeout=60)

    def work() -> None:
        try:
            rest.accounts()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    server.wait_requests(1)
    rest.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], mmws.ClientClosed)


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[ScriptedServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with ScriptedServer(ssl_context=context) as s:
        yield s


def test_tls_refuses_an_unknown_certificate_by_default(tls_server: ScriptedServer) -> None:
    assert tls_server.url.startswith("https://")
    with client(tls_server) as rest, pytest.raises(mmws.CertificateError) as caught:
        rest.accounts()
    assert "certificate verification failed for https://127.0.0.1:" in str(caught.value)
    assert rest.waits == []  # not retried
    assert tls_server.requests == []


def test_tls_with_a_ca_file_or_a_context(tls_server: ScriptedServer, ca: trustme.CA) -> None:
    tls_server.add(ok([]), ok(STATUS))
    with ca.cert_pem.tempfile() as ca_file, client(tls_server, ca_file=ca_file) as rest:
        assert rest.accounts() == []
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with client(tls_server, ssl_context=context) as rest:
        assert rest.trading_status().client == "demo"
    assert tls_server.requests[0].headers["x-api-key"] == KEY


def test_tls_without_verification_works_and_warns(
    tls_server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mmws.rest")
    tls_server.add(ok([]))
    with client(tls_server, verify_tls=False) as rest:
        assert rest.accounts() == []
    assert any("DISABLED" in r.getMessage() for r in caplog.records)


# -- the key stays secret ------------------------------------------------------------------


def _everything_said(error: BaseException, *, local_values: bool = True) -> str:
    """The exception's text, repr, chain and traceback (with every frame's locals)."""
    rendered = "".join(
        traceback.TracebackException.from_exception(error, capture_locals=local_values).format()
    )
    return f"{error} {error!r} {rendered}"


def _errors_of(*calls: Any) -> list[BaseException]:
    # a frame without the key in its locals: the tracebacks start here
    errors: list[BaseException] = []
    for call in calls:
        try:
            call()
        except mmws.MmwsError as exc:
            errors.append(exc)
    return errors


def test_the_key_is_in_no_error_text_traceback_local_or_log_line(
    server: ScriptedServer, tls_server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server.add(
        ok([]), ok([], drop_after=True),  # a stale kept-alive connection next
        Reply(429), Reply(429),  # exhausted
        Reply(500, close=True), Reply(hangup=True),  # a 5xx, then a new connection fails
        Reply(401, {"detail": "Invalid or missing API key"}),
        Reply(302, headers=(("Location", "http://127.0.0.1:1/"),)),
        ok("[1, 2"),
        ok({"data": [{"orderId": "x"}]}),
        ok(STATUS, cut=len(ok(STATUS).encode()) - 1),  # retried, then a header line too long:
        Reply(raw=b"HTTP/1.1 200 OK\r\n" + b"\x00" * 70000),
        Reply(stall=True), Reply(stall=True),
    )
    with client(server, retries=1, timeout=0.2) as rest, client(tls_server) as tls, \
            Recording(KEY, f"http://127.0.0.1:{port}", retries=0) as refused:
        rest.accounts()
        rest.accounts()
        server.wait_for(lambda s: s.closed_connections == 1)
        errors = _errors_of(
            rest.accounts, rest.accounts, rest.accounts, rest.accounts, rest.accounts,
            rest.orders, rest.trading_status, rest.accounts, tls.accounts, refused.accounts,
        )
        assert KEY not in repr(rest)
    assert [type(e).__name__ for e in errors] == [
        "RateLimitError", "TransportError", "AuthenticationError", "RestError",
        "RemoteProtocolError", "RemoteProtocolError", "RemoteProtocolError",
        "TransportTimeout", "CertificateError", "ConnectError",
    ]
    for error in errors:
        said = _everything_said(error)
        assert KEY not in said, said
    assert caplog.records
    assert all(KEY not in r.getMessage() for r in caplog.records)
    assert all(r.headers["x-api-key"] == KEY for r in server.requests)


def test_a_send_that_fails_leaves_no_key_in_the_traceback(server: ScriptedServer) -> None:
    """http.client's frames that were sending hold the request, key included, in their
    locals: the chained cause must not carry them."""
    with client(server, retries=0) as rest:
        # the server gives up on a request head over 64 KiB and resets the connection
        errors = _errors_of(lambda: rest.open_orders(fixture_id="x" * 20_000_000))
    assert [type(e).__name__ for e in errors] == ["TransportError"]
    assert "the connection failed sending the request" in str(errors[0])
    assert errors[0].__cause__ is not None  # chained, without its frames
    said = _everything_said(errors[0])
    assert KEY not in said, said[:2000]


def test_a_key_the_server_echoes_is_scrubbed_from_errors_and_logs(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"detail": f"Invalid API key {KEY}"}
    server.add(
        Reply(503, echo),
        Reply(401, echo),
        Reply(302, headers=(("Location", f"http://127.0.0.1:1/?apiKey={KEY}"),)),
        Reply(404, f"no such key {KEY}"),
        ok(f'{{"oops": "{KEY}'),
        ok({"data": [{"orderId": KEY}]}),
    )
    with client(server, retries=0) as rest:
        errors = _errors_of(
            rest.accounts, rest.accounts, rest.accounts, rest.accounts, rest.accounts,
            rest.open_orders,
        )
    assert [type(e).__name__ for e in errors] == [
        "RestError", "AuthenticationError", "RestError", "RestError", "RemoteProtocolError",
        "RemoteProtocolError",
    ]
    for error in errors:
        said = _everything_said(error, local_values=False)
        assert KEY not in said, said
        assert KEY not in getattr(error, "detail", "")
        assert KEY not in getattr(error, "raw", "")
        assert "***" in said + getattr(error, "raw", "")
    assert all(KEY not in r.getMessage() for r in caplog.records)


# -- against the simulator's REST API ------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(rate=0, seed=7) as s:
        s.step(300)
        yield s


def test_the_simulator_answers_what_its_truth_holds(sim: Simulator) -> None:
    truth = sim.truth()
    with Recording(sim.api_key, sim.rest_url, page_size=7, backoff_base=0.001) as rest:
        orders = rest.orders()
        assert {o.order_id: o for o in orders} == dict(truth.orders)
        assert len(orders) == len(truth.orders) > 7
        assert {o.order_id: o for o in rest.open_orders()} == dict(truth.open_orders)
        assert {b.bet_id: b for b in rest.bets()} == dict(truth.bets)
        accounts = {(a.exchange, a.username): a for a in rest.accounts()}
        assert accounts == dict(truth.accounts)
        emergency = truth.emergency is not None and truth.emergency.emergency is True
        assert rest.trading_status().emergency_active is emergency
    pages = [r for r in sim.rest_requests if r.path == "/api/v1/orders"]
    assert len(pages) == -(-len(truth.orders) // 7)
    assert [r.query["page"] for r in pages] == [str(n) for n in range(1, len(pages) + 1)]


def test_the_simulator_filters_by_day_and_status(sim: Simulator) -> None:
    truth = sim.truth()
    day = min(o.created_at for o in truth.orders.values() if o.created_at).date()
    filled = [o for o in truth.orders.values() if o.order_status is mmws.OrderStatus.FILLED]
    on_day = [o for o in truth.orders.values() if o.created_at and o.created_at.date() == day]
    assert filled and on_day
    with Recording(sim.api_key, sim.rest_url, backoff_base=0.001) as rest:
        assert rest.orders(status="FILLED") == sorted(filled, key=lambda o: o.order_id)
        assert {o.order_id for o in rest.orders(day, day)} == {o.order_id for o in on_day}


def test_the_simulator_refuses_a_key_and_its_errors_are_retried(sim: Simulator) -> None:
    with Recording("44444444-4444-4444-8444-444444444444", sim.rest_url) as stranger, \
            pytest.raises(mmws.AuthenticationError, match="HTTP 401: Invalid or missing API key"):
        stranger.accounts()
    sim.rest_errors(503, 2)
    with Recording(sim.api_key, sim.rest_url, backoff_base=0.001) as rest:
        assert rest.accounts()
        assert rest.waits == [0.001, 0.002]
    assert [r.status for r in sim.rest_requests][-3:] == [503, 503, 200]
