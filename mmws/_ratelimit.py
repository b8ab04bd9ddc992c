"""At most ``limit`` commands in any sliding window: the feed's 10 commands per second.

Pure: every method takes ``now``. Used by the one paced send path of the feed client.
"""

from __future__ import annotations

from collections import deque

from mmws.errors import ConfigError

__all__ = ["Pacer", "SlidingWindow"]


class SlidingWindow:
    """At most ``limit`` commands in any ``window`` seconds. Pure: pass ``now`` in.

    A token bucket with a burst of 10 refilling at 10/s lets 19 through in one second; the
    server counts a sliding second, so we do too, with a margin for clock and network skew.

    :meth:`record` takes a slot when a command is admitted; :meth:`sent` moves the slot to
    when the command actually went out, so a sender that was held up between the two
    cannot make the server see more than ``limit`` commands in one window.
    """

    def __init__(self, limit: int = 10, window: float = 1.0, margin: float = 0.1) -> None:
        if limit < 1 or window <= 0 or margin < 0:
            raise ConfigError(f"bad rate limit: {limit} per {window} s (margin {margin})")
        self.limit = limit
        self.span = window + margin
        self._sent: deque[list[float]] = deque()  # one-item lists: sent() moves a slot

    def delay(self, now: float) -> float:
        """Seconds to wait before the next command may go (0 if it may go now)."""
        sent = self._sent
        # Same expression as the delay returned below: ``now - sent[0] >= span`` can round
        # short exactly when ``sent[0] + span - now`` rounds to 0.0, which said "go now"
        # forever at that instant without freeing a slot.
        # A slot moved later by sent() may sit in front of earlier ones: that only delays
        # the next command, never lets one through early.
        while sent and sent[0][0] + self.span <= now:
            sent.popleft()
        if len(sent) < self.limit:
            return 0.0
        return sent[0][0] + self.span - now

    def record(self, now: float) -> list[float]:
        """Take a slot at ``now``; pass the returned slot to :meth:`sent`."""
        slot = [now]
        self._sent.append(slot)
        return slot

    def sent(self, slot: list[float], now: float) -> None:
        """The command of ``slot`` left at ``now`` (never moves a slot earlier)."""
        if now > slot[0]:
            slot[0] = now


class Pacer:
    """The one rate-limited send path of a client: every command (a subscribe from a user
    thread, one during the handshake, the keepalive's ping) takes a slot here first. Without
    a window every slot is free at once (MM has no command limit). Not thread-safe: the
    client's lock guards it."""

    def __init__(self, window: SlidingWindow | None = None) -> None:
        self.window = window

    def delay(self, now: float) -> float:
        """Seconds before the next command may go (0: now)."""
        return 0.0 if self.window is None else self.window.delay(now)

    def take(self, now: float) -> list[float] | None:
        """Take a slot at ``now`` (call only when :meth:`delay` said 0)."""
        return None if self.window is None else self.window.record(now)

    def sent(self, slot: list[float] | None, now: float) -> None:
        """The command of ``slot`` went out at ``now``."""
        if slot is not None and self.window is not None:
            self.window.sent(slot, now)
