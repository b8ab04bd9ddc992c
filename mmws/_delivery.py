"""The one delivery path: a bounded, ordered, thread-safe event queue with a priority lane.

Per-event policy, chosen by the event's class (see :class:`Lane`):

- ``LOSSLESS`` (orders, bets, accounts, errors ...): never dropped. When the queue holds
  ``maxsize`` items the producer (the reader thread) waits; the socket then stops being read
  and TCP pushes back on the server.
- ``COALESCE`` (scores): when the queue is full, a newer event replaces the queued one with
  the same key (the fixture) in its place; each replacement is counted and announced by one
  ``Overflow`` event that counts up until the consumer takes it.
- ``PRIORITY`` (emergency): delivered ahead of everything queued, never dropped; it may
  pass ``maxsize`` by :data:`PRIORITY_HEADROOM` events, then its producer waits too.
- ``CONTROL`` (the client's own lifecycle events): never waits, in order with the data.
  Only events the client makes itself go here, a bounded number per connection; anything
  decoded from a server frame is bounded by ``maxsize``. Once the queue is over its bound,
  a ``Reconnecting`` replaces a ``Reconnecting`` at the tail instead of adding another, so
  a long outage with nobody reading cannot grow it either.

No event is delivered twice: every item leaves the queue exactly once, under the lock.
Blocking waits sleep until something changes (an event, room, ``close()``); Ctrl-C and a
notebook's interrupt still end them at once (see :data:`_WAKE`).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from enum import Enum
from typing import Any, Final

from mmws._frozen import FrozenMap
from mmws.errors import ClientClosed, MmwsError
from mmws.lifecycle import Overflow, Reconnecting

__all__ = ["PRIORITY_HEADROOM", "EventQueue", "Lane"]

_WAKE: Final = None if os.name == "posix" else 1.0
"""How long a blocked ``get()`` or producer sleeps at most before it looks again. Nothing
needs a look: every change wakes them (an event, room, ``close()``). On POSIX a wait can
sleep until then, and Ctrl-C still interrupts it at once; elsewhere a lock wait cannot be
interrupted, so it wakes once a second to let Ctrl-C through."""


def _slice(left: float | None) -> float | None:
    if _WAKE is None:
        return left
    return _WAKE if left is None else min(left, _WAKE)

PRIORITY_HEADROOM: Final = 16


class Lane(Enum):
    LOSSLESS = 0
    COALESCE = 1
    PRIORITY = 2
    CONTROL = 3


class _Slot:
    """A queued coalescible event (replaceable in place) or a counting Overflow."""

    __slots__ = ("channel", "count", "event", "key")

    def __init__(self, key: Hashable, event: Any, channel: str = "") -> None:
        self.key = key
        self.event = event
        self.channel = channel
        self.count = 0

    def materialize(self) -> Any:
        if self.event is None:
            return Overflow(self.channel, self.count)
        return self.event


class EventQueue:
    """A ``queue.Queue``-like object: ``get``, ``get_nowait``, ``qsize``, ``empty``.

    ``lanes`` maps an event class to its :class:`Lane` (default ``LOSSLESS``);
    ``coalesce_key`` gives the key of a ``COALESCE`` event and ``channel_of`` its channel.
    """

    def __init__(
        self,
        maxsize: int,
        lanes: Mapping[type, Lane] | None = None,
        coalesce_key: Callable[[Any], Hashable] | None = None,
    ) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive integer, got {maxsize!r}")
        self.maxsize = maxsize
        self._lanes = dict(lanes or {})
        self._coalesce_key = coalesce_key or (lambda event: id(event))
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._main: deque[Any] = deque()
        self._priority: deque[Any] = deque()
        self._pending: dict[Hashable, _Slot] = {}
        self._overflow: dict[str, _Slot] = {}
        self._getters = 0
        self._closed = False
        self._aborted = False
        self._error: MmwsError | None = None
        self.dropped: Counter[str] = Counter()
        self.producer_blocked = False
        self.last_unblocked = -1e9  # time.monotonic() when a waiting producer last resumed

    # -- consumer side ----------------------------------------------------------------------

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The next event. Raises ``queue.Empty`` on timeout (or at once if not ``block``);
        on a closed, drained queue raises the fatal error that closed it, or ``ClientClosed``."""
        with self._lock:
            if not (self._main or self._priority):
                if not block:
                    self._raise_if_closed()
                    raise queue.Empty
                deadline = None if timeout is None else time.monotonic() + timeout
                self._getters += 1
                try:
                    while not (self._main or self._priority):
                        self._raise_if_closed()
                        if deadline is None:
                            self._not_empty.wait(_slice(None))
                            continue
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise queue.Empty
                        self._not_empty.wait(_slice(left))
                finally:
                    self._getters -= 1
            item = self._priority.popleft() if self._priority else self._main.popleft()
            if type(item) is _Slot:
                item = self._take_slot(item)
            if self.producer_blocked:  # Condition.notify costs more than this check
                self._not_full.notify()
            return item

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def qsize(self) -> int:
        return len(self._main) + len(self._priority)

    def empty(self) -> bool:
        return not (self._main or self._priority)

    def full(self) -> bool:
        return self.qsize() >= self.maxsize

    def dropped_counts(self) -> FrozenMap:
        """Events coalesced away so far, per channel (a consistent snapshot)."""
        with self._lock:
            return FrozenMap(self.dropped)

    # -- producer side ----------------------------------------------------------------------

    def put(self, event: Any) -> bool:
        return self.put_many((event,))

    def put_many(self, events: Iterable[Any]) -> bool:
        """Queue ``events`` in order, waiting for room for lossless ones.

        Returns ``False`` if :meth:`abort_producers` was called while waiting: the events not
        yet queued were not delivered, and the client is closing."""
        lanes = self._lanes
        with self._lock:
            if self._closed:
                return False  # after Closed nothing more is delivered
            for event in events:
                lane = lanes.get(type(event), Lane.LOSSLESS)
                if lane is Lane.CONTROL:
                    self._main.append(event)
                elif lane is Lane.PRIORITY:
                    if len(self._main) + len(self._priority) >= self.maxsize + PRIORITY_HEADROOM:
                        if self._getters:
                            self._not_empty.notify(self._getters)
                        if not self._wait_room(self.maxsize + PRIORITY_HEADROOM):
                            return False
                    self._priority.append(event)
                elif lane is Lane.COALESCE and self._coalesce(event):
                    continue
                else:
                    if len(self._main) + len(self._priority) >= self.maxsize:
                        if self._getters:
                            self._not_empty.notify(self._getters)
                        if not self._wait_room(self.maxsize):
                            return False
                    if lane is Lane.COALESCE:
                        slot = _Slot(self._coalesce_key(event), event)
                        self._pending[slot.key] = slot
                        self._main.append(slot)
                    else:
                        self._main.append(event)
            if self._getters:  # one wake-up for the whole batch
                self._not_empty.notify(self._getters)
        return True

    def put_control(self, event: Any) -> None:
        """Queue a lifecycle event: never blocks, never dropped (ignored once closed:
        ``Closed`` is the last event)."""
        with self._lock:
            if self._closed:
                return
            main = self._main
            if (
                type(event) is Reconnecting
                and main
                and type(main[-1]) is Reconnecting
                and len(main) + len(self._priority) > self.maxsize
            ):
                main[-1] = event  # bounded: only the latest attempt is worth reading
            else:
                main.append(event)
            self._not_empty.notify()

    def close(self, error: MmwsError | None = None) -> None:
        """No more events will be put; once drained, ``get`` raises ``error`` or
        ``ClientClosed``."""
        with self._lock:
            self._closed = True
            if error is not None and self._error is None:
                self._error = error
            self._aborted = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def abort_producers(self) -> None:
        """Wake a producer waiting for room and make it give up."""
        with self._lock:
            self._aborted = True
            self._not_full.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- private (the lock is held) ----------------------------------------------------------

    def _wait_room(self, limit: int) -> bool:
        self.producer_blocked = True
        try:
            while len(self._main) + len(self._priority) >= limit:
                if self._aborted:
                    return False
                self._not_full.wait(_slice(None))
            return not self._aborted
        finally:
            self.producer_blocked = False
            self.last_unblocked = time.monotonic()

    def _coalesce(self, event: Any) -> bool:
        """Replace the queued event with the same key when the queue is full."""
        if len(self._main) + len(self._priority) < self.maxsize:
            return False
        slot = self._pending.get(self._coalesce_key(event))
        if slot is None:
            return False
        slot.event = event
        channel = getattr(event, "channel", type(event).__name__)
        self.dropped[channel] += 1
        overflow = self._overflow.get(channel)
        if overflow is None:
            overflow = self._overflow[channel] = _Slot(("overflow", channel), None, channel)
            self._main.append(overflow)
        overflow.count += 1
        return True

    def _take_slot(self, slot: _Slot) -> Any:
        if slot.event is None:
            del self._overflow[slot.channel]
        elif self._pending.get(slot.key) is slot:
            del self._pending[slot.key]
        return slot.materialize()

    def _raise_if_closed(self) -> None:
        if self._closed:
            if self._error is not None:
                # a fresh traceback each time, so repeated get() calls do not pile frames up
                raise self._error.with_traceback(None)
            raise ClientClosed("the client is closed and every event has been delivered")
