"""The state cache of a client made with ``state=True``: applying broadcasts on the reader
thread, and the ``mmws-resync`` thread that rebuilds the state from REST.

Three parties share :class:`StateKeeper`, all under the client's one lock:

- the reader thread calls :meth:`StateKeeper.on_events` for every decoded frame: it applies
  broadcasts to :class:`~mmws.mm.state.MMState`, reports gaps in band, asks for a resync
  after each ``Subscribed`` and each gap, and finishes a resync when the barrier pong comes;
- the reader calls :meth:`StateKeeper.connection_lost` when a connection ends;
- the resync thread (:meth:`StateKeeper.run`) waits for a request, reads REST without the
  lock, then sends a ping: the server answers pings in order with its broadcasts, so when
  the pong arrives every broadcast sent before the REST answers has arrived too, and the
  held broadcasts can be re-applied on top of the answers without guessing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Final, NoReturn

import attrs

from mmws._session import ProtocolCore, Session
from mmws.errors import AuthenticationError, ClientClosed, MmwsError, TransportTimeout
from mmws.mm.events import Pong, Resynced, ResyncFailed, Subscribed
from mmws.mm.rest import MMRest
from mmws.mm.state import AUDIT, Base, MMState, RestAnswer, build_base

__all__ = ["StateKeeper"]

log = logging.getLogger("mmws.state")

RETRY_CAP: Final = 30.0


@attrs.define(slots=True)
class _Barrier:
    generation: int
    base: Base
    reason: str
    started: float
    # Per live line: its pong count that proves the broadcasts before its ping arrived
    # (None until the ping goes out). Every line that was up must answer: a line that
    # (re)connected lately carries nothing sent before, a slower one may still bring it.
    wanted: dict[int, int | None]
    done: set[int] = attrs.Factory(set)


Command = Callable[[Callable[[ProtocolCore, int], None], float | None], None]
"""Runs ``send(core, line)`` on the core of a live connection under the lock, and sends what
it queued (the client's paced command path)."""


class StateKeeper:
    """See the module docstring. ``cond`` is a condition on the client's lock (its
    ``_wake``); ``command`` runs a function on the current protocol core under the lock and
    sends what it queued (the client's paced command path)."""

    def __init__(
        self,
        rest: MMRest,
        cond: threading.Condition,
        command: Command,
        deliver: Callable[[list[Any]], object],
        stopped: Callable[[], bool],
        *,
        retry_base: float = 1.0,
        barrier_timeout: float = 10.0,
        audit_interval: float | None = None,
        strict: bool = False,
    ) -> None:
        self.state = MMState(strict=strict)
        self.rest = rest
        self._cond = cond
        self._command = command
        self._deliver = deliver
        self._stopped = stopped
        self._retry_base = retry_base
        self._barrier_timeout = barrier_timeout
        self._audit_interval = audit_interval
        self._request: str | None = None
        self._subscribed_before = False
        self._pongs: dict[int, int] = {}  # per line
        self._ups: dict[int, int] = {}  # per line: how many times it was subscribed
        self._ups_at_fetch: dict[int, int] = {}
        self._barrier: _Barrier | None = None
        self.first_result: MmwsError | bool | None = None  # True, or the fatal error
        self.live_lines: Callable[[], list[int]] = lambda: [0]
        """The lines up now (set by a group of lines); the barrier waits for each."""
        self.hold: Callable[[Any, int], bool] | None = None
        """Set by a group of lines: called with each broadcast (and its line) before it
        is applied; True when the group keeps it back (it does not follow on yet)."""

    # -- the reader thread (lock held) --------------------------------------------------------

    def on_events(
        self, session: Session | None, events: list[Any], line: int = 0
    ) -> list[Any]:
        """Apply what one connection (``line``) decoded; ``Subscribed`` counts only for the
        stream as a whole (``line`` None on the event). With a ``session``, the snapshot is
        published once its buffered frames are read; without, at once."""
        state = self.state
        hold = self.hold
        out: list[Any] | None = None
        for index, event in enumerate(events):
            kind = type(event)
            added: list[Any] | None = None
            if kind is Pong:
                pongs = self._pongs[line] = self._pongs.get(line, 0) + 1
                barrier = self._barrier
                if barrier is not None:
                    want = barrier.wanted.get(line)
                    if want is not None and pongs >= want:
                        barrier.done.add(line)
                        if len(barrier.done) == len(barrier.wanted):
                            added = self._finish(barrier)
            elif kind is Subscribed:
                self._ups[line] = self._ups.get(line, 0) + 1
                if event.line is None:  # else one line of several: the stream goes on
                    self._ask("reconnect" if self._subscribed_before else "connect")
                    self._subscribed_before = True
            else:
                if hold is not None and hold(event, line):
                    if out is None:
                        out = events[:index]
                    continue  # the lines' group gives it back once it follows on
                gap = state.apply(event)
                if gap is not None:
                    added = [gap]
                    log.warning("gap in %s %s: resyncing", gap.channel, gap.key)
                    self._ask("gap")
            if added:
                if out is None:
                    out = events[:index]
                out.append(event)
                out.extend(added)
            elif out is not None:
                out.append(event)
        if session is None or not session.transport.frame_ready():
            state.publish()  # once per batch of frames read together
        return events if out is None else out

    def connection_lost(self) -> None:
        """The stream was cut (every line down): the state may miss anything."""
        self.state.mark_unsynced()
        self._barrier = None
        self._cond.notify_all()

    def line_lost(self, line: int) -> None:
        """One line of several went down: a barrier waiting for its pong cannot pass."""
        barrier = self._barrier
        if barrier is not None and line in barrier.wanted:
            self._barrier = None
            self._cond.notify_all()

    def _restart(self, generation: int, reason: str) -> NoReturn:
        """(lock held) This resync cannot finish: start it again, under the reason asked
        for meanwhile if there is one (a reconnect during a gap's resync is a reconnect: a
        consumer waits for ``Resynced("reconnect")`` after ``Disconnected``)."""
        self._barrier = None
        self.state.abandon(generation)
        self._ask(self._request or reason)
        raise _Superseded

    def _ask(self, reason: str) -> None:
        if self._request != "connect":  # the first resync keeps its name
            self._request = reason
        self._cond.notify_all()

    def _finish(self, barrier: _Barrier) -> list[Any]:
        self._barrier = None
        duration = time.monotonic() - barrier.started
        events = self.state.finish(barrier.generation, barrier.base, barrier.reason, duration)
        self.state.publish()
        if events and type(events[0]) is Resynced:
            log.info("state resynced (%s) in %.0f ms", barrier.reason, duration * 1000)
            if self.first_result is None:
                self.first_result = True
        elif events:
            log.warning("%d broadcasts during the resync do not match REST; again", len(events))
            self._ask("gap")
        self._cond.notify_all()
        return events

    # -- the resync thread ----------------------------------------------------------------------

    def run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                self._wait_for_request()
                if self._stopped():
                    return
                reason = self._request
                assert reason is not None
                self._request = None
                plan = self.state.start_fetch(reason, datetime.now(timezone.utc).date())
                self._ups_at_fetch = dict(self._ups)
            started = time.monotonic()
            try:
                answer = self._fetch(plan.from_date)
                base = build_base(plan, answer)
                self._pass_barrier(plan.generation, base, reason, started)
            except _Superseded:
                continue  # a reconnect asked for a new resync meanwhile
            except MmwsError as exc:
                if self._stopped():
                    return
                failures += 1
                fatal = isinstance(exc, AuthenticationError)
                with self._cond:
                    self.state.abandon(plan.generation)
                    if fatal and self.first_result is None:
                        self.first_result = exc
                    self._cond.notify_all()
                log.warning("state resync failed: %s%s", exc, "" if fatal else "; retrying")
                self._deliver([ResyncFailed(exc, not fatal)])
                if fatal:
                    continue  # until the next reconnect asks again
                delay = min(RETRY_CAP, self._retry_base * 2 ** min(failures - 1, 16))
                with self._cond:
                    if self._request is None:
                        self._request = reason
                        self._cond.wait(delay)  # a reconnect or close() cuts it short
                continue
            failures = 0

    def _wait_for_request(self) -> None:
        """(lock held) Until a resync is asked for, or an audit is due: every
        ``audit_interval`` seconds a synced state is checked against REST, which finds
        broadcasts missed with nothing later on the stream to reveal them."""
        interval = self._audit_interval
        due = None if interval is None else time.monotonic() + interval
        while self._request is None and not self._stopped():
            if due is None or not self.state.synced:
                self._cond.wait()
                continue
            left = due - time.monotonic()
            if left <= 0:
                self._request = AUDIT
                return
            self._cond.wait(left)

    def _fetch(self, from_date: Any) -> RestAnswer:
        rest = self.rest
        status = rest.trading_status()
        accounts = rest.accounts()
        open_orders = rest.open_orders()
        orders = rest.orders(from_date=from_date)
        bets = rest.bets(from_date=from_date)
        return RestAnswer(open_orders, orders, bets, accounts, status)

    def _pass_barrier(self, generation: int, base: Base, reason: str, started: float) -> None:
        """Ping every live line; the reader finishes the resync when the last pong arrives.
        Returns once it did."""
        with self._cond:
            if not self.state.current(generation):
                raise _Superseded
            lines = self.live_lines()
            if not lines:
                raise TransportTimeout("no line is connected")
            self._barrier = _Barrier(generation, base, reason, started, dict.fromkeys(lines))

        def send(core: ProtocolCore, line: int) -> None:
            barrier = self._barrier
            if not self.state.current(generation):
                raise _Superseded
            if barrier is None or barrier.generation != generation:
                self._restart(generation, reason)  # a line of the barrier went down
            assert barrier is not None
            if line not in barrier.wanted:
                return  # up since the barrier began: it carries nothing older
            if self._ups.get(line, 0) != self._ups_at_fetch.get(line, -1):
                # This line (re)connected after the fetch began: its pong cannot prove that
                # broadcasts sent before then have arrived (another line may still bring
                # them). The fetch starts again, once this line is among the settled ones.
                self._restart(generation, reason)
            ahead = 1 if core.keepalive.ping_outstanding_since is not None else 0
            barrier.wanted[line] = self._pongs.get(line, 0) + ahead + 1
            core.ping(time.monotonic())

        self._command(send, self._barrier_timeout)
        deadline = time.monotonic() + self._barrier_timeout
        with self._cond:
            while self._barrier is not None and self._barrier.generation == generation:
                if self._stopped():
                    raise ClientClosed("the client was closed")
                left = deadline - time.monotonic()
                if left <= 0:
                    self._barrier = None
                    raise TransportTimeout("no pong came to finish the resync")
                self._cond.wait(left)
            if self.state.current(generation):
                # the barrier's line went down while others stay up: no reconnect will ask
                # for a resync, so this one starts again
                self.state.abandon(generation)
                self._ask(self._request or reason)
        # else finished, or superseded by a reconnect (which asks for a new resync itself)


class _Superseded(MmwsError):
    """A newer resync replaced this one."""
