"""Keepalive bookkeeping shared by both protocol cores. Pure: every method takes ``now``."""

from __future__ import annotations

import math

import attrs

from mmws.errors import ConfigError, HeartbeatTimeout

__all__ = ["Keepalive"]


def _check_interval(name: str, value: float | None, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")


@attrs.define(slots=True)
class Keepalive:
    """When to ping, and when a silent server counts as dead.

    - a ping is due ``ping_interval`` after the last one (``None``: never ping);
    - a ping without a pong for ``pong_timeout`` means the connection is dead;
    - nothing at all received for ``heartbeat_timeout`` means it is dead (``None``: no limit).
    """

    ping_interval: float | None = 30.0
    pong_timeout: float = 10.0
    heartbeat_timeout: float | None = None
    last_received: float = 0.0
    last_ping: float = 0.0
    ping_outstanding_since: float | None = None
    last_rtt: float | None = None

    def __attrs_post_init__(self) -> None:
        _check_interval("ping_interval", self.ping_interval, optional=True)
        _check_interval("pong_timeout", self.pong_timeout, optional=False)
        _check_interval("heartbeat_timeout", self.heartbeat_timeout, optional=True)

    def start(self, now: float) -> None:
        self.last_received = self.last_ping = now
        self.ping_outstanding_since = None

    def received(self, now: float) -> None:
        self.last_received = now

    def ping_sent(self, now: float) -> None:
        self.last_ping = now
        if self.ping_outstanding_since is None:
            self.ping_outstanding_since = now

    def pong_received(self, now: float) -> float | None:
        sent, self.ping_outstanding_since = self.ping_outstanding_since, None
        if sent is None:
            return None
        self.last_rtt = max(0.0, now - sent)
        return self.last_rtt

    def silent_for(self, now: float) -> float:
        return max(0.0, now - self.last_received)

    def dead(self, now: float) -> HeartbeatTimeout | None:
        """The reason the connection counts as dead at ``now``, or ``None``."""
        sent = self.ping_outstanding_since
        if sent is not None and now - sent >= self.pong_timeout:
            return HeartbeatTimeout(f"no pong within {self.pong_timeout:g} s of a ping")
        limit = self.heartbeat_timeout
        if limit is not None and now - self.last_received >= limit:
            return HeartbeatTimeout(f"nothing received from the server for {limit:g} s")
        return None

    def ping_due(self, now: float) -> bool:
        return self.ping_interval is not None and now - self.last_ping >= self.ping_interval

    def next_deadline(self) -> float:
        """The next moment :meth:`dead` or :meth:`ping_due` can change its answer."""
        times = [math.inf]
        if self.ping_interval is not None:
            times.append(self.last_ping + self.ping_interval)
        if self.ping_outstanding_since is not None:
            times.append(self.ping_outstanding_since + self.pong_timeout)
        if self.heartbeat_timeout is not None:
            times.append(self.last_received + self.heartbeat_timeout)
        return min(times)

    def forgive(self, now: float) -> None:
        """Restart the silence clocks: the reader was blocked by our own full queue, so
        frames waited in the socket buffer; that is not the server's silence."""
        self.last_received = max(self.last_received, now)
        if self.ping_outstanding_since is not None:
            self.ping_outstanding_since = max(self.ping_outstanding_since, now)
