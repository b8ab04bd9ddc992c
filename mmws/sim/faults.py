"""Fault switches of the simulator, and how a connection is cut.

:class:`Faults` holds the switches the server threads consult; every method is thread-safe.
The :class:`~mmws.sim.Simulator` methods of the same names flip them and say what each does on
the wire:

- ``stall()`` / ``resume()``: the TCP connection stays open and nothing at all is written to
  any connection (data, heartbeats, pongs, even WebSocket-level pongs and close frames).
  Frames are **held, not dropped**: broadcasts queue up, commands received while stalled are
  answered after ``resume()`` (a ping sent during a stall gets its pong after it), and
  heartbeats are not produced at all while stalled.
- ``pause_heartbeats()`` / ``resume_heartbeats()``: MM heartbeats stop; everything else flows.
- ``delay_pongs(seconds)``: every pong (MM and feed) is sent ``seconds`` after the ping was
  read; ``math.inf`` never answers pings; ``0`` restores prompt pongs.
- ``reject_handshakes(status)``: WebSocket upgrades (both endpoints) are refused with that
  HTTP status (``Retry-After: 1`` added for 429 and 503); ``None`` stops refusing. The REST
  routes and the 426 answer to plain GETs are not affected.
- ``skip_broadcasts(count, connection_id=None)``: the next ``count`` MM broadcasts that
  would be queued to a connection are not sent to it (a gap without a disconnect); the
  ground truth (and so the REST API) still changes. Counted in ``ConnectionInfo.skipped``.
- ``duplicate_broadcasts(count)``: the next ``count`` MM broadcasts that reach at least one
  connection are queued twice to each of them (the ground truth changes once).
- ``rest_errors(status, count, retry_after)``: the next ``count`` MM REST requests
  (``/api/v1/...``, whatever their key) answer ``status`` with ``{"detail": <phrase>}``, and
  ``Retry-After`` (whole seconds, rounded up) when ``retry_after`` is given.
- ``rest_latency(seconds)``: every MM REST answer is sent ``seconds`` late (0: at once); the
  wait ends early when the simulator closes.

Faults of one connection (``connection_id`` is ``ConnectionInfo.id``; see
:meth:`~mmws.sim.Simulator.mm_connections`), for clients that hold two connections at once:

- ``delay_connection(connection_id, seconds)``: every frame queued to that connection from
  then on (broadcasts, replies, pongs, heartbeats, close frames, burst frames) is written
  ``seconds`` late, in order; ``0`` ends it for later frames. Shown in
  ``ConnectionInfo.delay``.
- ``drop_connection(connection_id, reset=True)``: cut that connection's TCP (RST or FIN)
  without a close frame, as ``drop_connections`` does to all.
- ``half_open(connection_id)``: for good, the TCP connection stays open but nothing more is
  written to it (no frame, no WebSocket-level pong, no FIN) and nothing it sends is
  answered; what was queued or held is dropped. Only a cut or ``close()`` ends it. Shown in
  ``ConnectionInfo.half_open``.

:meth:`~mmws.sim.Simulator.burst` frames are not affected by the two broadcast faults (they
are written pre-encoded, in chunks), and do not use up their counts.

:func:`abort_socket` ends a TCP connection without a WebSocket close frame: with
``reset=True`` an RST (``SO_LINGER`` 0, then close); with ``reset=False`` a FIN in both
directions (``shutdown(SHUT_RDWR)``).
"""

from __future__ import annotations

import math
import socket
import struct
import threading

__all__ = ["Faults", "abort_socket", "check_count", "check_seconds"]


class Faults:
    """The switches, shared by the server threads. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._heartbeats = True
        self._pong_delay = 0.0
        self._reject: int | None = None
        self._duplicate = 0
        self._rest_error: tuple[int, float | None] | None = None
        self._rest_errors_left = 0
        self._rest_latency = 0.0

    # -- stall ------------------------------------------------------------------------------

    @property
    def stalled(self) -> bool:
        return not self._running.is_set()

    def stall(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def wait_running(self, timeout: float | None = None) -> bool:
        """Block while stalled (up to ``timeout``); True when not stalled."""
        return self._running.wait(timeout)

    # -- heartbeats, pongs ------------------------------------------------------------------

    @property
    def heartbeats_paused(self) -> bool:
        return not self._heartbeats

    def pause_heartbeats(self) -> None:
        self._heartbeats = False

    def resume_heartbeats(self) -> None:
        self._heartbeats = True

    @property
    def pong_delay(self) -> float:
        return self._pong_delay

    def delay_pongs(self, seconds: float) -> None:
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self._pong_delay = float(seconds)

    # -- handshakes -------------------------------------------------------------------------

    @property
    def reject_status(self) -> int | None:
        return self._reject

    def reject_handshakes(self, status: int | None) -> None:
        if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
            raise ValueError(f"status must be an HTTP error status (400-599) or None: {status!r}")
        with self._lock:
            self._reject = status

    # -- broadcasts -------------------------------------------------------------------------

    def duplicate_broadcasts(self, count: int) -> None:
        check_count("count", count)
        with self._lock:
            self._duplicate = count

    def take_duplicate(self) -> bool:
        """Whether this broadcast goes out twice (uses up one of the count)."""
        with self._lock:
            if self._duplicate <= 0:
                return False
            self._duplicate -= 1
            return True

    # -- REST -------------------------------------------------------------------------------

    def rest_errors(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"status must be an int, got {type(status).__name__}")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
        check_count("count", count)
        if retry_after is not None:
            check_seconds("retry_after", retry_after)
        with self._lock:
            self._rest_error = (status, None if retry_after is None else float(retry_after))
            self._rest_errors_left = count

    def take_rest_error(self) -> tuple[int, float | None] | None:
        """The (status, retry_after) this REST request answers, or None to answer it."""
        with self._lock:
            if self._rest_errors_left <= 0:
                return None
            self._rest_errors_left -= 1
            return self._rest_error

    @property
    def rest_latency(self) -> float:
        return self._rest_latency

    def set_rest_latency(self, seconds: float) -> None:
        check_seconds("seconds", seconds)
        self._rest_latency = float(seconds)


def check_count(name: str, value: object) -> None:
    """A count argument: an int >= 0 (TypeError, ValueError naming ``name``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def check_seconds(name: str, value: object) -> None:
    """A duration argument: a finite number >= 0 (TypeError, ValueError naming ``name``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def abort_socket(sock: socket.socket, *, reset: bool = True) -> None:
    """Cut the TCP connection under a WebSocket: RST (``reset``) or FIN, no close frame."""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass
