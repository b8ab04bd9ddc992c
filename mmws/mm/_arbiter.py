"""Line arbitration for hot standby (``MMClient(lines=2)``): several connections carry the
same broadcasts; deliver each one once, from whichever line brings it first. Pure: no I/O,
no threads, no clock (the caller passes ``now``).

MM has no sequence numbers, so a broadcast's identity is its decoded content (the event's
hash: channel, kind, payload and ``old``). The server may send the same content twice on
purpose, so copies are counted: the k-th copy of some content on one line matches the k-th
copy on every other line, and a copy is delivered when its line has brought more copies of
that content than were delivered so far.

The bookkeeping is bounded by a window, in time (``window`` seconds) and in count
(``max_entries`` delivered copies): older copies are forgotten. When a live line has not
brought a forgotten copy by then, either it skipped it (it has brought newer copies since:
nothing to do) or it is further behind than the window (it has brought nothing since):
then it is reported in :attr:`Arbiter.behind`, and the client replaces that connection, as
a copy arriving after it was forgotten would be delivered twice. A line that (re)connects
starts from nothing: it can only match copies still in the window.
"""

from __future__ import annotations

from collections import deque
from typing import Final

__all__ = ["Arbiter"]

LAG_SMOOTHING: Final = 0.2


class Arbiter:
    """See the module docstring. ``lines`` connections, numbered from 0."""

    def __init__(self, lines: int, window: float = 10.0, max_entries: int = 100_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._delivered: dict[int, int] = {}  # identity -> copies delivered, in the window
        self._times: dict[int, deque[float]] = {}  # identity -> when each copy was delivered
        self._order: deque[tuple[float, int]] = deque()  # (delivered at, identity), oldest first
        self._seen: list[dict[int, int]] = [{} for _ in range(lines)]
        self._last_copy: list[float] = [float("-inf")] * lines
        self.live: list[bool] = [False] * lines
        self.accepted: list[int] = [0] * lines
        self.duplicates: list[int] = [0] * lines
        self.lag: list[float | None] = [None] * lines  # smoothed: behind the first copy, s
        self.behind: set[int] = set()  # live lines further behind than the window

    def accept(self, line: int, identity: int, now: float) -> bool:
        """A copy of ``identity`` arrived on ``line``: deliver it?"""
        seen = self._seen[line]
        count = seen.get(identity, 0) + 1
        seen[identity] = count
        self._last_copy[line] = now
        delivered = self._delivered.get(identity, 0)
        if count > delivered:
            self._delivered[identity] = delivered + 1
            times = self._times.get(identity)
            if times is None:
                times = self._times[identity] = deque()
            times.append(now)
            self._order.append((now, identity))
            self.accepted[line] += 1
            self._note_lag(line, 0.0)
            if len(self._order) > self.max_entries or self._order[0][0] < now - self.window:
                self._expire(now)
            return True
        self.duplicates[line] += 1
        self._note_lag(line, now - self._times[identity][count - 1])
        return False

    def line_up(self, line: int, now: float) -> None:
        """``line`` has a new connection: its stream starts now."""
        self._seen[line] = {}
        self._last_copy[line] = now
        self.live[line] = True
        self.behind.discard(line)

    def line_down(self, line: int) -> None:
        self._seen[line] = {}
        self.live[line] = False
        self.behind.discard(line)

    def _note_lag(self, line: int, lag: float) -> None:
        last = self.lag[line]
        self.lag[line] = lag if last is None else last + LAG_SMOOTHING * (lag - last)

    def _expire(self, now: float) -> None:
        order, limit = self._order, now - self.window
        while order and (len(order) > self.max_entries or order[0][0] < limit):
            _, identity = order.popleft()
            left = self._delivered[identity] - 1
            times = self._times[identity]
            times.popleft()
            if left:
                self._delivered[identity] = left
            else:
                del self._delivered[identity]
                del self._times[identity]
            for line, seen in enumerate(self._seen):
                count = seen.get(identity, 0)
                if count > 1:
                    seen[identity] = count - 1
                elif count == 1:
                    del seen[identity]
                elif self.live[line] and self._last_copy[line] < limit:
                    self.behind.add(line)  # silent for a whole window while others spoke
