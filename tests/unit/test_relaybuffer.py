"""The relay's buffer (pure): whatever the order of offers, batches, writes and failures,
the stream holds every event it kept in order, and a RelayLoss exactly where and for as
many as it lost; one run of lost events is one RelayLoss."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mmws._relaybuffer import Loss, RelayBuffer

ops = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), st.integers(1, 30)),
        st.tuples(st.just("take"), st.just(0)),
        st.tuples(st.just("written"), st.just(0)),
        st.tuples(st.just("lost"), st.just(0)),
    ),
    max_size=80,
)


def run(bound: int, size: int, steps: list[tuple[str, int]]) -> tuple[list[Any], RelayBuffer, int]:
    """Play ``steps``; return what reached the stream, the buffer and how many were offered.
    A marker's count is read when its batch is taken (the relay encodes it then)."""
    buffer = RelayBuffer(bound, size)
    stream: list[Any] = []
    batch: list[Any] | None = None
    items: list[Any] = []
    offered = 0

    def take() -> tuple[list[Any], list[Any]]:
        items = buffer.take()
        return items, [("loss", i.reason, i.count) if isinstance(i, Loss) else ("event", i[0])
                       for i in items]  # fmt: skip

    for op, count in steps:
        if op == "offer":
            for _ in range(count):
                buffer.offer(offered)
                offered += 1
                assert buffer.held + buffer.inflight <= bound
        elif op == "take" and batch is None and buffer:
            items, batch = take()
            assert len(batch) <= size
        elif op == "written" and batch is not None:
            assert buffer.written() == sum(1 for item in batch if item[0] == "event")
            stream.extend(batch)
            batch = None
        elif op == "lost" and batch is not None:
            assert buffer.lost(items) == sum(1 for item in batch if item[0] == "event")
            batch = None
    if batch is not None:
        buffer.written()
        stream.extend(batch)
    while buffer:  # the broker takes everything in the end
        stream.extend(take()[1])
        buffer.written()
    return stream, buffer, offered


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 25), st.integers(1, 10), ops)
def test_the_stream_holds_every_kept_event_in_order_and_each_loss_where_it_was(
    bound: int, size: int, steps: list[tuple[str, int]]
) -> None:
    stream, buffer, offered = run(bound, size, steps)
    events = [item[1] for item in stream if item[0] == "event"]
    assert events == sorted(set(events))  # in order, none twice
    losses = [item for item in stream if item[0] == "loss"]
    assert sum(item[2] for item in losses) == buffer.dropped == offered - len(events)
    # between two events of the stream, the losses count exactly the events missing there
    previous, counted = -1, 0
    for item in [*stream, ("event", offered)]:
        if item[0] == "loss":
            counted += item[2]
        else:
            assert counted == item[1] - previous - 1, (stream, offered)
            previous, counted = item[1], 0
    # one run of events lost to a full buffer is one RelayLoss, not pieces of it
    for first, second in itertools.pairwise(stream):
        assert not (first[:2] == second[:2] == ("loss", "buffer")), stream
    assert all(item[2] > 0 for item in losses)


def test_a_full_buffer_keeps_its_tail_marker_until_room_is_made() -> None:
    buffer = RelayBuffer(bound=3, batch=10)
    for event in range(5):
        buffer.offer(event)
    batch = buffer.take()  # the three events; the marker still counts what follows
    assert [item[0] for item in batch] == [0, 1, 2] and buffer.full
    buffer.offer(5)
    buffer.offer(6)
    assert buffer.written() == 3 and not buffer.full
    (marker,) = buffer.take()
    assert isinstance(marker, Loss) and (marker.reason, marker.count) == ("buffer", 4)


def test_a_batch_that_can_never_be_written_becomes_one_error_marker_first() -> None:
    buffer = RelayBuffer(bound=10, batch=2)
    for event in range(4):
        buffer.offer(event)
    assert buffer.lost(buffer.take()) == 2 and buffer.dropped == 2
    marker, event = buffer.take()
    assert isinstance(marker, Loss) and (marker.reason, marker.count) == ("error", 2)
    assert event == (2, None)
    assert buffer.give_up() == 2 and buffer.dropped == 4 and not buffer
