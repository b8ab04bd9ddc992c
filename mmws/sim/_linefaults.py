"""Faults of one connection, for tests of a client that holds two connections ("lines") to
the same server at once and must survive one of them going bad while the other stays well.

Every method names its connection by ``ConnectionInfo.id``: :meth:`LineFaults.mm_connections`
lists a key's subscribed MM connections, oldest first."""

from __future__ import annotations

from mmws.errors import ConfigError
from mmws.sim._conn import _Conn
from mmws.sim._state import SimState
from mmws.sim.faults import check_seconds
from mmws.sim.mm import MMServerSession
from mmws.sim.snapshots import ConnectionInfo

__all__ = ["LineFaults"]


class LineFaults(SimState):
    """The per-connection faults of :class:`~mmws.sim.server.Simulator` (it mixes this in)."""

    def mm_connections(self, api_key: str | None = None) -> tuple[ConnectionInfo, ...]:
        """The open, subscribed MM connections of ``api_key`` (None: of every key), oldest
        first; a connection the server has cut or is closing is left out. Each one's ``id``
        names it to :meth:`delay_connection`, :meth:`drop_connection`, :meth:`half_open` and
        :meth:`skip_broadcasts`; a client that opens its connections one after the other
        (``opened_at``) finds each of its lines here in that order.

        Raises ``TypeError`` for an ``api_key`` that is not a str and
        :class:`~mmws.errors.ConfigError` for one that is not one of the simulator's keys.

        Args:
            api_key: Only this key's connections; ``None`` (the default) for every key's.
        """
        if api_key is not None:
            if not isinstance(api_key, str):
                raise TypeError(f"api_key must be a str or None, got {type(api_key).__name__}")
            if api_key not in self._api_keys:
                raise ConfigError("api_key is not one of the simulator's keys")
        with self._lock:
            conns = sorted(
                (
                    c
                    for c in self._conns.values()
                    if isinstance(c.session, MMServerSession)
                    and c.closed_at is None
                    and not c.closing
                    and c.session.subscribed
                    and (api_key is None or c.session.api_key == api_key)
                ),
                key=lambda c: (c.opened_at, c.id),
            )
            return tuple(self._info(c) for c in conns)

    def delay_connection(self, connection_id: int, seconds: float) -> None:
        """Write every frame queued to connection ``connection_id`` from now on ``seconds``
        later than it would have been: broadcasts, replies, pongs, heartbeats, close frames
        and :meth:`burst` frames, in their order (the connection's writer waits until each
        frame is due; a frame queued with a shorter delay still waits for those before it).
        Frames already queued keep their own due time; ``0`` ends the delay for the frames
        queued after the call. A :meth:`stall` holds the frames on top of their delay (a
        frame due during a stall goes out at :meth:`resume`, one due later at its due time).
        Other connections are not affected; :meth:`close`, :meth:`drop_connection` and a
        client's own close are not held up by the delay (what is still queued is then
        written at once, or dropped with the connection). WebSocket-level pongs (the answers
        to control-frame pings, written by the websockets library itself) are not delayed.
        The delay shows in ``ConnectionInfo.delay``.

        Raises ``TypeError`` / ``ValueError`` for a ``connection_id`` that is not an int or a
        ``seconds`` that is not a finite number >= 0, and :class:`~mmws.errors.ConfigError`
        when ``connection_id`` is not an open connection.

        Args:
            connection_id: The connection (see :meth:`mm_connections`).
            seconds: The extra delay of each frame queued from now on (0 ends it).
        """
        _check_id(connection_id)
        check_seconds("seconds", seconds)
        with self._lock:
            conn = self._open_conn(connection_id)
            conn.set_delay(float(seconds))
            self._changed.notify_all()

    def drop_connection(self, connection_id: int, *, reset: bool = True) -> None:
        """Cut connection ``connection_id``'s TCP without a close frame, as
        :meth:`drop_connections` does to every connection: RST (``reset``) or FIN. The
        others are not touched. Works on a delayed or half-open connection too, and returns
        at once also when the client does not read. The connection stays in
        :attr:`active_connections` (with ``closing`` True) until its server side has
        finished, a moment later.

        Raises ``TypeError`` for a ``connection_id`` that is not an int or a ``reset`` that is
        not a bool, and :class:`~mmws.errors.ConfigError` when ``connection_id`` is not an
        open connection.

        Args:
            connection_id: The connection (see :meth:`mm_connections`).
            reset: ``True`` (the default) sends RST, ``False`` a FIN.
        """
        _check_id(connection_id)
        if not isinstance(reset, bool):
            raise TypeError(f"reset must be a bool, got {type(reset).__name__}")
        with self._lock:
            conn = self._open_conn(connection_id)
        self._cut(conn, reset=reset)
        with self._changed:
            self._changed.notify_all()

    def half_open(self, connection_id: int) -> None:
        """Make connection ``connection_id`` half-open, for good: its TCP connection stays
        open but the server writes nothing more to it (no broadcasts, replies, pongs,
        heartbeats, WebSocket-level pongs or close frames, not even a FIN) and answers none
        of what it receives (messages are still recorded in ``received``), like a peer that
        vanished without a word: the client can notice only by its own keepalive. Frames
        already queued or held by a :meth:`stall` are dropped, never delivered later.
        Broadcasts skip it (without using up :meth:`skip_broadcasts` or
        :meth:`duplicate_broadcasts` counts); :meth:`close_connections` does not end it.
        :meth:`drop_connection` (or :meth:`drop_connections`) still cuts it, and
        :meth:`close` cuts it at once. Shows in ``ConnectionInfo.half_open``.

        Raises ``TypeError`` for a ``connection_id`` that is not an int and
        :class:`~mmws.errors.ConfigError` when it is not an open connection.

        Args:
            connection_id: The connection (see :meth:`mm_connections`).
        """
        _check_id(connection_id)
        with self._lock:
            conn = self._open_conn(connection_id)
            conn.go_half_open()
            self._changed.notify_all()

    def _open_conn(self, connection_id: int) -> _Conn:
        """The open connection ``connection_id`` (lock held), or ConfigError."""
        conn = self._conns.get(connection_id)
        if conn is None or conn.closed_at is not None:
            raise ConfigError(f"connection_id {connection_id} is not an open connection")
        return conn


def _check_id(connection_id: object) -> None:
    if isinstance(connection_id, bool) or not isinstance(connection_id, int):
        raise TypeError(f"connection_id must be an int, got {type(connection_id).__name__}")
