"""Hot standby: ``MMClient(lines=2)`` keeps several live connections ("lines") and merges
them into one stream (see :mod:`mmws.mm._arbiter` for the arbitration).

Each line is an ordinary single-connection client engine with its own reader, keepalive and
writer threads (named ``mmws-reader-0``, ``mmws-reader-1`` ...), its own backoff and its own
reconnects. They share the outer client's queue through :class:`_LineQueue`: each batch a
line's reader delivers goes through :meth:`LineGroup.deliver`, which, under a delivery lock
(so the queue holds first copies in the order they came) and then the outer client's lock:

- lets a broadcast through only if its line brought it first (:class:`Arbiter`);
- marks a line up at its ``Subscribed``; the stream is up again when the first line is;
- applies what goes through to the state cache (``state=True``), whose resync barrier
  pings go out on every live line and whose pongs are marked in order by each line's
  decode step (``_event_filter``);
- with the state cache, holds back a first copy that does not follow on from its order,
  bet or account (its line skipped the broadcast before it) for up to ``hold`` seconds,
  while another line is up: when that line brings the missing broadcast, both go out in
  the server's order. A copy still held at its deadline goes out and shows the gap. The
  ``mmws-hold`` thread gives back what waits when no frame arrives.

Locks are taken in one order: a line's lock, the delivery lock, the outer lock.

Lifecycle events of one line carry ``line``; they reach the queue only with
``line_events=True``. The stream's own ``Connected``/``Subscribed``/``Disconnected`` (with
``line=None``) mark the moments when the first line came up and when every line was down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from mmws._backoff import classify
from mmws._delivery import EventQueue
from mmws._session import Health, LineHealth, ProtocolCore, Session
from mmws.errors import AuthenticationError, ClientClosed, MmwsError, TransportTimeout
from mmws.lifecycle import Closed, Connected, Disconnected, Reconnecting, Stale, UnknownMessage
from mmws.mm._arbiter import Arbiter
from mmws.mm.events import (
    AccountEvent,
    BetEvent,
    EmergencyEvent,
    OrderEvent,
    Pong,
    ScoreEvent,
    Subscribed,
)
from mmws.mm.state import entity_of

if TYPE_CHECKING:
    from mmws.mm._engine import MMEngine
    from mmws.mm._resync import StateKeeper

__all__ = ["LineGroup"]

log = logging.getLogger("mmws.client")

_ARBITRATED = frozenset({OrderEvent, BetEvent, AccountEvent, ScoreEvent, EmergencyEvent,
                         UnknownMessage})  # fmt: skip
_LINE_EVENTS = (Connected, Subscribed, Disconnected, Reconnecting, Stale)
_PONG_MARK: Any = object()  # a pong arrived here, in order with the line's broadcasts
_BARRIER_PONG = Pong()  # what the state keeper is shown for it


class _LineQueue:
    """What a line client sees as its queue: the outer queue, with line events sorted out."""

    def __init__(self, group: LineGroup, line: int, queue: EventQueue) -> None:
        self._group = group
        self._line = line
        self._queue = queue

    def put_many(self, events: Sequence[Any]) -> bool:
        return self._group.deliver(self._line, list(events))

    def put_control(self, event: Any) -> None:
        self._group.control(self._line, event)

    def abort_producers(self) -> None:
        self._queue.abort_producers()

    def close(self, error: MmwsError | None = None) -> None:
        pass  # the outer client closes the queue

    def qsize(self) -> int:
        return self._queue.qsize()

    def dropped_counts(self) -> Any:
        return self._queue.dropped_counts()

    @property
    def producer_blocked(self) -> bool:
        return self._queue.producer_blocked

    @property
    def last_unblocked(self) -> float:
        return self._queue.last_unblocked


class LineGroup:
    """The lines of one outer client (see the module docstring)."""

    def __init__(
        self,
        outer: MMEngine,
        lines: Sequence[MMEngine],
        keeper: StateKeeper | None,
        *,
        line_events: bool,
        window: float,
        hold: float = 0.0,
    ) -> None:
        self._outer = outer
        self.lines = tuple(lines)
        self._keeper = keeper
        self._line_events = line_events
        self._lock = outer._lock  # the outer client's: also the state keeper's
        self._deliver_lock = threading.Lock()  # taken before _lock, never after
        self.arbiter = Arbiter(len(lines), window)
        self._up = [False] * len(lines)
        self._ever_up = False
        self._all_down_by: int | None = None  # the line whose loss cut the stream
        self.failovers = 0
        self.reconnects = 0  # of the stream: every line had been down
        self._connectors: list[threading.Thread] = []
        self._hold = hold
        self._waiting: list[tuple[float, int, Any, tuple[str, Any]]] = []  # arrival order
        self._releasing = False
        self.held = 0  # first copies held back until their predecessor came
        self._wake = threading.Event()
        self._holder: threading.Thread | None = None
        if keeper is not None:
            keeper.live_lines = self._live
            if hold > 0:
                keeper.hold = self._maybe_hold
        for index, line in enumerate(self.lines):
            line._queue = _LineQueue(self, index, outer._queue)  # type: ignore[assignment]
            line._event_filter = self._filter_for(index)
            line._line_hook = self._lost_for(index)
            line._thread_suffix = f"-{index}"

    # -- connecting and closing ---------------------------------------------------------------

    def connect(self) -> None:
        """Connect line 0 here (its errors are the caller's), the others in the background:
        returns once one line is subscribed."""
        self.lines[0].connect()
        if self._keeper is not None and self._hold > 0:
            self._holder = threading.Thread(target=self._hold_loop, name="mmws-hold", daemon=True)
            self._holder.start()
        for index, line in enumerate(self.lines[1:], 1):
            thread = threading.Thread(
                target=self._connect_line, args=(line,), name=f"mmws-connect-{index}",
                daemon=True,
            )  # fmt: skip
            self._connectors.append(thread)
            thread.start()

    def _connect_line(self, line: MMEngine) -> None:
        while not self._outer._stop.is_set():
            try:
                line.connect()
                return
            except AuthenticationError as exc:
                log.error("a standby line was refused for good: %s", exc)
                return
            except (ClientClosed, MmwsError) as exc:
                if self._outer._stop.is_set() or isinstance(exc, ClientClosed):
                    return
                delay = line._backoff.next_delay(classify(exc)) + line._stagger
                log.warning("standby line could not connect (%s); again in %.2f s", exc, delay)
                if self._outer._stop.wait(delay):
                    return

    def close(self, deadline: float) -> None:
        self._wake.set()  # the outer client's stop is set: the hold thread ends
        for line in self.lines:
            line.close(timeout=max(0.05, deadline - time.monotonic()))
        threads = [*self._connectors, *([self._holder] if self._holder else [])]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- the readers of the lines -------------------------------------------------------------

    def _filter_for(self, line: int) -> Callable[[Session, list[Any]], list[Any]]:
        """A line's decode step: marks each pong, so that :meth:`deliver` sees it in order
        with the broadcasts (the read loop keeps pongs out of the batches it delivers)."""

        def filter_events(session: Session, events: list[Any]) -> list[Any]:
            if not any(type(e) is Pong for e in events):
                return events
            out: list[Any] = []
            for event in events:
                out.append(event)
                if type(event) is Pong:
                    out.append(_PONG_MARK)
            return out

        return filter_events

    def deliver(self, line: int, events: list[Any]) -> bool:
        """A line's batch, from its reader: arbitrated, applied to the state and queued in
        one step per batch, so the queue holds first copies in the order they came (the
        delivery lock), while ``health()`` and the state's readers only wait for the
        short bookkeeping (the outer lock), never for a full queue."""
        with self._deliver_lock:
            with self._lock:
                out = self._sort(line, events)
            return self._outer._queue.put_many(out) if out else True

    def _sort(self, line: int, events: list[Any]) -> list[Any]:
        now = time.monotonic()
        out: list[Any] = []
        accept = self.arbiter.accept
        stream = False
        pongs: list[Any] = []
        for event in events:
            kind = type(event)
            if kind in _ARBITRATED:
                if accept(line, hash(event), now):
                    out.append(event)
            elif event is _PONG_MARK:
                out.append(_BARRIER_PONG)
            elif kind is Pong:
                pongs.append(event)  # delivered (deliver_keepalive), not counted twice
            elif kind is Subscribed:
                event = self._line_subscribed(line, event, now)
                stream = stream or event.line is None
                out.append(event)
            else:
                out.append(event)
        if self._keeper is not None:
            out = self._keeper.on_events(None, out, line)
            if self._waiting:
                out.extend(self._release(now))
        kept: list[Any] = []
        for event in out:
            if event is _BARRIER_PONG:
                continue
            if type(event) is Connected and not stream:
                event = attrs.evolve(event, line=line)
            if isinstance(event, _LINE_EVENTS) and event.line is not None and not (
                self._line_events
            ):
                continue
            kept.append(event)
        kept.extend(pongs)
        behind = self.arbiter.behind
        if behind:
            self._replace_lagging(behind)
        return kept

    # -- holding back a copy that does not follow on ------------------------------------------

    def _maybe_hold(self, event: Any, line: int) -> bool:
        """The state keeper asks, before applying a first copy (lock held): keep it back?"""
        if self._releasing or not self._others_up(line):
            return False
        entity = entity_of(event)
        if entity is None or self._keeper is None or self._keeper.state.gap_of(event) is None:
            return False
        self._waiting.append((time.monotonic() + self._hold, line, event, entity))
        self.held += 1
        self._wake.set()
        return True

    def _others_up(self, line: int) -> bool:
        return any(up for index, up in enumerate(self._up) if index != line)

    def _release(self, now: float) -> list[Any]:
        """Give back (applied, in arrival order per entity) each held copy that now follows
        on, whose deadline passed, or that no other line can complete (lock held)."""
        keeper = self._keeper
        assert keeper is not None
        out: list[Any] = []
        progress = True
        while progress and self._waiting:
            progress = False
            blocked: set[tuple[str, Any]] = set()
            for item in list(self._waiting):
                deadline, line, event, entity = item
                if entity in blocked:
                    continue
                if (deadline <= now or not self._others_up(line)
                        or keeper.state.gap_of(event) is None):  # fmt: skip
                    self._waiting.remove(item)
                    self._releasing = True
                    try:
                        out.extend(keeper.on_events(None, [event], line))
                    finally:
                        self._releasing = False
                    progress = True
                else:
                    blocked.add(entity)
        return out

    def _hold_loop(self) -> None:
        """Thread ``mmws-hold``: gives back held copies at their deadline, or when the line
        that could complete them goes down, even if no frame arrives."""
        stop = self._outer._stop
        while not stop.is_set():
            with self._lock:
                deadline = self._waiting[0][0] if self._waiting else None
            self._wake.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            self._wake.clear()
            if stop.is_set():
                return
            with self._deliver_lock:
                with self._lock:
                    out = self._release(time.monotonic()) if self._waiting else []
                if out:
                    self._outer._queue.put_many(out)

    # -- lines up and down ------------------------------------------------------------------------

    def _line_subscribed(self, line: int, event: Subscribed, now: float) -> Subscribed:
        first = not any(self._up)
        self._up[line] = True
        self.arbiter.line_up(line, now)
        if first:  # the stream is up (again): the stream's own event
            if self._ever_up:
                self.reconnects += 1
            self._ever_up = True
            return event
        return attrs.evolve(event, line=line)

    def _lost_for(self, line: int) -> Callable[[], None]:
        def lost() -> None:
            with self._lock:
                self._line_lost(line)

        return lost

    def _line_lost(self, line: int) -> None:
        if not self._up[line]:
            return
        self._up[line] = False
        self.arbiter.line_down(line)
        if self._waiting:
            self._wake.set()  # what waits for this line alone goes out now
        if self._keeper is not None:
            self._keeper.line_lost(line)
        if any(self._up):
            self.failovers += 1
            log.warning("line %d lost; the stream goes on on the others", line)
        else:
            self._all_down_by = line
            if self._keeper is not None:
                self._keeper.connection_lost()

    def _replace_lagging(self, behind: set[int]) -> None:
        for line in sorted(behind):
            session = self.lines[line]._session
            log.warning("line %d is further behind than %.0f s; replacing its connection",
                        line, self.arbiter.window)  # fmt: skip
            if session is not None:
                session.dead = TransportTimeout("the line fell behind the others")
                session.transport.abort()
        behind.clear()

    # -- what the lines put into the queue ----------------------------------------------------

    def control(self, line: int, event: Any) -> None:
        kind = type(event)
        if kind is Closed:
            if event.error is not None and not self._outer._closing:
                self._outer._fatal_line(event.error)
            return
        if kind is Disconnected:
            with self._lock:
                stream = self._all_down_by == line
                if stream:
                    self._all_down_by = None
            if stream and not self._outer._closing:
                self._outer._queue.put_control(event)
                return
        if self._line_events and not self._outer._closing:
            self._outer._queue.put_control(attrs.evolve(event, line=line))

    # -- commands, health -----------------------------------------------------------------------

    def command(self, send: Callable[[ProtocolCore, int], None], timeout: float | None) -> None:
        """Run ``send`` on the core of every live line, one after the other (the state
        keeper's barrier pings)."""
        with self._lock:
            live = self._live()
        if not live:
            raise TransportTimeout("no line is connected")
        for line in live:

            def on_core(core: ProtocolCore, line: int = line) -> None:
                with self._lock:
                    send(core, line)

            self.lines[line]._paced_command(on_core, timeout)

    def _live(self) -> list[int]:
        return [index for index, up in enumerate(self._up) if up]

    def live_line(self) -> MMEngine:
        with self._lock:
            live = [index for index, up in enumerate(self._up) if up]
        if not live:
            raise TransportTimeout("no line is connected")
        return self.lines[live[0]]

    def health(self, base: Health) -> Health:
        per_line = []
        owns = [line.health() for line in self.lines]
        for index, own in enumerate(owns):
            with self._lock:
                arbiter = self.arbiter
                per_line.append(
                    LineHealth(
                        line=index,
                        state=own.state,
                        url=own.url,
                        last_rtt=own.last_rtt,
                        reconnects=own.reconnects,
                        accepted=arbiter.accepted[index],
                        duplicates=arbiter.duplicates[index],
                        lag=arbiter.lag[index],
                    )
                )
        states = [h.state for h in per_line]
        best = next((s for s in ("connected", "reconnecting", "connecting") if s in states),
                    base.state)  # fmt: skip
        rtts = [h.last_rtt for h in per_line if h.last_rtt is not None]
        first = owns[0]
        return attrs.evolve(
            base,
            state=best,
            url=first.url,
            connected_since=first.connected_since,
            last_message_at=max(
                (h.last_message_at for h in owns if h.last_message_at is not None),
                default=None,
            ),
            last_rtt=min(rtts) if rtts else None,
            reconnects=self.reconnects,
            subscriptions=first.subscriptions,
            lines=tuple(per_line),
            failovers=self.failovers,
            held=self.held,
        )
