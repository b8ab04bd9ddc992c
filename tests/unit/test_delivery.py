"""EventQueue: the one delivery path (lanes, bounds, coalescing, close).

Threads appear only where a blocking producer or consumer is the thing under test; they are
synchronised with deadlines and ``threading.Event``, never by sleeping and hoping.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from mmws._delivery import EventQueue, Lane
from mmws.errors import AuthenticationError, ClientClosed, ConnectionClosed
from mmws.lifecycle import Closed, Connected, Disconnected, Overflow
from mmws.mm.events import EmergencyEvent, ScoreEvent
from mmws.mm.models import Emergency, Score

LANES = {
    ScoreEvent: Lane.COALESCE,
    EmergencyEvent: Lane.PRIORITY,
    Connected: Lane.CONTROL,
    Disconnected: Lane.CONTROL,
    Closed: Lane.CONTROL,
}
DEADLINE = 5.0


@attrs.frozen
class Item:
    """A lossless test event."""

    n: int


def score(fixture_id: str, minute: int) -> ScoreEvent:
    return ScoreEvent("UPDATE", Score(fixture_id, live=True, current_minute=minute))


def emergency(on: bool = True) -> EmergencyEvent:
    return EmergencyEvent("UPDATE", Emergency(emergency=on, reason="test"))


def make(maxsize: int = 3) -> EventQueue:
    return EventQueue(maxsize, LANES, coalesce_key=lambda e: e.payload.fixture_id)


def drain(q: EventQueue) -> list[Any]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except (queue.Empty, ClientClosed):
            return out


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for another thread to reach a state; fails the test on the deadline."""
    tick = threading.Event()
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        tick.wait(0.001)


def run(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``target`` in a thread; its return value or exception lands in the list."""
    result: list[Any] = []

    def body() -> None:
        try:
            result.append(target())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, result


# -- basics ---------------------------------------------------------------------------------


def test_fifo_order() -> None:
    q = make(maxsize=10)
    for i in range(6):
        assert q.put(Item(i)) is True
    assert [q.get() for _ in range(6)] == [Item(i) for i in range(6)]
    assert q.empty()


def test_put_many_keeps_order_across_lanes() -> None:
    q = make(maxsize=10)
    events = [Item(1), Connected("wss://x"), score("f1", 1), Item(2), Disconnected("bye", True)]
    assert q.put_many(events) is True
    assert drain(q) == events


def test_qsize_empty_full() -> None:
    q = make(maxsize=2)
    assert (q.qsize(), q.empty(), q.full()) == (0, True, False)
    q.put(Item(1))
    assert (q.qsize(), q.empty(), q.full()) == (1, False, False)
    q.put(Item(2))
    assert (q.qsize(), q.empty(), q.full()) == (2, False, True)
    q.put(emergency())  # the priority lane counts in qsize too
    assert (q.qsize(), q.full()) == (3, True)
    q.get()
    q.get()
    assert (q.qsize(), q.full()) == (1, False)


@pytest.mark.parametrize("maxsize", [0, -1, True, 1.5, "3", None])
def test_maxsize_must_be_a_positive_integer(maxsize: Any) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        EventQueue(maxsize)


def test_get_nowait_on_empty_raises_empty() -> None:
    q = make()
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)


def test_get_with_timeout_raises_empty() -> None:
    q = make()
    started = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.02)
    assert time.monotonic() - started >= 0.02
    with pytest.raises(queue.Empty):
        q.get(timeout=0)


def test_default_lane_is_lossless() -> None:
    q = EventQueue(1)
    q.put(score("f1", 1))  # no lanes given: a ScoreEvent is lossless here
    q.abort_producers()
    assert q.put(score("f1", 2)) is False
    assert drain(q) == [score("f1", 1)]
    assert q.dropped == {}


def test_default_coalesce_key_is_the_object_itself() -> None:
    q = EventQueue(1, {ScoreEvent: Lane.COALESCE})
    first = score("f1", 1)
    q.put(first)
    q.abort_producers()
    assert q.put(score("f1", 2)) is False  # equal fixture, other object: no coalescing
    assert q.put(first) is True  # the very same object coalesces with itself
    assert q.dropped == {"scores": 1}
    assert drain(q) == [first, Overflow("scores", 1)]


# -- lossless bound -------------------------------------------------------------------------


def test_lossless_put_on_a_full_queue_gives_up_after_abort_producers() -> None:
    q = make(maxsize=2)
    assert q.put_many([Item(1), Item(2)]) is True
    q.abort_producers()
    assert q.put_many([Item(3), Item(4)]) is False
    assert q.qsize() == 2
    assert drain(q) == [Item(1), Item(2)]  # nothing of the refused batch leaked in


def test_put_many_queues_what_fits_then_reports_the_abort() -> None:
    q = make(maxsize=3)
    q.put(Item(0))
    q.abort_producers()
    assert q.put_many([Item(1), Item(2), Item(3)]) is False
    assert drain(q) == [Item(0), Item(1), Item(2)]


def test_a_lossless_producer_waits_for_room_and_drops_nothing() -> None:
    q = make(maxsize=2)
    thread, result = run(lambda: q.put_many([Item(1), Item(2), Item(3), Item(4)]))
    wait_for(lambda: q.producer_blocked, "the producer to block on a full queue")
    assert q.qsize() == 2 and thread.is_alive()
    assert q.get() == Item(1)
    assert q.get(timeout=DEADLINE) == Item(2)
    assert q.get(timeout=DEADLINE) == Item(3)
    assert q.get(timeout=DEADLINE) == Item(4)
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert result == [True]
    assert q.producer_blocked is False
    assert q.empty()


@pytest.mark.parametrize("how", ["abort_producers", "close"])
def test_a_blocked_producer_is_released_by_abort_or_close(how: str) -> None:
    q = make(maxsize=1)
    q.put(Item(1))
    thread, result = run(lambda: q.put(Item(2)))
    wait_for(lambda: q.producer_blocked, "the producer to block")
    getattr(q, how)()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert result == [False]
    assert drain(q) == [Item(1)]


# -- coalescing -----------------------------------------------------------------------------


def test_coalesce_does_nothing_while_there_is_room() -> None:
    q = make(maxsize=5)
    events = [score("f1", 1), score("f1", 2), score("f1", 3)]
    q.put_many(events)
    assert drain(q) == events
    assert q.dropped == {}


def test_when_full_a_newer_score_replaces_the_queued_one_in_place() -> None:
    q = make(maxsize=3)
    q.put_many([score("f1", 1), score("f2", 1), Item(9)])
    assert q.full()
    assert q.put(score("f1", 2)) is True  # does not block
    assert q.put(score("f1", 3)) is True
    assert q.dropped == {"scores": 2}
    assert drain(q) == [score("f1", 3), score("f2", 1), Item(9), Overflow("scores", 2)]
    assert q.empty()


def test_one_overflow_counts_until_the_consumer_takes_it() -> None:
    q = make(maxsize=3)
    q.put_many([score("f1", 1), score("f2", 1), score("f3", 1)])
    q.put(score("f3", 2))
    assert q.qsize() == 4  # three scores + one Overflow slot
    assert q.get() == score("f1", 1)
    q.put(score("f2", 2))  # full again (f2, f3, Overflow): replaces f2 in place
    assert q.qsize() == 3
    assert q.get() == score("f2", 2)
    q.put(score("f3", 3))  # (f3, Overflow, new room) -> not full: queued after Overflow
    assert q.get() == score("f3", 2)
    # the count is read when the Overflow is taken, not when it was queued
    assert q.get() == Overflow("scores", 2)
    assert q.get() == score("f3", 3)
    assert q.empty()
    assert q.dropped["scores"] == 2


def test_a_new_overflow_starts_after_the_old_one_was_taken() -> None:
    q = make(maxsize=2)
    q.put_many([score("f1", 1), score("f2", 1)])
    q.put(score("f2", 2))
    assert drain(q) == [score("f1", 1), score("f2", 2), Overflow("scores", 1)]
    q.put_many([score("f1", 5), score("f2", 5)])
    q.put(score("f1", 6))
    q.put(score("f1", 7))
    q.put(score("f2", 6))
    assert drain(q) == [score("f1", 7), score("f2", 6), Overflow("scores", 3)]
    assert q.dropped["scores"] == 4  # the counter is cumulative


def test_a_score_that_was_already_taken_is_not_replaced() -> None:
    q = make(maxsize=2)
    q.put(score("f1", 1))
    assert q.get() == score("f1", 1)
    q.put_many([score("f2", 1), Item(1)])
    q.abort_producers()
    # full, and no f1 is queued any more: a new f1 waits like a lossless event
    assert q.put(score("f1", 2)) is False
    assert q.dropped == {}
    assert drain(q) == [score("f2", 1), Item(1)]


def test_an_older_duplicate_key_is_left_alone() -> None:
    """Two f1 scores queued while there was room: a replacement hits the newer one."""
    q = make(maxsize=3)
    q.put_many([score("f1", 1), score("f1", 2), Item(0)])
    q.put(score("f1", 3))
    assert drain(q) == [score("f1", 1), score("f1", 3), Item(0), Overflow("scores", 1)]


def test_overflow_is_counted_per_channel() -> None:
    @attrs.frozen
    class Tick:
        channel: str
        key: str
        n: int

    q = EventQueue(2, {Tick: Lane.COALESCE}, coalesce_key=lambda e: (e.channel, e.key))
    q.put_many([Tick("a", "k", 1), Tick("b", "k", 1)])
    q.put_many([Tick("a", "k", 2), Tick("b", "k", 2), Tick("b", "k", 3)])
    assert q.dropped == {"a": 1, "b": 2}
    assert drain(q) == [Tick("a", "k", 2), Tick("b", "k", 3), Overflow("a", 1), Overflow("b", 2)]


# -- priority and control -------------------------------------------------------------------


def test_priority_jumps_ahead_of_queued_events() -> None:
    q = make(maxsize=3)
    q.put_many([Item(1), score("f1", 1), Item(2)])
    q.put(emergency(True))
    q.put(emergency(False))
    assert q.qsize() == 5  # not bounded, never blocked
    assert drain(q) == [emergency(True), emergency(False), Item(1), score("f1", 1), Item(2)]


def test_priority_is_delivered_before_a_later_overflow() -> None:
    q = make(maxsize=1)
    q.put(score("f1", 1))
    q.put(score("f1", 2))
    q.put(emergency())
    assert drain(q) == [emergency(), score("f1", 2), Overflow("scores", 1)]


def test_control_lane_is_unbounded_and_in_order_with_the_data() -> None:
    q = make(maxsize=2)
    q.put_many([Item(1), Item(2)])
    assert q.put(Connected("wss://a", 1)) is True
    q.put_control(Disconnected("gone", True))
    q.put_control(Item(99))  # put_control never blocks, whatever the event
    assert q.qsize() == 5
    assert drain(q) == [
        Item(1),
        Item(2),
        Connected("wss://a", 1),
        Disconnected("gone", True),
        Item(99),
    ]


# -- no duplicates --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_no_event_is_delivered_twice_or_lost_unless_coalesced(seed: int) -> None:
    """A random single-threaded mix of puts and gets that never has to block: when the queue
    is full, only scores of a fixture that is still queued are put (they coalesce)."""
    rng = random.Random(seed)
    q = make(maxsize=4)
    put: list[Any] = []
    got: list[Any] = []
    for step in range(400):
        roll = rng.random()
        if roll < 0.35:
            if not q.empty():
                got.append(q.get_nowait())
            continue
        if roll < 0.45:
            event: Any = emergency(rng.random() < 0.5)
        elif roll < 0.55:
            event = Connected(f"wss://{step}")
        elif not q.full():
            event = Item(step) if rng.random() < 0.4 else score(rng.choice("abc"), step)
        else:
            queued = sorted(str(key) for key in q._pending)
            if not queued:
                continue
            event = score(rng.choice(queued), step)
        assert q.put(event) is True
        put.append(event)
    got.extend(drain(q))
    data = [e for e in got if not isinstance(e, Overflow)]
    delivered = [id(e) for e in data]
    assert len(delivered) == len(set(delivered)), "an event was delivered twice"
    assert set(delivered) <= {id(e) for e in put}
    lost = [e for e in put if id(e) not in set(delivered)]
    assert all(isinstance(e, ScoreEvent) for e in lost), "a non-coalescible event was lost"
    overflow_total = sum(e.dropped for e in got if isinstance(e, Overflow))
    assert len(lost) == sum(q.dropped.values()) == overflow_total
    assert [e for e in data if isinstance(e, Item)] == [e for e in put if isinstance(e, Item)]
    assert sum(q.dropped.values()) > 0  # the mix did exercise coalescing


# -- close ----------------------------------------------------------------------------------


def test_after_close_queued_events_are_still_delivered_then_client_closed() -> None:
    q = make(maxsize=5)
    q.put_many([Item(1), emergency(), Item(2)])
    q.close()
    assert q.closed
    assert q.get() == emergency()
    assert q.get_nowait() == Item(1)
    assert q.get(timeout=1.0) == Item(2)
    with pytest.raises(ClientClosed):
        q.get()
    with pytest.raises(ClientClosed):
        q.get_nowait()
    started = time.monotonic()
    with pytest.raises(ClientClosed):
        q.get(timeout=DEADLINE)  # at once, not after the timeout
    assert time.monotonic() - started < DEADLINE / 2


def test_close_with_a_fatal_error_raises_that_error_once_drained() -> None:
    q = make()
    q.put(Item(1))
    fatal = AuthenticationError("invalid API key", "AUTH")
    q.close(fatal)
    q.close(ConnectionClosed(1000))  # the first fatal error is kept
    assert q.get() == Item(1)
    with pytest.raises(AuthenticationError) as caught:
        q.get()
    assert caught.value is fatal
    with pytest.raises(AuthenticationError):
        q.get_nowait()


def test_close_without_error_after_an_error_keeps_the_error() -> None:
    q = make()
    fatal = ConnectionClosed(1008, "policy")
    q.close(fatal)
    q.close()
    with pytest.raises(ConnectionClosed) as caught:
        q.get(block=False)
    assert caught.value is fatal


def test_a_blocked_consumer_is_woken_by_a_put() -> None:
    q = make()
    thread, result = run(lambda: q.get(timeout=DEADLINE))
    wait_for(lambda: q._getters == 1, "the consumer to wait")
    q.put(Item(7))
    thread.join(DEADLINE)
    assert result == [Item(7)]
    assert q._getters == 0


def test_a_consumer_blocked_without_timeout_is_woken_by_close() -> None:
    q = make()
    thread, result = run(q.get)
    wait_for(lambda: q._getters == 1, "the consumer to wait")
    q.close()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert len(result) == 1 and isinstance(result[0], ClientClosed)
