"""One simulator connection: the websockets connection with stall hold and raw writes, and
the per-connection state its reader and writer threads share."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import attrs
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.sync.server import ServerConnection

from mmws.sim.actions import Action, Close
from mmws.sim.feed import (
    FeedServerSession,
)
from mmws.sim.mm import MMServerSession
from mmws.sim.snapshots import ReceivedMessage

logger = logging.getLogger("mmws.sim")

__all__ = [
    "API_PREFIX",
    "CHUNK",
    "DETAIL_426",
    "FEED_PATHS",
    "HEARTBEAT",
    "MM_PATH",
    "MM_PONG",
]

MM_PATH: Final = "/ws/subscribe"
API_PREFIX: Final = "/api/v1"  # the MM REST API (mmws.sim._rest)
FEED_PATHS: Final = ("/", "/feed")
DETAIL_426: Final = (
    "This endpoint requires a WebSocket connection. Use ws://host:port/ws/subscribe"
)
HEARTBEAT: Final = '{"type":"heartbeat"}'
MM_PONG: Final = '{"type":"pong"}'
CHUNK: Final = 256 * 1024


# -- websockets connection with stall hold and raw writes -----------------------------------


class _SimConnection(ServerConnection):
    """websockets' server connection, plus: everything written while ``hold()`` is true is
    held in memory (this covers websockets' own pongs and close frames, so a stall is total),
    everything written once ``discard`` is set is dropped, held data included (a half-open
    connection: nothing more reaches the client, not even a FIN), and :meth:`send_encoded`
    writes pre-encoded frames."""

    def __init__(
        self, sock: socket.socket, protocol: ServerProtocol, *args: Any, **kwargs: Any
    ) -> None:
        # websockets 17+ passes the Server positionally after the protocol; 13 to 16 do not.
        self.hold: Callable[[], bool] | None = None
        self.discard = False
        self._held: list[bytes] = []
        super().__init__(sock, protocol, *args, **kwargs)
        self.recv_events_thread.name = threading.current_thread().name.replace("-conn-", "-recv-")

    def close_socket(self) -> None:
        try:
            super().close_socket()
        except AssertionError:
            # websockets 13 asserts that the protocol is CLOSED here, which is not true after
            # a refused handshake; finish what close_socket() does after that check.
            self.recv_messages.close()

    def send_data(self) -> None:
        if self.discard:
            self.protocol.data_to_send()  # taken out of the protocol's buffer and dropped
            self._held.clear()
            return
        hold = self.hold
        if hold is not None and hold():
            self._held.extend(self.protocol.data_to_send())
            return
        if self._held:
            self._flush_held()
        super().send_data()

    def flush_held(self) -> None:
        """Write what was held during a stall. Only the connection's writer thread calls it
        (after a resume): it may block as long as the client does not read."""
        with self.protocol_mutex:
            try:
                self._flush_held()
            except OSError:
                pass

    def send_encoded(self, data: bytes) -> bool:
        """Write complete pre-encoded frames; False if the connection is not open."""
        with self.protocol_mutex:
            if self.protocol.state is not OPEN:
                return False
            if self.discard:
                self._held.clear()
                return True
            hold = self.hold
            if hold is not None and hold():
                self._held.append(data)
                return True
            if self._held:
                self._flush_held()
            self.socket.sendall(data)
            return True

    def _flush_held(self) -> None:
        held, self._held = self._held, []
        if self.discard:
            return
        for data in held:
            if data:
                self.socket.sendall(data)
            else:
                try:
                    self.socket.shutdown(socket.SHUT_WR)
                except OSError:
                    pass


# -- per-connection state and writer ---------------------------------------------------------


@attrs.frozen
class _Raw:
    data: bytes
    frames: int
    tally: _Tally


@attrs.frozen
class _Marker:
    done: threading.Event


class _Stop:
    pass


class _Flush:
    """Write what was held during a stall (queued in front by resume() and close())."""


_STOP: Final = _Stop()
_FLUSH: Final = _Flush()
_Item = str | _Raw | _Marker | Close | _Stop | _Flush
_FRAMES: Final = (str, _Raw, Close)  # what reaches the client; the rest is bookkeeping


class _Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frames = 0

    def add(self, frames: int) -> None:
        with self.lock:
            self.frames += frames


class _Conn:
    """Mutable state of one open connection; the simulator's lock guards the counters."""

    def __init__(
        self,
        cid: int,
        ws: _SimConnection,
        endpoint: str,
        session: MMServerSession | FeedServerSession,
        path: str,
        max_recorded: int,
    ) -> None:
        self.id = cid
        self.ws = ws
        self.endpoint = endpoint
        self.session = session
        self.path = path
        self.opened_at = time.monotonic()
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self.received: deque[ReceivedMessage] = deque(maxlen=max_recorded)
        self.frames_sent = 0
        self.skip = 0  # broadcasts still to leave out (skip_broadcasts); the sim lock guards
        self.skipped = 0
        self.closing = False
        self.sending = False
        self.dead = False
        self.stopping = False
        self.delay = 0.0  # added to every frame's due time (delay_connection); cond guards
        self.half_open = False  # nothing more is written, nothing read is answered
        # (due time, item): the writer takes the head once it is due, so order is kept.
        self.queue: deque[tuple[float, _Item]] = deque()
        self.cond = threading.Condition(threading.Lock())
        self.writer: threading.Thread | None = None
        self.first: list[Action] = []  # sent as soon as the connection is open

    def die(self) -> None:
        """No more writes: later items are refused, queued markers released."""
        with self.cond:
            self.dead = True
            rest = [item for _, item in self.queue]
            self.queue.clear()
        for left in rest:
            if isinstance(left, _Marker):
                left.done.set()

    def enqueue(self, item: _Item, limit: float) -> bool:
        """Queue ``item`` for the writer; False if the connection is gone or half-open (a
        marker is then released at once). Past ``limit`` queued items the connection is
        closed. A frame is due ``delay`` seconds from now (the writer waits until then)."""
        with self.cond:
            due = time.monotonic() + self.delay if self.delay else 0.0
            if self.dead or (self.half_open and not isinstance(item, (_Stop, _Flush))):
                if isinstance(item, _Marker):
                    item.done.set()
                return False
            if len(self.queue) >= limit and not self.closing:
                self.closing = True
                self.queue.clear()
                self.queue.append((due, Close(1008, "send queue overflow")))
                self.cond.notify()
                return False
            self.queue.append((due if isinstance(item, _FRAMES) else 0.0, item))
            self.cond.notify()
            return True

    def next_item(self, stalled: Callable[[], bool], ending: Callable[[], bool]) -> _Item:
        """The writer's next item, once it is due: waits while the queue is empty, while
        ``stalled()`` (a stall holds everything) and until the head's due time. Once the
        connection or the simulator is ending (``stopping``, ``ending()``) neither a stall nor
        a due time holds anything back (so a close or a cut is never held up by a delay).
        Every wait is on the condition, which each enqueue, flush request and wake ends."""
        with self.cond:
            while True:
                hurry = self.stopping or ending()
                if self.queue and (hurry or not stalled()):
                    due, item = self.queue[0]
                    wait = 0.0 if hurry else due - time.monotonic()
                    if wait <= 0:
                        self.queue.popleft()
                        return item
                    self.cond.wait(wait)
                else:
                    self.cond.wait()

    def set_delay(self, seconds: float) -> None:
        """Delay the frames queued from now on by ``seconds`` (those queued keep theirs)."""
        with self.cond:
            self.delay = seconds

    def go_half_open(self) -> None:
        """Write nothing more, ever: what is queued or held is dropped (markers released),
        later frames are refused; the writer still takes its stop and flush items."""
        self.ws.discard = True
        with self.cond:
            self.half_open = True
            kept: deque[tuple[float, _Item]] = deque()
            dropped = []
            for due, item in self.queue:
                if isinstance(item, (_Stop, _Flush)):
                    kept.append((due, item))
                else:
                    dropped.append(item)
            self.queue = kept
            self.cond.notify_all()
        for item in dropped:
            if isinstance(item, _Marker):
                item.done.set()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def request_flush(self) -> None:
        """Have the writer write what was held during a stall before anything queued. The
        caller never touches the socket, so it cannot block behind a client that does not
        read (the writer may)."""
        with self.cond:
            if not self.dead:
                self.queue.appendleft((0.0, _FLUSH))
            self.cond.notify_all()


