"""The machinery both clients share: connect, reader and keepalive threads, reconnect loop,
delivery, health and close. The engines of ``MMClient`` and ``FeedClient`` only add their
protocol core, their handshake and their delivery policy; what the user holds is a handle
on the engine (:mod:`mmws._handle`), so that a client nobody refers to can be collected.

Threads (all daemon, all named, all belonging to one client and joined by ``close()``):

- ``mmws-reader``: receives, decodes through the protocol core, enqueues. It also owns
  reconnecting, as a loop: it is the only thread that opens connections after ``connect()``,
  so two live connections can never exist. It never runs user code.
- ``mmws-keepalive``: sleeps until the next keepalive deadline (an idle client uses no CPU),
  queues pings for the writer, and declares the connection dead when a pong or the
  server's heartbeat is overdue: it then queues ``Stale`` and aborts the socket, which wakes
  the reader and the writer. It never sends itself, so a server that stops reading (a full
  TCP window) cannot block the thread that must notice it.
- ``mmws-writer``: sends what the keepalive queued, each send bounded by ``io_timeout``; a
  send that fails or times out aborts the connection.
- ``mmws-dispatch`` (only with ``on_event=``): takes events from the queue and calls the
  callback, so a slow callback never starves the reader or the keepalive.

One lock (``_lock``) guards the protocol core and the session; no user code and no blocking
I/O runs under it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from mmws._backoff import Backoff, Decision, classify
from mmws._commands import Commands
from mmws._delivery import EventQueue, Lane
from mmws._keepalive import Keepalive
from mmws._options import ClientOptions
from mmws._ratelimit import Pacer, SlidingWindow
from mmws._recorder import Recorder
from mmws._secret import Secret, SecretSet, SecretURL, query_secrets
from mmws._session import (
    ClientState,
    Health,
    ProtocolCore,
    Session,
    check_transition,
    url_problem,
    wall,
)
from mmws._transport import MAX_RETRY_AFTER, Deadline, Transport
from mmws._urlsource import UrlSource
from mmws.errors import (
    ClientClosed,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    LocalProtocolError,
    MmwsError,
    RemoteProtocolError,
    TransportTimeout,
)
from mmws.lifecycle import (
    Closed,
    Connected,
    Disconnected,
    KeepaliveEvent,
    MalformedFrame,
    Reconnecting,
    Stale,
)

__all__ = ["Health", "StreamClient"]

log = logging.getLogger("mmws.client")

C = TypeVar("C", bound="StreamClient[Any]")
E = TypeVar("E")


def _coalesce_key(event: Any) -> Hashable:
    """What a coalescing event replaces: the queued one with the same key (the event says)."""
    return event.coalesce_key  # type: ignore[no-any-return]


class StreamClient(Commands, Generic[E]):
    """The engine of a client: session, queue, threads. Its threads hold it; the user holds
    its handle (:mod:`mmws._handle`), and nothing here refers back to that handle.

    ``E`` is the union of every event the client can deliver (``mmws.MMStreamEvent`` or
    ``mmws.FeedStreamEvent``)."""

    _lanes: Mapping[type, Lane] = MappingProxyType({})
    _protocol_name = "mm"
    _shown_as = "StreamClient"  # the public class, in reprs and log lines

    def __init__(
        self,
        *,
        url: str | SecretURL | None,
        options: ClientOptions,
        on_event: Callable[[E], object] | None = None,
        record: str | Path | Recorder | None = None,
        secrets: SecretSet | Sequence[str] = (),
        token_provider: Callable[[], str] | None = None,
        rate_limit: SlidingWindow | None = None,
    ) -> None:
        secret_set = secrets if isinstance(secrets, SecretSet) else SecretSet(*secrets)
        if isinstance(url, str):
            url = SecretURL(url)  # no plain token in this frame's locals (see url_problem)
        problem = url_problem(url, secret_set)
        if problem is not None:
            raise ConfigError(problem)
        if on_event is not None and not callable(on_event):
            raise ConfigError(f"on_event must be callable, got {type(on_event).__name__}")
        self._source = UrlSource(url.reveal() if url is not None else "", token_provider)
        self._secrets = self._source.merge_secrets(secret_set)
        self._pacer = Pacer(rate_limit)
        self._ping_slot: list[float] | None = None  # the keepalive's ping, until it is sent
        self._pongs = 0
        self._options = options
        self._keepalive_args = (
            None if options.ping_interval is None else float(options.ping_interval),
            float(options.pong_timeout),
            None if options.heartbeat_timeout is None else float(options.heartbeat_timeout),
        )
        self._connect_timeout = float(options.connect_timeout)
        self._reconnect = bool(options.reconnect)
        self._backoff = Backoff(float(options.backoff_base), float(options.backoff_cap))
        self._backoff_reset_after = float(options.backoff_reset_after)
        self._transport_options = options.transport()
        if options.proxy_auth:
            self._secrets = self._secrets.with_values(*(p for p in options.proxy_auth if p))
        if not options.verify_tls:
            log.warning(
                "%s created with verify_tls=False: TLS certificates will NOT be checked",
                self._shown_as,
            )
        self._deliver_keepalive = options.deliver_keepalive
        self._on_event = on_event
        self._queue = EventQueue(options.maxsize, self._lanes, _coalesce_key)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._acks = threading.Condition(self._lock)
        self._writer_wake = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._session: Session | None = None
        self._abort_opening: Callable[[], None] | None = None  # a connection being opened
        self._threads: list[threading.Thread] = []
        self._state = ClientState.IDLE
        self._closing = False
        self._finished = False
        self._connected_since: float | None = None
        self._last_message: float | None = None
        self._last_rtt: float | None = None
        self._clock_offset: float | None = None
        self._last_error: str | None = None
        self._reconnects = 0
        # A subclass's step between decoding and delivery (the state cache; the pong marks of
        # a hot-standby line): runs on the reader thread under the lock, sees every decoded
        # event, returns what to deliver.
        self._event_filter: Callable[[Session, list[Any]], list[Any]] | None = None
        self._pinned_handle: object = None  # while an on_event client runs (mmws._handle)
        self._thread_suffix = ""  # "-1": the threads of line 1 of a hot-standby client
        self._stagger = 0.0  # added to each reconnect delay: lines never reconnect together
        self._owns_recorder = record is not None and not isinstance(record, Recorder)
        self._recorder: Recorder | None = (
            record
            if isinstance(record, Recorder) or record is None
            else Recorder(record, self._protocol_name)
        )
        if self._recorder is not None:
            self._recorder.add_secrets(*self._secrets.reveal())

    # -- what the handle (MMClient, FeedClient) calls ------------------------------------

    def connect(self: C) -> C:
        """See :meth:`mmws.MMClient.connect`: open, subscribe, start the threads."""
        with self._lock:
            if self._closing:
                raise ClientClosed("this client was closed; create a new one")
            if self._threads:
                return self
            if self._state is ClientState.CONNECTING:
                raise LocalProtocolError("connect() is already running in another thread")
            self._enter(ClientState.CONNECTING)
        try:
            session, events = self._open_session(0)
        except BaseException as exc:
            with self._lock:
                self._enter(ClientState.IDLE)
                self._last_error = str(exc)
            raise
        with self._lock:
            if self._stop.is_set():  # close() was called from another thread meanwhile
                session.transport.close(timeout=0.2)
                raise ClientClosed("the client was closed while connecting")
            self._install(session)
        self._queue.put_many(events)
        self._start_thread("reader", self._run_reader)
        self._start_thread("keepalive", self._run_keepalive)
        self._start_thread("writer", self._run_writer)
        if self._on_event is not None:
            self._start_thread("dispatch", self._run_dispatch)
        return self

    def events(self) -> Iterator[E]:
        """Every event, blocking; ends after the final ``Closed`` event."""
        while True:
            try:
                event = self._queue.get(True, None)
            except MmwsError:
                return
            yield event
            if type(event) is Closed:
                return

    def pin(self, handle: object) -> None:
        """Keep ``handle`` until closed (see :mod:`mmws._handle`); not once closed."""
        with self._lock:
            if not self._closing:
                self._pinned_handle = handle

    @property
    def is_open(self) -> bool:
        """Connected (or connecting, or reconnecting) and not closed."""
        return bool(self._threads) and not self._closing

    def health(self) -> Health:
        """A snapshot of the connection (no secret is in it)."""
        with self._lock:
            return Health(
                state=self._state.value,
                url=self._secrets.redact(self._source.url),
                connected_since=wall(self._connected_since),
                last_message_at=wall(self._last_message),
                reconnects=self._reconnects,
                queue_depth=self._queue.qsize(),
                dropped=self._queue.dropped_counts(),
                last_rtt=self._last_rtt,
                last_error=self._last_error,
                clock_offset=self._clock_offset,
                subscriptions=(
                    self._session.protocol.subscriptions if self._session is not None else ()
                ),
            )

    def close(self, timeout: float = 5.0) -> None:
        """See :meth:`mmws.MMClient.close`: idempotent, bounded by ``timeout``."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            first = not self._closing
            self._closing = True
            session = self._session
            goodbye = (
                session.protocol.goodbye() if first and session and not session.dead else []
            )
            abort_opening = self._abort_opening
            self._wake.notify_all()
            self._writer_wake.notify_all()
        self._stop.set()
        if abort_opening is not None:
            abort_opening()  # a reconnect attempt in progress ends now, not at its timeout
        if first:
            if session is not None:
                transport = session.transport
                transport.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
                for text in goodbye:
                    try:
                        transport.send(text)
                    except MmwsError:
                        break
                transport.close(timeout=max(0.05, min(0.5, deadline - time.monotonic())))
            self._queue.abort_producers()
        current = threading.current_thread()
        with self._lock:
            threads = list(self._threads)  # complete: no thread starts once _stop is set
        # The dispatch thread runs until it has delivered Closed, so it is joined last,
        # after _finish() queued Closed; joining it first would wait out the whole timeout.
        dispatch = [t for t in threads if t.name == "mmws-dispatch"]
        for thread in threads:
            if thread is not current and thread not in dispatch:
                thread.join(max(0.0, deadline - time.monotonic()))
        self._finish(None)
        for thread in dispatch:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))

    def __repr__(self) -> str:
        # Never raises, even on a half-made client: a traceback rendered with its locals
        # (an error tracker) calls it on a client whose __init__ refused an argument.
        secrets = getattr(self, "_secrets", None)
        source = getattr(self, "_source", None)
        url = source.url if isinstance(source, UrlSource) else ""
        shown = secrets.redact(url) if secrets is not None else "?"
        return f"<{self._shown_as} url={shown!r} state={self._shown_state()}>"

    def _shown_state(self) -> str:
        """The state a repr shows (never raises)."""
        state = getattr(self, "_state", None)
        return state.value if isinstance(state, ClientState) else "new"

    def _enter(self, state: ClientState) -> None:
        """(lock held) Move to ``state``, through the transition table only."""
        self._state = check_transition(self._state, state)

    # -- hooks for subclasses ---------------------------------------------------------------

    def _new_protocol(self) -> ProtocolCore:
        raise NotImplementedError

    def _open_url(self) -> str:
        """The URL for the next attempt (a token provider is asked each time)."""
        error = self._source.refresh()  # returns its error: no token in a raising frame
        if error is not None:
            raise error
        self._secrets = self._source.merge_secrets(self._secrets)
        return self._source.url

    def _handshake(self, session: Session, deadline: float) -> list[Any]:
        """Subscribe on a fresh connection and wait for the confirmation; return the events
        to deliver. Raise an ``MmwsError`` to fail the attempt."""
        raise NotImplementedError

    # -- private: connections --------------------------------------------------------------

    def _connection_lost(self) -> None:
        """(lock held, reader thread) The current connection ended; before ``Disconnected``
        is queued."""

    def _keepalive_for_new_protocol(self) -> Keepalive:
        ping, pong, heartbeat = self._keepalive_args
        return Keepalive(ping_interval=ping, pong_timeout=pong, heartbeat_timeout=heartbeat)

    def _watch_opening(self, abort: Callable[[], None] | None) -> None:
        """Let close() abort the connection being opened (``None``: nothing being opened)."""
        with self._lock:
            self._abort_opening = abort
            closing = self._closing
        if closing and abort is not None:
            abort()

    def _open_session(self, attempt: int) -> tuple[Session, list[Any]]:
        """One connection attempt, bounded as a whole by ``connect_timeout``."""
        deadline = Deadline(self._connect_timeout)
        try:
            self._watch_opening(deadline.abort)
            url = SecretURL(self._open_url())
            # a token in the URL is scrubbed from frames and errors like the key
            self._secrets = self._secrets.with_values(*query_secrets(url.reveal()))
            transport = Transport.open(url, self._transport_options, self._secrets, deadline)
            try:
                session, events = self._start_session(transport, attempt, deadline.at)
            except (ConnectionClosed, ConnectError, ConnectTimeout) as exc:
                if not deadline.expired or isinstance(exc, ConnectTimeout):
                    raise
                error = deadline.timeout_error(transport.url)
            else:
                deadline.finish()
                if not deadline.expired:
                    return session, events
                # the timer shut the socket just as the confirmation came: not usable
                transport.close(timeout=0.1)
                error = deadline.timeout_error(transport.url)
            raise error  # outside the except block: one error, not a chain of two
        finally:
            deadline.finish()
            self._watch_opening(None)

    def _start_session(
        self, transport: Transport, attempt: int, deadline: float
    ) -> tuple[Session, list[Any]]:
        if self._recorder is not None:
            self._recorder.add_secrets(*self._secrets.reveal())
            self._recorder.connected(transport.url)
        protocol = self._new_protocol()
        now = time.monotonic()
        protocol.start(now)
        session = Session(transport, protocol, now)
        try:
            events = self._handshake(session, deadline)
        except BaseException:
            transport.close(timeout=0.2)
            raise
        transport.settimeout(self._transport_options.io_timeout)
        log.info("connected to %s (attempt %d)", transport.url, attempt)
        return session, [Connected(transport.url, attempt), *events]

    def _decode(self, session: Session, data: bytes | str, now: float) -> list[Any]:
        if self._secrets:
            # A server that echoes the key (or token) in an error text must not put it into
            # an event, an exception, health().last_error, a log line or a recording.
            data = self._secrets.scrub(data)
        if self._recorder is not None:
            self._recorder.frame(data)
        with self._lock:
            protocol = session.protocol
            answered = protocol.answered
            try:
                protocol.receive_text(data, now)
            except RemoteProtocolError as exc:
                events = protocol.events_received()
                events.append(MalformedFrame(exc))
            else:
                events = protocol.events_received()
            if protocol.answered != answered:
                self._acks.notify_all()  # a command was answered
            if self._event_filter is not None:
                events = self._event_filter(session, events)
            return events

    def _install(self, session: Session) -> None:
        """Make ``session`` current (the lock is held)."""
        self._session = session
        self._enter(ClientState.CONNECTED)
        self._connected_since = session.opened_at
        self._last_message = session.opened_at
        self._wake.notify_all()

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                # Never a silent stop: a thread that dies on a bug closes the client, and
                # the consumer sees Closed(error) instead of a stream that just goes quiet.
                log.exception("mmws-%s failed; closing the client", name)
                self._finish(
                    MmwsError(
                        f"internal error in mmws-{name}: {type(exc).__name__}: "
                        f"{self._secrets.redact(str(exc))}"
                    )
                )
                if self._session is not None:
                    self._session.transport.abort()

        thread = threading.Thread(
            target=run, name=f"mmws-{name}{self._thread_suffix}", daemon=True
        )
        # Started and listed in one step, and never once close() has begun: close() joins
        # every listed thread, and a thread listed but not started yet cannot be joined
        # (a line's connect thread could start its writer while the user closed).
        with self._lock:
            if self._stop.is_set():
                return
            thread.start()
            self._threads.append(thread)

    def _finish(self, error: MmwsError | None) -> None:
        """Queue the final ``Closed`` event once, and close the queue."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._pinned_handle = None  # closed: the handle may go (mmws._handle)
            self._closing = True
            self._enter(ClientState.CLOSED)
            if error is not None:
                self._last_error = str(error)
            self._wake.notify_all()
            self._writer_wake.notify_all()
        self._stop.set()
        if self._recorder is not None and self._owns_recorder:
            self._recorder.close()
        self._queue.put_control(Closed(error))
        self._queue.close(error)
        if error is not None:
            log.error("%s closed by a fatal error: %s", self._shown_as, error)

    # -- private: the reader thread ---------------------------------------------------------

    def _run_reader(self) -> None:
        session: Session | None = self._session
        while session is not None:
            error = self._read_loop(session)
            session.transport.close(timeout=0.1)
            with self._lock:
                session.protocol.connection_lost()
                self._connection_lost()
                self._session = None
                if self._closing:
                    return
                if session.dead is not None:
                    error = session.dead
                decision = classify(error)
                will_reconnect = self._reconnect and decision is not Decision.FATAL
                self._enter(ClientState.RECONNECTING if will_reconnect else ClientState.CLOSED)
                self._last_error = str(error)
            if time.monotonic() - session.opened_at >= self._backoff_reset_after:
                self._backoff.reset()
            log.warning("disconnected from %s: %s", session.transport.url, error)
            self._queue.put_control(Disconnected(str(error), will_reconnect, error))
            if not will_reconnect:
                self._finish(error if decision is Decision.FATAL else None)
                return
            session = self._reconnect_loop(decision, error)

    def _read_loop(self, session: Session) -> MmwsError:
        """Read until the connection ends; return why it ended."""
        recv = session.transport.recv
        frame_ready = session.transport.frame_ready
        decode = self._decode
        put_many = self._queue.put_many
        monotonic = time.monotonic
        deliver_keepalive = self._deliver_keepalive
        batch: list[Any] = []
        while True:
            try:
                data = recv()
            except TransportTimeout:
                if batch and not put_many(batch):  # never hold decoded events on a quiet line
                    return ClientClosed("closing")
                batch = []
                continue  # liveness is the keepalive thread's business
            except MmwsError as exc:
                # The close frame (or the broken frame) can share a read with data frames:
                # deliver what was already decoded before reporting the end.
                if batch:
                    put_many(batch)
                return exc
            now = monotonic()
            self._last_message = now
            events = decode(session, data, now)
            for event in events:
                if isinstance(event, KeepaliveEvent):
                    self._note_keepalive(event)  # rtt, clock offset, ping() waiters
                    if deliver_keepalive:
                        batch.append(event)
                else:
                    batch.append(event)
            if batch and not frame_ready():
                if not put_many(batch):
                    return ClientClosed("closing")
                batch = []

    def _note_keepalive(self, event: KeepaliveEvent) -> None:
        """A pong or heartbeat: the round trip, the server's clock, ``ping()`` waiters."""
        rtt: float | None = getattr(event, "rtt", None)
        server_ts: int | None = getattr(event, "server_ts", None)
        with self._lock:
            if hasattr(event, "rtt"):
                self._pongs += 1  # a pong (a heartbeat has no rtt field)
            if rtt is not None:
                self._last_rtt = rtt
                if server_ts is not None:
                    self._clock_offset = server_ts / 1000.0 - (time.time() - rtt / 2)
            self._acks.notify_all()

    def _reconnect_loop(self, decision: Decision, error: MmwsError) -> Session | None:
        while not self._stop.is_set():
            delay = self._backoff.next_delay(decision) + self._stagger
            wait = getattr(error, "retry_after", None)
            if wait is not None:  # the server's Retry-After (429/503), capped at 10 minutes
                delay = max(delay, min(float(wait), MAX_RETRY_AFTER))
            attempt = self._backoff.attempt
            self._queue.put_control(Reconnecting(attempt, delay))
            if self._stop.wait(delay):
                return None
            try:
                session, events = self._open_session(attempt)
            except MmwsError as exc:
                if self._stop.is_set():
                    return None  # close() aborted this attempt; close() reports the end
                decision = classify(exc)
                error = exc
                with self._lock:
                    self._last_error = str(exc)
                log.warning("reconnect attempt %d failed: %s", attempt, exc)
                if decision is Decision.FATAL:
                    self._queue.put_control(Disconnected(str(exc), False, exc))
                    self._finish(exc)
                    return None
                continue
            with self._lock:
                if self._closing:
                    session.transport.close(timeout=0.1)
                    return None
                self._reconnects += 1
                self._install(session)
            self._queue.put_many(events)
            return session
        return None

    # -- private: the keepalive thread ------------------------------------------------------

    def _run_keepalive(self) -> None:
        while True:
            stale: Stale | None = None
            texts: Sequence[str | Secret] = []
            with self._lock:
                if self._stop.is_set():
                    return
                session = self._session
                wait: float | None = None
                if session is not None and session.dead is None:
                    now = time.monotonic()
                    keepalive = session.protocol.keepalive
                    queue = self._queue
                    recently = now - queue.last_unblocked < keepalive.pong_timeout
                    if queue.producer_blocked or recently:
                        # Our own consumer is slow: TCP pushes back, and the server's pongs
                        # and heartbeats wait behind the data it already sent. Not a dead line.
                        keepalive.forgive(now)
                    dead = keepalive.dead(now)
                    if dead is not None:
                        session.dead = dead
                        stale = Stale(keepalive.silent_for(now), dead)
                    elif keepalive.ping_due(now):
                        delay = self._pacer.delay(now)
                        if delay <= 0:
                            self._ping_slot = self._pacer.take(now)
                            # The pong clock starts now, when the ping is queued: a send
                            # that cannot go out (a server that stopped reading) counts
                            # against the pong deadline instead of blocking this thread.
                            session.protocol.ping(now)
                            texts = session.protocol.data_to_send()
                            session.outbox.extend((text, True) for text in texts)
                            self._writer_wake.notify()
                    deadline = keepalive.next_deadline()  # inf: no ping, no limits
                    wait = None if math.isinf(deadline) else max(0.0, deadline - now)
                    if keepalive.ping_due(now) and not texts:
                        wait = max(0.001, self._pacer.delay(now))
                due = self._source.renew_due()
                maintain = due is not None and due <= time.monotonic()
                if due is not None and not maintain:
                    left = due - time.monotonic()
                    wait = left if wait is None else min(wait, left)
                if stale is None and not texts and not maintain:
                    self._wake.wait(wait)
                    continue
            if maintain:
                renewal_error = self._source.renew()
                if renewal_error is not None:
                    with self._lock:
                        self._last_error = renewal_error
            if stale is not None and session is not None:
                log.warning("%s; replacing the connection", stale.error)
                self._queue.put_control(stale)
                session.transport.abort()

    # -- private: the writer thread ---------------------------------------------------------

    def _run_writer(self) -> None:
        while True:
            with self._lock:
                while True:
                    # _closing is set under this lock before any notify (_stop only after
                    # it is released): checking it here cannot miss the last wake-up
                    if self._closing or self._stop.is_set():
                        return
                    session = self._session
                    if session is not None and session.outbox:
                        text, is_ping = session.outbox.popleft()
                        break
                    self._writer_wake.wait()
            try:
                session.transport.send(text)
            except MmwsError as exc:
                # Sends have their own deadline (io_timeout): a connection that cannot take
                # a frame is broken. The reader reports the end and reconnects.
                log.debug("send failed (%s); aborting the connection", exc)
                with self._lock:
                    session.outbox.clear()
                session.transport.abort()
                continue
            if is_ping:
                with self._lock:
                    self._pacer.sent(self._ping_slot, time.monotonic())
                    self._ping_slot = None

    # -- private: the dispatch thread -------------------------------------------------------

    def _run_dispatch(self) -> None:
        callback = self._on_event
        assert callback is not None
        for event in self.events():
            try:
                callback(event)
            except Exception:
                log.exception("on_event raised on %s; the stream goes on", type(event).__name__)
