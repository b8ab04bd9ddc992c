"""Commands a client sends on top of its stream, all through its one rate-limited path
(:class:`~mmws._ratelimit.Pacer`): commands from user threads (the feed's subscribe and
unsubscribe, ``ping()``) and commands during the handshake, with the handshake's reads.

:class:`Commands` is a base of :class:`~mmws._client.StreamClient`; the attributes it
declares are set up there, and guarded by its one lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mmws._ratelimit import Pacer
from mmws._secret import Secret
from mmws._session import ProtocolCore, Session
from mmws.errors import (
    ClientClosed,
    ConnectionClosed,
    ConnectTimeout,
    LocalProtocolError,
    MmwsError,
    TransportTimeout,
)

__all__ = ["Commands"]

R = TypeVar("R")


class Commands:
    """Paced commands, ``ping()`` and the waiting for replies (declarations only)."""

    _lock: threading.Lock
    _acks: threading.Condition  # notified when a reply or a pong arrives
    _pacer: Pacer
    _session: Session | None
    _closing: bool
    _threads: list[threading.Thread]
    _connect_timeout: float
    _keepalive_args: tuple[float | None, float, float | None]
    _pongs: int

    def _decode(self, session: Session, data: bytes | str, now: float) -> list[Any]:
        raise NotImplementedError  # StreamClient's

    def ping(self, timeout: float | None = None) -> float:
        """Send a ping and wait for the pong; return the round trip in seconds (within
        ``timeout``, by default ``pong_timeout``; ``TransportTimeout`` otherwise).

        Args:
            timeout: Seconds to wait for the pong; ``None`` uses the client's
                ``pong_timeout``.

        Returns:
            The round trip, in seconds.
        """
        deadline = time.monotonic() + (self._keepalive_args[1] if timeout is None else timeout)
        sent: list[float] = []
        wanted = [0]

        def send(core: ProtocolCore) -> None:
            # The server answers pings in order: if the keepalive's ping is still waiting
            # for its pong, ours is the one after it.
            ahead = 1 if core.keepalive.ping_outstanding_since is not None else 0
            wanted[0] = self._pongs + ahead + 1
            sent.append(time.monotonic())
            core.ping(sent[0])

        self._paced_command(send, timeout)
        with self._lock:
            while self._pongs < wanted[0]:
                self._check_alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportTimeout("no pong within the timeout")
                self._acks.wait(min(left, 0.1))
        return time.monotonic() - sent[0]

    def _check_alive(self) -> None:
        """(lock held) Raise if the client can no longer carry a command."""
        if self._closing:
            raise ClientClosed("the client is closed")

    def _paced_command(self, make: Callable[[Any], R], timeout: float | None) -> R:
        """Run ``make`` on the current protocol core once the pacer allows, and send what
        it queued (at most one command). Returns what ``make`` returned."""
        if not self._threads:
            raise LocalProtocolError("call connect() first")
        deadline = time.monotonic() + (self._connect_timeout if timeout is None else timeout)
        while True:
            with self._lock:
                self._check_alive()
                session = self._session
                delay = 0.1
                if session is not None and session.dead is None:
                    now = time.monotonic()
                    delay = self._pacer.delay(now)
                    if delay <= 0:
                        result = make(session.protocol)
                        texts = session.protocol.data_to_send()
                        # make() may decide there is nothing to send
                        slot = self._pacer.take(now) if texts else None
                        break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportTimeout("the command could not be sent within the timeout")
                self._acks.wait(min(delay, left, 0.1))
        self._send_and_mark(session, texts, slot, quiet=True)
        return result

    def _handshake_command(
        self,
        session: Session,
        make: Callable[[], object],
        wait: Callable[[float], list[Any]],
    ) -> list[Any]:
        """During the handshake: run ``make`` (it queues one command on ``session``'s core)
        once the pacer allows and send it; while the pacer says wait, ``wait(until)`` reads
        the connection. Returns the events read meanwhile."""
        events: list[Any] = []
        while True:
            with self._lock:
                now = time.monotonic()
                delay = self._pacer.delay(now)
                if delay <= 0:
                    slot = self._pacer.take(now)
                    make()
                    texts = session.protocol.data_to_send()
            if delay <= 0:
                self._send_and_mark(session, texts, slot, quiet=False)
                return events
            events.extend(wait(now + delay))

    def _send_and_mark(
        self,
        session: Session,
        texts: Sequence[str | Secret],
        slot: list[float] | None,
        *,
        quiet: bool,
    ) -> None:
        """Send ``texts`` and move the pacer's slot to the real send time. ``quiet``: a
        failed send is left to the reader, which sees the broken connection (the request
        then fails with it)."""
        try:
            for text in texts:
                session.transport.send(text)
        except MmwsError:
            if not quiet:
                raise
        finally:
            if slot is not None:
                with self._lock:
                    self._pacer.sent(slot, time.monotonic())

    def _handshake_read(
        self, session: Session, deadline: float, wait_until: float | None = None
    ) -> list[Any]:
        """Read one frame during the handshake, within ``deadline``; return its events.

        With ``wait_until`` (before ``deadline``), return ``[]`` if nothing came by then."""
        soft = wait_until is not None and wait_until < deadline
        left = (wait_until if soft else deadline) - time.monotonic()  # type: ignore[operator]
        if soft and left <= 0:
            return []
        if left <= 0:
            raise self._no_confirmation(session)
        session.transport.settimeout(left)
        try:
            data = session.transport.recv()
        except TransportTimeout:
            if soft:
                return []
            raise self._no_confirmation(session) from None
        except ConnectionClosed as exc:
            meaning = session.protocol.close_error(exc.code, exc.reason)
            raise (meaning if isinstance(meaning, MmwsError) else exc) from None
        return self._decode(session, data, time.monotonic())

    def _no_confirmation(self, session: Session) -> ConnectTimeout:
        return ConnectTimeout(
            f"no confirmation from {session.transport.url} within "
            f"connect_timeout={self._connect_timeout:g} s"
        )

    def _send(self, session: Session) -> None:
        with self._lock:
            texts = session.protocol.data_to_send()
        for text in texts:
            session.transport.send(text)
