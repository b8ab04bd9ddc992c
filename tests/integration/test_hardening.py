"""Issue 9: no hostile server, network or input can kill the client, stretch a deadline or
reveal a secret. Each test names the item it proves; the servers are raw sockets on
127.0.0.1 (``hostile.py``) or the simulator, never mocks.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
import websocket
from clientutil import KEY, collect_until, of_type, wait_until
from hostile import HostileServer, RawConn, hold, subscribed_reply

import mmws
from mmws._delivery import PRIORITY_HEADROOM
from mmws.sim import Simulator

FAST: dict[str, Any] = dict(
    ping_interval=5.0, pong_timeout=2.0, heartbeat_timeout=None, connect_timeout=3.0,
    backoff_base=0.01, backoff_cap=0.05,
)
TOKEN = "tok3n5ecret0000000000000000000000"


def mm_session(conn: RawConn, reply: str | None = None) -> Any:
    """Upgrade, read the subscribe frame, confirm it; return the subscribe frame."""
    conn.accept()
    sub = conn.recv_json()
    conn.send_text(reply if reply is not None else subscribed_reply())
    return sub


def first_good_then(then: Callable[[RawConn], object]) -> Callable[[RawConn], None]:
    """A script: the first connection subscribes and is then cut; every later one gets
    ``then`` (what the reconnect attempts meet)."""
    calls = [0]

    def script(conn: RawConn) -> None:
        calls[0] += 1
        if calls[0] == 1:
            mm_session(conn)
            conn.sock.close()
            return
        then(conn)

    return script


def order(order_id: int, **payload: Any) -> str:
    return json.dumps({"type": "broadcast", "channel": "orders", "event": "UPDATE",
                       "payload": {"orderId": order_id, **payload}})


def render(exc: BaseException, skip_caller: bool = False) -> str:
    """What an error tracker records: the traceback with every frame's locals, causes and
    contexts included (``skip_caller``: without the test's own frame, whose locals hold
    what the test compares against)."""
    tb = exc.__traceback__
    if skip_caller and tb is not None:
        tb = tb.tb_next
    return "".join(
        traceback.TracebackException(type(exc), exc, tb, capture_locals=True).format()
    )


# -- 1. redirects ---------------------------------------------------------------------------


def test_1_a_redirect_is_not_followed_and_the_key_goes_nowhere() -> None:
    received: list[bytes] = []

    def elsewhere(conn: RawConn) -> None:  # the redirect's target: must never be reached
        received.append(conn.sock.recv(65536))

    with HostileServer(elsewhere) as target:
        location = f"ws://127.0.0.1:{target.port}/steal?token={TOKEN}"

        def redirect(conn: RawConn) -> None:
            conn.read_request()
            conn.send_raw(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n"
                          "Content-Length: 0\r\n\r\n".encode())
            conn.sock.settimeout(1.0)
            try:  # anything the client sends after the 302 (a subscribe with the key?)
                received.append(conn.sock.recv(65536))
            except OSError:
                pass

        with HostileServer(redirect) as server:
            client = mmws.MMClient(KEY, url=server.url, **FAST)
            with pytest.raises(mmws.ConnectError) as info:
                client.connect()
            client.close()
    error = info.value
    assert error.status == 302
    assert "302" in str(error)
    assert f"127.0.0.1:{target.port}/steal" in str(error)  # names the target ...
    assert TOKEN not in str(error) and "token=***" in str(error)  # ... redacted
    assert target.connections == 0
    assert all(KEY.encode() not in data for data in received)


def test_1_a_redirect_at_reconnect_is_not_followed_and_urls_name_the_real_server() -> None:
    def elsewhere(conn: RawConn) -> None:
        hold(conn)

    with HostileServer(elsewhere) as target:
        def redirect(conn: RawConn) -> None:
            conn.read_request()
            conn.send_raw(f"HTTP/1.1 301 Moved\r\nLocation: ws://127.0.0.1:{target.port}/\r\n"
                          "\r\n".encode())

        with HostileServer(first_good_then(redirect)) as server, \
                mmws.MMClient(KEY, url=server.url, **FAST) as client:
            connected = collect_until(client, of_type(mmws.Connected))[-1]
            assert connected.url == server.url
            collect_until(client, lambda e: isinstance(e, mmws.Reconnecting) and e.attempt >= 3)
            health = client.health()
            assert health.url == server.url
            assert "301" in (health.last_error or "")
            assert target.connections == 0


# -- 2. any frame is survivable --------------------------------------------------------------


# Deep enough that json.loads (in C) still accepts it on the reader thread's short stack,
# and that anything recursing per level in Python (a freezer, a repr) would not.
DEEP = "[" * 950 + "]" * 950


def test_2_a_crafted_frame_is_malformed_and_the_stream_goes_on() -> None:
    def script(conn: RawConn) -> None:
        mm_session(conn)
        conn.send_text(order(1).replace('"orderId": 1', f'"orderId": 1, "newField": {DEEP}'))
        conn.send_text('{"type": "surprise", "data": ' + DEEP + "}")
        conn.send_text('{"type": "pong", "ts": 1' + "0" * 400 + "}")
        conn.send_text(order(2, matchedStake=1e308 * 10))  # json.dumps writes Infinity
        conn.send_text(order(3))
        hold(conn)

    with HostileServer(script) as server, mmws.MMClient(KEY, url=server.url, **FAST) as client:
        events = collect_until(client, lambda e: isinstance(e, mmws.OrderEvent)
                               and e.payload.order_id == 3)
    malformed = [e for e in events if isinstance(e, mmws.MalformedFrame)]
    assert len(malformed) == 2
    assert all(isinstance(e.error, mmws.RemoteProtocolError) for e in malformed)
    orders = [e.payload.order_id for e in events if isinstance(e, mmws.OrderEvent)]
    assert orders == [2, 3]
    assert not any(isinstance(e, mmws.Closed) for e in events)


def test_2_a_hostile_reply_during_the_handshake_is_an_mmws_error() -> None:
    def script(conn: RawConn) -> None:
        conn.accept()
        conn.recv_json()
        conn.send_text('{"type": "subscribed", "channels": ' + DEEP + "}")
        conn.send_text('{"type": "error", "message": ' + DEEP + "}")
        conn.sock.close()

    with HostileServer(script) as server:
        client = mmws.MMClient(KEY, url=server.url, **FAST)
        with pytest.raises(mmws.MmwsError):
            client.connect()
        client.close()


def test_2_a_feed_pong_with_an_absurd_server_time_does_not_kill_the_reader() -> None:
    def script(conn: RawConn) -> None:
        conn.accept()
        command = conn.recv_json()
        conn.send_text({"type": "subscribed", "channel": command["channel"],
                        "scope": command["scope"], "topicKey": "MAIN:all"})
        while True:
            message = conn.recv_json(timeout=10)
            if message.get("action") == "ping":
                conn.send_text('{"type": "pong", "ts": 1' + "0" * 400 + "}")

    with HostileServer(script) as server, mmws.FeedClient(
        url=server.url + f"?token={TOKEN}", subscriptions=[("MAIN", "all")], **FAST
    ) as feed:
        assert feed.ping(timeout=3) >= 0
        assert feed.ping(timeout=3) >= 0  # the reader survived the first one
        assert feed.health().state == "connected"


# -- 3. deadlines are deadlines --------------------------------------------------------------


def dribble(conn: RawConn, data: bytes, every: float = 0.25) -> None:
    for i in range(len(data)):
        if conn.server.stop.wait(every):
            return
        conn.send_raw(data[i : i + 1])


def test_3_a_dribbled_upgrade_cannot_stretch_connect_timeout() -> None:
    def script(conn: RawConn) -> None:
        head = conn.read_request()
        dribble(conn, conn.upgrade_response(head))

    with HostileServer(script) as server:
        client = mmws.MMClient(KEY, url=server.url, **{**FAST, "connect_timeout": 1.0})
        start = time.monotonic()
        with pytest.raises(mmws.ConnectError) as info:
            client.connect()
        took = time.monotonic() - start
        client.close()
    assert isinstance(info.value, mmws.TransportTimeout)
    assert "connect_timeout=1" in str(info.value)
    assert took < 3.0  # the dribble alone would take over 30 s


def test_3_a_dribbled_confirmation_cannot_stretch_connect_timeout() -> None:
    def script(conn: RawConn) -> None:
        conn.accept()
        conn.recv_json()
        dribble(conn, b"\x81" + bytes([len(subscribed_reply())]) + subscribed_reply().encode())

    with HostileServer(script) as server:
        client = mmws.MMClient(KEY, url=server.url, **{**FAST, "connect_timeout": 1.0})
        start = time.monotonic()
        with pytest.raises(mmws.ConnectError, match="connect_timeout"):
            client.connect()
        took = time.monotonic() - start
        client.close()
    assert took < 3.0


def test_3_a_dribbling_server_cannot_stretch_a_reconnect_attempt() -> None:
    def slow(conn: RawConn) -> None:
        head = conn.read_request()
        dribble(conn, conn.upgrade_response(head))

    with HostileServer(first_good_then(slow)) as server, mmws.MMClient(
        KEY, url=server.url, **{**FAST, "connect_timeout": 0.8}
    ) as client:
        first = collect_until(client, of_type(mmws.Reconnecting))[-1]
        start = time.monotonic()
        second = collect_until(client, lambda e: isinstance(e, mmws.Reconnecting)
                               and e.attempt == first.attempt + 1, timeout=10)[-1]
        took = time.monotonic() - start
        assert second.attempt == first.attempt + 1
        assert "connect_timeout" in (client.health().last_error or "")
    assert took < first.delay + 0.8 + 2.0


# -- 4. keepalive is never blocked by a send ---------------------------------------------------


def test_4_a_server_that_stops_reading_while_flooding_pings_is_declared_dead() -> None:
    def script(conn: RawConn) -> None:
        mm_session(conn)
        # stop reading; flood pings so the client's pongs fill our tiny receive window
        conn.sock.settimeout(0.5)
        ping = b"\x89\x7d" + b"p" * 125
        while not conn.server.stop.is_set():
            try:
                conn.sock.sendall(ping * 64)
            except TimeoutError:
                continue
            except OSError:
                return

    with HostileServer(script, rcvbuf=4096) as server, mmws.MMClient(
        KEY, url=server.url, ping_interval=0.2, pong_timeout=0.3, heartbeat_timeout=None,
        io_timeout=30.0, backoff_base=0.5, backoff_cap=1.0, connect_timeout=3.0,
    ) as client:
        collect_until(client, of_type(mmws.Subscribed))
        start = time.monotonic()
        events = collect_until(client, of_type(mmws.Stale, mmws.Disconnected), timeout=8)
        took = time.monotonic() - start
    assert isinstance(events[-1], mmws.Stale), events
    assert isinstance(events[-1].error, mmws.HeartbeatTimeout)
    assert took < 5.0  # ping_interval + pong_timeout + slack, far below io_timeout=30


# -- 5. the queue bound holds for server frames ------------------------------------------------


@pytest.mark.parametrize("frame", [
    subscribed_reply(),
    json.dumps({"type": "broadcast", "channel": "emergency", "event": "UPDATE",
                "payload": {"emergencyActive": True}}),
    json.dumps({"type": "surprise"}),
], ids=["subscribed", "emergency", "unknown"])
def test_5_a_flood_of_server_frames_cannot_grow_the_queue_past_maxsize(frame: str) -> None:
    maxsize = 20

    def script(conn: RawConn) -> None:
        mm_session(conn)
        conn.sock.settimeout(0.5)
        for _ in range(3000):
            try:
                conn.send_text(frame)
            except OSError:
                return
        hold(conn)

    with HostileServer(script) as server, mmws.MMClient(
        KEY, url=server.url, maxsize=maxsize, **FAST
    ) as client:
        wait_until(lambda: client.queue.producer_blocked or client.queue.qsize() > 100,
                   timeout=5, what="the reader to wait for room")
        assert client.queue.qsize() <= maxsize + PRIORITY_HEADROOM + 2
        # nothing was lost: the consumer gets every frame once it reads
        count = 0
        while count < 3000:
            event = client.get(timeout=5)
            if type(event).__name__ in ("Subscribed", "EmergencyEvent", "UnknownMessage"):
                count += 1
        assert client.queue.qsize() <= maxsize + PRIORITY_HEADROOM + 2


def test_5_a_flood_of_feed_confirmations_cannot_grow_the_queue() -> None:
    maxsize = 20

    def script(conn: RawConn) -> None:
        conn.accept()
        conn.recv_json()
        conn.sock.settimeout(0.5)
        for i in range(3000):
            kind = "subscribed" if i % 2 == 0 else "unsubscribed"
            try:
                conn.send_text({"type": kind, "channel": "MAIN", "scope": "all",
                                "topicKey": "MAIN:all"})
            except OSError:
                return
        hold(conn)

    with HostileServer(script) as server, mmws.FeedClient(
        url=server.url + f"?token={TOKEN}", maxsize=maxsize, **FAST
    ) as feed:
        wait_until(lambda: feed.queue.producer_blocked or feed.queue.qsize() > 100,
                   timeout=5, what="the reader to wait for room")
        assert feed.queue.qsize() <= maxsize + 2


# -- 6. certificate failures are fatal ------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *hosts: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts).configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_6_a_hostname_mismatch_at_connect_is_a_certificate_error(ca: trustme.CA) -> None:
    with HostileServer(mm_session, ssl_context=server_context(ca, "example.test")) as server:
        client = mmws.MMClient(KEY, url=server.url, ssl_context=client_context(ca), **FAST)
        with pytest.raises(mmws.CertificateError, match="certificate verification failed"):
            client.connect()
        client.close()


def test_6_a_man_in_the_middle_at_reconnect_ends_the_stream(ca: trustme.CA) -> None:
    good = server_context(ca, "127.0.0.1")
    mitm = server_context(trustme.CA(), "127.0.0.1")  # a certificate from an untrusted CA

    def script(conn: RawConn) -> None:
        mm_session(conn)
        conn.server.ssl_context = mitm  # every later connection meets the impostor
        conn.sock.close()

    with HostileServer(script, ssl_context=good) as server, mmws.MMClient(
        KEY, url=server.url, ssl_context=client_context(ca), **FAST
    ) as client:
        events = collect_until(client, of_type(mmws.Closed), timeout=8)
    closed = events[-1]
    assert isinstance(closed.error, mmws.CertificateError)
    assert "certificate" in str(closed.error)
    assert server.connections == 2  # one good connection, one refused attempt, no retries


# -- 7. Retry-After is honoured --------------------------------------------------------------


def busy(retry_after: str) -> Any:
    def refuse(conn: RawConn) -> None:
        conn.read_request()
        conn.send_raw(f"HTTP/1.1 429 Too Many Requests\r\nRetry-After: {retry_after}\r\n"
                      "Content-Length: 0\r\n\r\n".encode())

    return first_good_then(refuse)


@pytest.mark.parametrize(("header", "at_least", "at_most"), [
    ("2", 2.0, 2.1),
    ("100000", 600.0, 600.0),  # capped at 10 minutes
])
def test_7_retry_after_sets_the_next_delay(header: str, at_least: float, at_most: float) -> None:
    with HostileServer(busy(header)) as server, \
            mmws.MMClient(KEY, url=server.url, **FAST) as client:
        events = collect_until(client, lambda e: isinstance(e, mmws.Reconnecting)
                               and e.attempt == 2)
        first = next(e for e in events if isinstance(e, mmws.Reconnecting))
        assert first.delay < 1.0  # our own backoff before the 429
        assert at_least <= events[-1].delay <= at_most
        start = time.monotonic()
    assert time.monotonic() - start < 3.0  # close() does not wait out the delay


def test_7_retry_after_as_an_http_date_and_on_connect() -> None:
    from email.utils import formatdate

    def script(conn: RawConn) -> None:
        conn.read_request()
        when = formatdate(time.time() + 30, usegmt=True)
        conn.send_raw(f"HTTP/1.1 503 Busy\r\nRetry-After: {when}\r\n"
                      "Content-Length: 0\r\n\r\n".encode())

    with HostileServer(script) as server:
        client = mmws.MMClient(KEY, url=server.url, **FAST)
        with pytest.raises(mmws.ConnectError) as info:
            client.connect()
        client.close()
    assert info.value.status == 503
    assert info.value.retry_after is not None and 25 <= info.value.retry_after <= 31


# -- 8. partial subscriptions are visible ----------------------------------------------------


def test_8_a_partial_subscription_is_warned_and_visible(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mmws")

    def script(conn: RawConn) -> None:
        mm_session(conn, subscribed_reply(["orders", "bets"]))
        hold(conn)

    with HostileServer(script) as server, mmws.MMClient(KEY, url=server.url, **FAST) as client:
        subscribed = collect_until(client, of_type(mmws.Subscribed))[-1]
        assert subscribed.channels == ("orders", "bets")
        assert subscribed.missing == ("accounts", "scores", "emergency")
        assert client.health().subscriptions == ("orders", "bets")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("missing: accounts, scores, emergency" in w for w in warnings), warnings


def test_8_a_full_subscription_has_nothing_missing() -> None:
    with Simulator(api_keys={KEY: "a"}, rate=0) as sim, \
            mmws.MMClient(KEY, url=sim.mm_url, channels=["orders", "scores"], **FAST) as client:
        subscribed = collect_until(client, of_type(mmws.Subscribed))[-1]
        assert subscribed.missing == ()
        assert set(client.health().subscriptions) == {"orders", "scores"}


# -- 9. secrets, everywhere -----------------------------------------------------------------


def test_9_a_server_that_echoes_the_key_has_it_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mmws")

    def script(conn: RawConn) -> None:
        sub = conn.accept() and conn.recv_json()
        conn.send_text({"type": "error", "message": f"invalid api key {sub['apiKey']}"})

    with HostileServer(script) as server:
        client = mmws.MMClient(KEY, url=server.url, **FAST)
        with pytest.raises(mmws.AuthenticationError) as info:
            client.connect()
        health = client.health()
        client.close()
    assert "invalid api key ***" in str(info.value)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert KEY not in render(info.value)
    assert KEY not in (health.last_error or "")
    assert KEY not in caplog.text


def test_9_echoes_mid_stream_in_events_and_close_reasons_are_scrubbed() -> None:
    def script(conn: RawConn) -> None:
        sub = mm_session(conn)
        conn.send_text({"type": "error", "message": f"key {sub['apiKey']} is noisy"})
        conn.send_text({"type": "whatever", "echo": sub["apiKey"]})
        reason = f"bye {sub['apiKey']}".encode()
        conn.send_frame(0x8, b"\x03\xf3" + reason)  # close 1011 with the key in the reason
        hold(conn)

    with HostileServer(script) as server, mmws.MMClient(KEY, url=server.url, **FAST) as client:
        events = collect_until(client, of_type(mmws.Disconnected))
        health = client.health()
    text = repr(events) + str(events[-1].reason) + (health.last_error or "")
    assert KEY not in text
    assert "***" in text


def test_9_a_feed_server_that_echoes_the_token_has_it_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mmws")

    def script(conn: RawConn) -> None:
        head = conn.accept()
        token = head.split("token=", 1)[1].split()[0]
        conn.recv_json()
        conn.send_text({"type": "error", "code": "FORBIDDEN",
                        "message": f"token {token} has no access"})
        hold(conn)

    with HostileServer(script) as server:
        feed = mmws.FeedClient(url=f"{server.url}?token={TOKEN}", **FAST)
        with pytest.raises(mmws.SubscriptionError) as info:
            feed.connect()
        feed.close()
    assert "token *** has no access" in str(info.value)
    assert TOKEN not in render(info.value, skip_caller=True)
    assert TOKEN not in caplog.text


def failure(make: Any) -> str:
    """Make a client and connect it; return the rendered traceback of what it raised."""
    client = None
    try:
        client = make()
        client.connect()
    except mmws.MmwsError as exc:
        return render(exc)
    finally:
        if client is not None:
            client.close()
    raise AssertionError("no error was raised")


def test_9_tracebacks_with_captured_locals_show_no_key_or_token() -> None:
    def echo(conn: RawConn) -> None:
        sub = conn.accept() and conn.recv_json()
        conn.send_text({"type": "error", "message": f"invalid api key {sub['apiKey']}"})

    def refuse(conn: RawConn) -> None:
        conn.read_request()
        conn.send_raw(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    def closes(conn: RawConn) -> None:
        conn.accept()
        conn.sock.close()

    with HostileServer(echo) as s1, HostileServer(refuse) as s2, HostileServer(closes) as s3:
        texts = [failure(make) for make in (
            lambda: mmws.MMClient(KEY, url=s1.url, **FAST),
            lambda: mmws.MMClient(KEY, url=s2.url, **FAST),
            lambda: mmws.MMClient(KEY, url=s3.url, **FAST),
            lambda: mmws.MMClient(KEY, url="ws://127.0.0.1:9/ws", **FAST),
            lambda: mmws.FeedClient(url=f"{s2.url}?token={TOKEN}", **FAST),
            lambda: mmws.FeedClient(url=f"{s3.url}?token={TOKEN}", **FAST),
            lambda: mmws.FeedClient(url=f"ws://127.0.0.1:9/ws?token={TOKEN}", **FAST),
            lambda: mmws.MMClient(f" {KEY}", url=s1.url, **FAST),
            lambda: mmws.MMClient(KEY, maxsize=0),
            lambda: mmws.FeedClient(url=f"http://x/?token={TOKEN}"),
            lambda: mmws.FeedClient(url=f"ws://x/?token={TOKEN}", token_provider=str),
        )]
    for text in texts:
        assert "Traceback" in text and "self = <" in text  # locals were captured
        assert KEY not in text, text
        assert TOKEN not in text, text


def test_9_websocket_client_trace_is_redacted() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    level = logging.getLogger("websocket").level
    websocket.enableTrace(True, handler=handler)
    try:
        with Simulator(api_keys={KEY: "a"}, rate=0) as sim:
            with mmws.MMClient(KEY, url=sim.mm_url, **FAST) as client:
                collect_until(client, of_type(mmws.Subscribed))
            with mmws.FeedClient(url=sim.feed_url, **FAST) as feed:
                collect_until(feed, of_type(mmws.FeedSubscribed))
            token = sim.feed_token
    finally:
        websocket.enableTrace(False)
        logging.getLogger("websocket").removeHandler(handler)
        logging.getLogger("websocket").setLevel(level)
    text = out.getvalue()
    assert "subscribe" in text and "GET /" in text  # the trace did print the handshake
    assert KEY not in text
    assert token not in text
    assert "***" in text


# -- 10. logging etiquette ------------------------------------------------------------------


def test_10_an_unconfigured_application_sees_nothing_on_stderr() -> None:
    code = textwrap.dedent(f"""
        import mmws
        from mmws.sim import Simulator
        sim = Simulator(api_keys={{{KEY!r}: "a"}}, rate=0)
        client = mmws.MMClient({KEY!r}, url=sim.mm_url, backoff_base=0.01, backoff_cap=0.02)
        client.connect()
        sim.reject_handshakes(503)
        sim.drop_connections()
        seen = 0
        while seen < 3:
            if isinstance(client.get(timeout=10), mmws.Reconnecting):
                seen += 1
        print("reconnecting", seen)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "reconnecting 3"
    assert out.stderr == ""


def test_10_the_null_handler_is_on_the_mmws_logger() -> None:
    handlers = logging.getLogger("mmws").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


# -- helpers are honest --------------------------------------------------------------------


def test_the_hostile_server_really_serves_a_websocket() -> None:
    """The raw server speaks enough RFC 6455 for a plain websocket-client to talk to it."""
    got: queue.Queue[Any] = queue.Queue()

    def script(conn: RawConn) -> None:
        conn.accept()
        got.put(conn.recv_json())
        conn.send_text({"ok": True})
        hold(conn)

    with HostileServer(script) as server:
        ws = websocket.create_connection(server.url, timeout=5)
        ws.send(json.dumps({"hello": 1}))
        assert json.loads(ws.recv()) == {"ok": True}
        ws.close()
    assert got.get(timeout=5) == {"hello": 1}


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    before = {t for t in threading.enumerate() if t.name.startswith("mmws-")}
    yield
    wait_until(lambda: not ({t for t in threading.enumerate()
                             if t.name.startswith("mmws-")} - before),
               timeout=5, what="every mmws thread to end")


# -- the transport's own dialing: proxy refusals and bad URLs ----------------------------------


def test_a_proxy_that_refuses_connect_is_a_connect_error_without_the_password() -> None:
    def proxy(conn: RawConn) -> None:
        conn.read_request()
        conn.send_raw(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")

    with HostileServer(proxy) as server:
        client = mmws.MMClient(KEY, url="ws://127.0.0.1:9/ws", proxy_host="127.0.0.1",
                               proxy_port=server.port, proxy_auth=("trader", "pa55word"),
                               **FAST)
        with pytest.raises(mmws.ConnectError, match="proxy refused CONNECT") as info:
            client.connect()
        client.close()
    assert info.value.status == 407
    (head,) = server.requests
    assert head.startswith("CONNECT 127.0.0.1:9 HTTP/1.1")
    assert "Proxy-Authorization: Basic dHJhZGVyOnBhNTV3b3Jk" in head  # trader:pa55word
    assert "pa55word" not in render(info.value, skip_caller=True)
    assert "pa55word" not in repr(client)


def test_a_proxy_that_closes_or_babbles_during_connect_is_a_connect_error() -> None:
    def closes(conn: RawConn) -> None:
        conn.read_request()
        conn.sock.close()

    def babbles(conn: RawConn) -> None:
        conn.read_request()
        conn.send_raw(b"HTTP/1.1 200 OK\r\nX: " + b"y" * 20000)
        hold(conn)

    for script, words in ((closes, "closed the connection"), (babbles, "too long")):
        with HostileServer(script) as server:
            client = mmws.MMClient(KEY, url="ws://127.0.0.1:9/ws", proxy_host="127.0.0.1",
                                   proxy_port=server.port, **FAST)
            with pytest.raises(mmws.ConnectError, match=words):
                client.connect()
            client.close()


@pytest.mark.parametrize("url", ["ws://127.0.0.1:99999/ws", "ws:///no-host"])
def test_a_url_the_transport_cannot_dial_is_a_config_error(url: str) -> None:
    client = mmws.MMClient(KEY, url=url, **FAST)
    with pytest.raises(mmws.ConfigError):
        client.connect()
    client.close()


def test_9_a_token_provider_failure_shows_no_api_token_in_its_traceback() -> None:
    api_token = "wr0ng-api-t0ken-0000000000000000"
    with Simulator(rate=0) as sim:
        provider = mmws.RestTokenProvider(api_token, base_url=sim.rest_url)
        with pytest.raises(mmws.AuthenticationError) as info:
            provider()
        with pytest.raises(mmws.MmwsError) as through_client:
            mmws.FeedClient(token_provider=provider, **FAST).connect()
        down = mmws.RestTokenProvider(api_token, base_url="http://127.0.0.1:9")
        with pytest.raises(mmws.ConnectError) as unreachable:
            down()
    for error in (info.value, through_client.value, unreachable.value):
        text = render(error, skip_caller=True)
        assert "Traceback" in text
        assert api_token not in text, text
