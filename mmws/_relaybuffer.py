"""The relay's bounded buffer between its pump (the client's events) and its publisher (the
broker). Pure: no I/O, no threads, no clock; :class:`mmws.redis.RedisRelay` calls it under
its lock.

Items are ``(event, snapshot)`` pairs and :class:`Loss` markers. When the buffer holds
``bound`` events (those in the batch being written count too), an offered event is not
kept: it is counted in a ``Loss`` marker at the tail, one marker per run of lost events, so
that the stream gets one ``RelayLoss`` in their place, where they were lost. A marker at
the tail of a full buffer is not taken into a batch while more may be counted into it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["Loss", "RelayBuffer"]


class Loss:
    """Stands in the buffer for ``count`` events that will never reach the stream."""

    __slots__ = ("count", "reason")

    def __init__(self, reason: str = "buffer", count: int = 0) -> None:
        self.reason = reason
        self.count = count

    def __repr__(self) -> str:
        return f"Loss({self.reason!r}, {self.count})"


class RelayBuffer:
    """At most ``bound`` events waiting or being written; batches of at most ``batch``."""

    def __init__(self, bound: int, batch: int) -> None:
        self.bound = bound
        self.batch = batch
        self._items: deque[Any] = deque()
        self.held = 0  # events in the buffer
        self.inflight = 0  # events in the batch being written
        self.dropped = 0  # events that will never reach the stream

    def __bool__(self) -> bool:
        return bool(self._items)

    @property
    def full(self) -> bool:
        return self.held + self.inflight >= self.bound

    def offer(self, event: Any, snapshot: Any = None) -> bool:
        """Keep ``event`` (with the state ``snapshot`` to write with it, if any); False
        when the buffer is full and it was counted as lost instead."""
        if not self.full:
            self._items.append((event, snapshot))
            self.held += 1
            return True
        tail = self._items[-1] if self._items else None
        if not (isinstance(tail, Loss) and tail.reason == "buffer"):
            tail = Loss()
            self._items.append(tail)
        tail.count += 1
        self.dropped += 1
        return False

    def take(self) -> list[Any]:
        """The next batch, in order; its events count as in flight until :meth:`written`
        or :meth:`lost`."""
        items = self._items
        full = self.full
        batch: list[Any] = []
        while items and len(batch) < self.batch:
            if full and len(items) == 1 and isinstance(items[0], Loss) and batch:
                break  # the pump may still count into it: it goes with a later batch
            batch.append(items.popleft())
        self.inflight = sum(1 for item in batch if not isinstance(item, Loss))
        self.held -= self.inflight
        return batch

    def written(self) -> int:
        """The batch in flight reached the stream; how many events it held."""
        done, self.inflight = self.inflight, 0
        return done

    def lost(self, batch: list[Any]) -> int:
        """The batch in flight (``batch``, as :meth:`take` gave it) can never be written
        (not the broker's fault): its events are counted as lost, and markers go back to
        the front of the buffer in their place, the batch's own markers kept, so every
        loss still reaches the stream where it happened. Returns how many events."""
        count, self.inflight = self.inflight, 0
        self.dropped += count
        out: list[Loss] = []
        mine: set[int] = set()  # the markers made here, for this batch's events
        for item in batch:
            if isinstance(item, Loss):
                out.append(item)
            elif out and id(out[-1]) in mine:
                out[-1].count += 1
            else:
                marker = Loss("error", 1)
                mine.add(id(marker))
                out.append(marker)
        self._items.extendleft(reversed(out))
        return count

    def give_up(self) -> int:
        """Everything held and in flight is lost (closing while the broker is away); how
        many events."""
        count = self.held + self.inflight
        self.dropped += count
        self.held = self.inflight = 0
        self._items.clear()
        return count
