"""The simulator's machinery: the accept loop, per-connection reader and writer threads,
delivery to subscribers, the timer and the scenario pacing."""

from __future__ import annotations

import json
import logging
import math
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.sync.server import Server, ServerConnection, serve

from mmws._secret import redact_url
from mmws.sim._conn import (
    _STOP,
    CHUNK,
    HEARTBEAT,
    MM_PONG,
    _Conn,
    _Flush,
    _Marker,
    _Raw,
    _SimConnection,
    _Stop,
    _Tally,
)
from mmws.sim._logfilter import MIN_SECRET, WS_LOGGER
from mmws.sim._state import SimState
from mmws.sim.actions import Action, Close, Pong, Send, encode
from mmws.sim.faults import abort_socket
from mmws.sim.feed import (
    PLANS,
    FeedServerSession,
    connection_limit,
    render,
    topic_keys,
)
from mmws.sim.mm import MMServerSession
from mmws.sim.scenario import FeedUpdate
from mmws.sim.snapshots import ConnectionInfo, ReceivedMessage

logger = logging.getLogger("mmws.sim")

__all__ = ["Hub"]


class _Listener:
    def __init__(self, sock: socket.socket, server: Server) -> None:
        self.sock = sock
        self.server = server
        self.wake_r, self.wake_w = socket.socketpair()
        self.stopping = False
        self.thread: threading.Thread | None = None

    def close(self) -> None:
        self.stopping = True
        # websockets 17+ refuses handshakes in progress once this is set; older releases
        # have no such flag (their connection threads finish their handshakes).
        socket_closed = getattr(self.server, "socket_closed", None)
        if socket_closed is not None:
            socket_closed.set()
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass
        if self.thread is not None:
            self.thread.join(5.0)
        for sock in (self.sock, self.wake_r, self.wake_w):
            sock.close()
        # The server's own shutdown pair (unused: we run our accept loop): a socketpair
        # in websockets 17+, a pipe (two fds) before.
        end: Any
        for end in (self.server.shutdown_watcher, self.server.shutdown_notifier):
            if isinstance(end, int):
                os.close(end)
            else:
                end.close()


class _Registry:
    """The MM key registry the sessions see (:class:`mmws.sim.mm.Registry`)."""

    def __init__(self, sim: Hub) -> None:
        self._sim = sim

    def client_for(self, api_key: str) -> str | None:
        sim = self._sim
        return None if api_key in sim._revoked else sim._api_keys.get(api_key)

    def bind(self, session: MMServerSession, api_key: str) -> int | None:
        return self._sim._bind(session, api_key)


class Hub(SimState):
    """The connection machinery of :class:`~mmws.sim.server.Simulator` (it mixes this in)."""

    def _note_secret(self, secret: str) -> None:
        """Have the log filter hide ``secret`` (an issued feed token) too. Holds the lock."""
        if len(secret) >= MIN_SECRET and secret not in self._secrets:
            self._secrets = self._secrets | {secret}

    def _bind(self, session: MMServerSession, api_key: str) -> int | None:
        with self._changed:
            if session.api_key != api_key:
                live = sum(
                    1
                    for c in self._conns.values()
                    if isinstance(c.session, MMServerSession)
                    and c.session is not session
                    and c.session.api_key == api_key
                    and not c.closing
                )
                if live >= self.max_connections_per_key:
                    return None
                session.api_key = api_key
                session.client = self._api_keys[api_key]
                session.subscription_id = next(self._sub_ids)
            session.subscribed = True
            session.ever_subscribed = True
            self._changed.notify_all()
            return session.subscription_id

    def _spawn(self, target: Callable[[], object], name: str) -> threading.Thread:
        def run() -> None:
            try:
                target()
            finally:
                with self._changed:
                    self._threads.discard(threading.current_thread())
                    self._changed.notify_all()

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def _start_listener(self, initial: bool = False) -> int:
        """Listen on ``host:port``; the port (0 if listening again failed)."""
        try:
            sock = socket.create_server((self.host, self.port))
        except OSError:
            if initial:
                raise
            logger.exception("simulator could not listen again on port %s", self.port)
            return 0
        sock.setblocking(False)
        server = serve(
            self._on_connection,
            sock=sock,
            process_request=self._process_request,
            server_header="mmws-sim",
            compression=None,
            open_timeout=self.open_timeout,
            ping_interval=None,
            ping_timeout=None,
            close_timeout=self.close_timeout,
            max_size=self.max_size,
            logger=WS_LOGGER,
            create_connection=_SimConnection,
            ssl=self.ssl_context,
        )
        # With TLS, websockets wraps the listening socket; accept from the wrapped one so
        # every connection gets its TLS handshake in the connection thread.
        listener = _Listener(server.socket, server)
        listener.thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name="mmws-sim-accept", daemon=True
        )
        with self._changed:
            self._listener = listener
            self._threads.add(listener.thread)
            self._changed.notify_all()
        listener.thread.start()
        port: int = listener.sock.getsockname()[1]
        return port

    def _stop_listener(self) -> None:
        with self._changed:
            listener, self._listener = self._listener, None
            self._changed.notify_all()
        if listener is not None:
            listener.close()

    def _accept_loop(self, listener: _Listener) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(listener.sock, selectors.EVENT_READ)
            selector.register(listener.wake_r, selectors.EVENT_READ)
            while True:
                selector.select()
                if listener.stopping:
                    break
                try:
                    sock, addr = listener.sock.accept()
                except BlockingIOError:
                    continue
                except OSError:
                    break
                sock.setblocking(True)
                cid = next(self._ids)
                thread = threading.Thread(
                    target=self._run_connection,
                    args=(listener.server, sock, addr, cid),
                    name=f"mmws-sim-conn-{cid}",
                    daemon=True,
                )
                with self._lock:
                    self._threads.add(thread)
                    self._handshaking[cid] = sock
                thread.start()
        finally:
            selector.close()
            with self._changed:
                self._threads.discard(threading.current_thread())
                self._changed.notify_all()

    def _run_connection(
        self, server: Server, sock: socket.socket, addr: Any, cid: int
    ) -> None:
        self._local.conn_id = cid
        try:
            server.handler(sock, addr)
        finally:
            with self._changed:
                self._handshaking.pop(cid, None)
                self._threads.discard(threading.current_thread())
                conn = self._conns.get(cid)
                if conn is not None and conn.writer is None:
                    # Accepted, but the handshake did not finish (the client went away, or
                    # the simulator was cut or closed meanwhile): it was never open.
                    self._conns.pop(cid)
                    conn.closing = True
                    conn.closed_at = time.monotonic()
                    self._forget_closed()
                    conn.die()
                self._changed.notify_all()

    def _accept(
        self,
        ws: ServerConnection,
        request: Request,
        endpoint: str,
        token: str,
        plan: str = "",
    ) -> None:
        """Count the connection from the moment its upgrade is accepted, before the 101 goes
        out: when a client's connect returns, the connection is in ``active_connections``,
        ``stats`` and the per-key/per-token limits."""
        assert isinstance(ws, _SimConnection)
        cid: int = self._local.conn_id
        session: MMServerSession | FeedServerSession
        if endpoint == "mm":
            session = MMServerSession(
                self._registry,
                legacy_field_names=self.legacy_field_names,
                send_error_frames=self.send_error_frames,
                error_close_code=self.error_close_code,
            )
        else:
            session = FeedServerSession(
                token,
                PLANS[plan],
                max_subscriptions=self.feed_max_subscribe_per_connection,
                max_commands_per_second=self.feed_max_commands_per_second,
                max_recorded=self.max_recorded_messages,
            )
        conn = _Conn(
            cid, ws, endpoint, session, redact_url(request.path), self.max_recorded_messages
        )
        with self._changed:
            if endpoint == "feed":
                live = sum(
                    1
                    for c in self._conns.values()
                    if isinstance(c.session, FeedServerSession) and c.session.token == token
                )
                if live >= self.feed_max_connections:
                    conn.first = connection_limit(self.feed_max_connections)
            self._conns[cid] = conn
            self._history.append(conn)
            self._opened += 1
            self._changed.notify_all()

    def _on_connection(self, ws: ServerConnection) -> None:
        assert isinstance(ws, _SimConnection)
        cid: int = self._local.conn_id
        with self._changed:
            conn = self._conns.get(cid)
            if conn is None or self._closed:
                return  # cut during the handshake, or the simulator is closing
            ws.hold = lambda: self._faults.stalled
            self._handshaking.pop(cid, None)
            conn.writer = threading.Thread(
                target=self._write_loop, args=(conn,), name=f"mmws-sim-send-{cid}", daemon=True
            )
            self._threads.add(conn.writer)
            self._changed.notify_all()
        threading.current_thread().name = f"mmws-sim-conn-{cid}"
        conn.writer.start()
        try:
            for action in conn.first:
                self._apply(conn, action)
            self._read_loop(conn)
        finally:
            conn.stopping = True
            conn.enqueue(_STOP, math.inf)
            conn.writer.join(self.close_timeout + 1.0)
            with self._changed:
                conn.closed_at = time.monotonic()
                conn.close_code = ws.protocol.close_code
                self._conns.pop(cid, None)
                self._forget_closed()
                self._changed.notify_all()

    def _forget_closed(self) -> None:
        """Keep the last ``max_closed_connections`` closed connections (lock held)."""
        self._closed_in_history += 1
        excess = self._closed_in_history - self.max_closed_connections
        if excess <= 0:
            return
        kept: list[_Conn] = []
        for c in self._history:
            if excess > 0 and c.closed_at is not None:
                excess -= 1
                self._closed_in_history -= 1
            else:
                kept.append(c)
        self._history = kept

    def _read_loop(self, conn: _Conn) -> None:
        ws = conn.ws
        session = conn.session
        deadline = None
        if isinstance(session, MMServerSession) and self.auth_timeout is not None:
            deadline = conn.opened_at + self.auth_timeout
        while True:
            timeout = None
            if deadline is not None:
                assert isinstance(session, MMServerSession)
                if session.ever_subscribed:
                    deadline = None
                else:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        deadline = timeout = None
                        if not conn.closing:
                            reason = "Authentication timeout"
                            self._apply(conn, Close(self.error_close_code, reason))
            try:
                data = ws.recv(timeout)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            now = time.monotonic()
            record = ReceivedMessage(conn.id, data, now)
            if record.size > self.max_recorded_size:
                record = ReceivedMessage(conn.id, data[:256], now, record.size, True)
            with self._changed:
                conn.received.append(record)
                self._commands += 1
                self._changed.notify_all()
            if conn.half_open:
                continue  # read, recorded, never answered
            self._faults.wait_running()
            if conn.closing:
                continue
            # Under the lock: a subscribe's reply is queued before the first broadcast or
            # update that the new subscription lets through (deliveries pick their targets
            # under this lock).
            with self._lock:
                if isinstance(session, MMServerSession):
                    actions = session.receive(data)
                else:
                    actions = session.receive(data, now)
                for action in actions:
                    self._apply(conn, action)

    def _apply(self, conn: _Conn, action: Action) -> None:
        limit = self.max_send_queue
        if isinstance(action, Send):
            conn.enqueue(action.text, limit)
        elif isinstance(action, Pong):
            delay = self._faults.pong_delay
            if delay == 0:
                conn.enqueue(self._pong_text(conn), limit)
            elif math.isfinite(delay):
                self._timer.call_later(
                    delay, lambda: conn.enqueue(self._pong_text(conn), limit)
                )
        else:
            conn.closing = True
            conn.enqueue(action, limit + 1)

    @staticmethod
    def _pong_text(conn: _Conn) -> str:
        if conn.endpoint == "mm":
            return MM_PONG
        return encode({"type": "pong", "ts": int(time.time() * 1000)})

    def _write_loop(self, conn: _Conn) -> None:
        ws = conn.ws
        faults = self._faults
        while True:
            item = conn.next_item(lambda: faults.stalled, self._stop.is_set)
            if isinstance(item, _Stop):
                break
            if isinstance(item, _Marker):
                item.done.set()
                continue
            if isinstance(item, _Flush):
                conn.sending = True
                try:
                    ws.flush_held()
                finally:
                    conn.sending = False
                continue
            frames = 0
            try:
                conn.sending = True
                if isinstance(item, str):
                    ws.send(item)
                    frames = 1
                elif isinstance(item, _Raw):
                    if not ws.send_encoded(item.data):
                        break
                    frames = item.frames
                    item.tally.add(frames)
                else:
                    ws.close(item.code, item.reason)
            except (ConnectionClosed, OSError):
                break
            finally:
                conn.sending = False
            if frames:
                with self._changed:
                    conn.frames_sent += frames
                    self._frames_sent += frames
                    self._changed.notify_all()
        conn.die()

    def _cut(self, conn: _Conn, *, reset: bool, force: bool = False) -> None:
        """Cut the TCP connection: RST (``reset``) or FIN. Never blocks for long, also when a
        thread is stuck writing to a client that does not read: that thread holds the
        connection's protocol lock in ``sendall``, which only ``shutdown()`` wakes up
        (closing the socket does not). ``force``: shut down first without asking."""
        conn.closing = True
        ws = conn.ws
        sock = ws.socket
        if not reset:
            abort_socket(sock, reset=False)
            return
        mutex = ws.protocol_mutex
        if not force and not conn.sending and mutex.acquire(timeout=0.05):
            # Nobody is writing (they all hold the lock): the close sends the RST now. The
            # reader may be blocked in recv(), which keeps the socket open past close() on
            # Linux: SHUT_RD wakes it without sending anything to the client.
            try:
                abort_socket(sock, reset=True)
                try:
                    sock.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
                sock.close()
            finally:
                mutex.release()
        else:
            abort_socket(sock, reset=False)  # wakes a blocked sendall; then RST on close
            abort_socket(sock, reset=True)
        ws.close_socket()

    def _any_subscriber(self, endpoint: str) -> bool:
        with self._lock:
            for c in self._conns.values():
                if c.endpoint != endpoint or c.closing:
                    continue
                session = c.session
                if isinstance(session, MMServerSession) and session.subscribed:
                    return True
                if endpoint == "feed" and getattr(session, "topics", None):
                    return True
        return False

    def _open_conns(self) -> list[_Conn]:
        with self._lock:
            return list(self._conns.values())

    def _feed_conns(self) -> list[_Conn]:
        with self._lock:
            return [c for c in self._conns.values() if c.endpoint == "feed" and not c.closing]

    def _all_subscribers(self, key: str) -> list[_Conn]:
        with self._lock:
            return [
                c
                for c in self._feed_conns()
                if isinstance(c.session, FeedServerSession) and key in c.session.topics
            ]

    def _deliver_mm(self, channel: str, text: str, client: str | None) -> int:
        """Queue one MM broadcast to its subscribers; the connections it was queued for.

        The ground truth takes the frame as it goes out (its own parsed copy), and changes
        under the lock under which the targets are picked and the frame queued: a REST
        answer (read under that lock) never misses a change whose frame was queued before it.
        """
        frame = json.loads(text)
        limit = self.max_send_queue
        with self._lock:
            self._truth.apply(channel, frame.get("event"), frame.get("payload"), client)
            targets = []
            for c in self._conns.values():
                if (
                    isinstance(c.session, MMServerSession)
                    and not c.closing
                    and not c.half_open
                    and c.session.wants(channel, client)
                ):
                    if c.skip > 0:
                        c.skip -= 1
                        c.skipped += 1
                    else:
                        targets.append(c)
            twice = bool(targets) and self._faults.take_duplicate()
            sent = 0
            for c in targets:
                if c.enqueue(text, limit):
                    sent += 1
                    if twice:
                        c.enqueue(text, limit)
        return sent

    def _deliver_feed(self, update: FeedUpdate) -> int:
        keys = topic_keys(update)
        ts = int(time.time() * 1000)
        shared: str | None = None
        sent = 0
        # Topics are read and frames queued under the lock (see _read_loop).
        with self._lock:
            for conn in self._feed_conns():
                assert isinstance(conn.session, FeedServerSession)
                topics = conn.session.topics
                if update.shape == "match":
                    if any(k in topics for k in keys):
                        if shared is None:
                            shared = encode(render(update, None, ts))
                        sent += conn.enqueue(shared, self.max_send_queue)
                else:
                    for key in keys:
                        topic = topics.get(key)
                        if topic is not None:
                            text = encode(render(update, topic, ts))
                            sent += conn.enqueue(text, self.max_send_queue)
        return sent

    def _heartbeat(self) -> None:
        if self._faults.stalled or self._faults.heartbeats_paused:
            return
        for conn in self._open_conns():
            if conn.endpoint == "mm" and not conn.closing:
                conn.enqueue(HEARTBEAT, self.max_send_queue)

    def _expire_tokens(self) -> None:
        now = time.monotonic()
        for conn in self._feed_conns():
            assert isinstance(conn.session, FeedServerSession)
            with self._lock:
                valid = self._tokens.check(conn.session.token, now) is not None
            if not valid:
                self._apply(conn, Close(1008, "token expired"))

    def _scenario_loop(self) -> None:
        periods = {
            "mm": 1.0 / self.rate if self.rate > 0 else None,
            "feed": 1.0 / self.feed_rate if self.feed_rate > 0 else None,
        }
        start = time.monotonic()
        due = {name: start for name, period in periods.items() if period is not None}
        while not self._stop.is_set():
            name = min(due, key=due.__getitem__)
            now = time.monotonic()
            if due[name] > now:
                if self._stop.wait(due[name] - now):
                    return
                continue
            # The scenario waits while nobody listens, so a client that connects later sees
            # the story from its start (an order's INSERT before its UPDATEs).
            if name == "mm" and self._any_subscriber("mm"):
                self.step(1)
            elif name == "feed" and self._any_subscriber("feed"):
                self.step_feed(1)
            period = periods[name]
            assert period is not None
            due[name] = max(due[name] + period, now - 1.0)  # never catch up more than 1 s

    def _info(self, c: _Conn) -> ConnectionInfo:
        session = c.session
        base: dict[str, Any] = {
            "id": c.id,
            "endpoint": c.endpoint,
            "path": c.path,
            "opened_at": c.opened_at,
            "closed_at": c.closed_at,
            "close_code": c.close_code,
            "frames_sent": c.frames_sent,
            "received": tuple(c.received),
            "delay": c.delay,
            "half_open": c.half_open,
            "closing": c.closing,
        }
        if isinstance(session, MMServerSession):
            return ConnectionInfo(
                **base,
                api_key=session.api_key,
                client=session.client,
                subscribed=session.subscribed,
                subscription_id=session.subscription_id,
                channels=tuple(sorted(session.channels)),
                skipped=c.skipped,
            )
        return ConnectionInfo(
            **base,
            token=session.token,
            topics=tuple(session.topics),
            command_times=tuple(session.command_times),
            rate_limited=session.rate_limited,
        )

    def _write_burst(
        self,
        targets: list[_Conn],
        texts: Iterable[str],
        rate: float | None,
        tally: _Tally,
        queued: Callable[[int, int], None] | None = None,
    ) -> None:
        """Queue pre-encoded frames of ``texts`` on each target: in 256 KiB chunks, or one
        at a time at ``rate`` per second; block until every target has written them.
        ``queued(start, stop)`` is called under the lock right after frames ``start`` to
        ``stop - 1`` were queued (to change the ground truth with them)."""
        frames = [Frame(Opcode.TEXT, text.encode()).serialize(mask=False) for text in texts]
        started = time.monotonic()
        if rate is None:
            chunks: list[tuple[bytes, int]] = []
            pending: list[bytes] = []
            size = 0
            for frame in frames:
                pending.append(frame)
                size += len(frame)
                if size >= CHUNK:
                    chunks.append((b"".join(pending), len(pending)))
                    pending, size = [], 0
            if pending:
                chunks.append((b"".join(pending), len(pending)))
            with self._lock:
                for conn in targets:
                    for data, n in chunks:
                        conn.enqueue(_Raw(data, n, tally), self.max_send_queue + len(chunks))
                if queued is not None:
                    queued(0, len(frames))
        else:
            for i, frame in enumerate(frames):
                delay = started + i / rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                with self._lock:
                    for conn in targets:
                        conn.enqueue(_Raw(frame, 1, tally), self.max_send_queue + len(frames))
                    if queued is not None:
                        queued(i, i + 1)
        markers = []
        for conn in targets:
            marker = _Marker(threading.Event())
            conn.enqueue(marker, self.max_send_queue + len(frames) + 1)
            markers.append(marker)
        for marker in markers:
            marker.done.wait()
