"""Pure pieces of the hardening (issue 9): the queue's bounds, Retry-After, the redacting
types, the trace filter and the connection deadline. No sockets to servers, no sleeping."""

from __future__ import annotations

import logging
import pickle
import socket
import threading
import traceback
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmws._delivery import PRIORITY_HEADROOM, EventQueue, Lane
from mmws._secret import SecretSet, SecretText, SecretURL, reveal
from mmws._transport import MAX_RETRY_AFTER, Deadline, retry_after
from mmws.lifecycle import Connected, Reconnecting
from mmws.mm.events import EmergencyEvent
from mmws.mm.models import Emergency
from mmws.mm.protocol import MMProtocol

KEY = "6f1c1c4e-2f62-4a3e-9d7a-0b3f2a1e9c11"


# -- the queue bound -------------------------------------------------------------------------


def emergency() -> EmergencyEvent:
    return EmergencyEvent("UPDATE", Emergency(emergency=True))


def test_the_priority_lane_is_bounded_with_headroom() -> None:
    q = EventQueue(5, {EmergencyEvent: Lane.PRIORITY})
    assert q.put_many([emergency() for _ in range(5 + PRIORITY_HEADROOM)])
    assert q.qsize() == 5 + PRIORITY_HEADROOM
    # the next one waits for room; a producer told to give up reports it was not queued
    done = threading.Event()
    result: list[bool] = []

    def produce() -> None:
        result.append(q.put(emergency()))
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    pause = threading.Event()
    for _ in range(1000):  # until the producer waits for room (5 s at most)
        if q.producer_blocked:
            break
        pause.wait(0.005)
    assert q.producer_blocked and not done.is_set()
    assert q.qsize() == 5 + PRIORITY_HEADROOM
    q.get_nowait()  # room again: the waiting emergency goes in
    assert done.wait(5)
    thread.join(5)
    assert result == [True]
    assert q.qsize() == 5 + PRIORITY_HEADROOM


def test_reconnecting_is_coalesced_only_past_the_bound() -> None:
    q = EventQueue(3, {Connected: Lane.CONTROL})
    for attempt in range(1, 4):
        q.put_control(Reconnecting(attempt, 0.1))
    assert q.qsize() == 3  # below or at the bound every event is kept
    q.put_control(Reconnecting(4, 0.1))
    assert q.qsize() == 4  # this one brought it over the bound
    for attempt in range(5, 1000):
        q.put_control(Reconnecting(attempt, 0.1))
    assert q.qsize() == 4  # ... and past it each replaces the one at the tail
    events = [q.get_nowait() for _ in range(4)]
    assert [e.attempt for e in events] == [1, 2, 3, 999]


def test_other_control_events_are_never_replaced() -> None:
    q = EventQueue(1, {Connected: Lane.CONTROL})
    for attempt in range(3):
        q.put_control(Connected("ws://x", attempt))
    assert q.qsize() == 3


# -- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("0", 0.0), ("7", 7.0), (" 12 ", 12.0), ("600", 600.0), ("601", MAX_RETRY_AFTER),
    ("9" * 40, MAX_RETRY_AFTER), ("", None), ("soon", None), ("-5", None), ("1.5", None),
    (None, None),
])
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    assert retry_after(formatdate(now + 90, usegmt=True), now=now) == pytest.approx(90)
    assert retry_after(formatdate(now - 90, usegmt=True), now=now) == 0.0  # in the past
    assert retry_after(formatdate(now + 10**6, usegmt=True), now=now) == MAX_RETRY_AFTER
    assert retry_after("Wed, 99 Foo 2026 99:99:99 GMT", now=now) is None


@given(st.text(max_size=60))
def test_retry_after_never_raises_and_stays_in_range(value: str) -> None:
    result = retry_after(value)
    assert result is None or 0.0 <= result <= MAX_RETRY_AFTER


# -- redacting types ------------------------------------------------------------------------


def test_secret_text_is_a_str_that_never_shows_itself() -> None:
    proto = MMProtocol()
    proto.subscribe(KEY, ["orders"])
    (text,) = proto.data_to_send()
    assert isinstance(text, SecretText)
    assert KEY in text  # the core's contract is unchanged: it is the text to send
    assert KEY not in repr(text) and KEY not in str(text) and KEY not in f"{text!r}"
    assert KEY not in repr([text])
    assert type(reveal(text)) is str and KEY in reveal(text)
    logging.getLogger("mmws.test").debug("sending %s %r", text, text)
    with pytest.raises(TypeError):
        pickle.dumps(text)


def test_secret_set_scrubs_text_and_frames_and_never_shows_itself() -> None:
    secrets = SecretSet(KEY, "", "tok3n")
    assert len(secrets) == 2 and KEY not in repr(secrets)
    assert secrets.redact(f"bad key {KEY}") == "bad key ***"
    assert secrets.scrub(f'{{"m": "{KEY}"}}'.encode()) == b'{"m": "***"}'
    assert secrets.scrub(f"x tok3n y {KEY}") == "x *** y ***"
    assert secrets.scrub(b"nothing here") == b"nothing here"
    assert secrets.with_values("other").found_in("an other thing")
    assert not SecretSet()
    with pytest.raises(TypeError):
        pickle.dumps(secrets)


def test_secret_url_shows_the_url_redacted() -> None:
    url = SecretURL("wss://feed.example/ws?token=abcdef123456")
    assert "abcdef123456" not in repr(url) and "token=***" in repr(url)
    assert reveal(url).endswith("abcdef123456")


def _rendered_failure(bad: str) -> str:
    from mmws.mm.protocol import validate_api_key

    try:
        validate_api_key(bad)
    except ValueError as exc:
        error = exc
    else:
        raise AssertionError("accepted")
    # only the frames from validate_api_key down (this helper's own `bad` is the test's)
    return "".join(traceback.TracebackException(
        type(error), error, error.__traceback__.tb_next, capture_locals=True  # type: ignore[union-attr]
    ).format())


def test_a_traceback_through_key_validation_shows_no_key() -> None:
    for text in (_rendered_failure(f" {KEY}"), _rendered_failure("{" + KEY + "}"),
                 _rendered_failure(KEY.replace("-", ""))):
        assert "api_key = Secret(" in text
        assert KEY.replace("-", "") not in text.replace("-", "")


def test_the_trace_filter_redacts_websocket_client_records() -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("websocket")
    handler = Keep()
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("++Sent decoded: %s", f'{{"type": "subscribe", "apiKey": "{KEY}"}}')
        logger.debug("GET /ws?token=abcdef HTTP/1.1")
        logger.debug("b'{\"api_key\": \"%s\"}'", KEY)
        logger.debug("nothing secret %d", 5)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert records[0] == '++Sent decoded: {"type": "subscribe", "apiKey": "***"}'
    assert records[1] == "GET /ws?token=*** HTTP/1.1"
    assert KEY not in records[2]
    assert records[3] == "nothing secret 5"


# -- the connection deadline ----------------------------------------------------------------


def test_the_deadline_shuts_the_watched_socket_when_it_passes() -> None:
    a, b = socket.socketpair()
    try:
        deadline = Deadline(0.05)
        deadline.watch(a)
        a.settimeout(5)
        assert a.recv(1) == b""  # woken by the shutdown, not by the 5 s timeout
        deadline.finish()
        assert deadline.expired and not deadline.aborted
        assert "connect_timeout=0.05" in str(deadline.timeout_error("ws://x"))
    finally:
        a.close()
        b.close()


def test_a_finished_deadline_leaves_the_socket_alone_and_its_thread_ends() -> None:
    a, b = socket.socketpair()
    try:
        deadline = Deadline(60)
        deadline.watch(a)
        deadline.finish()
        assert not deadline.expired
        assert not any(t.name == "mmws-connect-deadline" and t.is_alive()
                       for t in threading.enumerate())
        b.sendall(b"x")
        a.settimeout(5)
        assert a.recv(1) == b"x"
    finally:
        a.close()
        b.close()


def test_abort_shuts_now_and_a_socket_watched_later_is_shut_at_once() -> None:
    a, b = socket.socketpair()
    try:
        deadline = Deadline(60)
        deadline.abort()
        deadline.watch(a)  # watched after the abort: shut straight away
        a.settimeout(5)
        assert a.recv(1) == b""
        deadline.finish()
        assert deadline.aborted and not deadline.expired
    finally:
        a.close()
        b.close()
