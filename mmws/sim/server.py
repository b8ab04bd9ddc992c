"""The simulator server: both endpoints on one port, the threads, the controls and the faults.

::

    from mmws.sim import Simulator

    with Simulator(port=0, api_keys={KEY: "client-a"}, seed=0, rate=20.0) as sim:
        sim.mm_url        # ws://127.0.0.1:PORT/ws/subscribe
        sim.api_key       # the first key (or a generated demo key)
        sim.feed_url      # ws://127.0.0.1:PORT/?token=...
        sim.publish("orders", "UPDATE", {"orderId": 1, "orderStatus": "FILLED"})
        sim.wait_for(lambda: sim.stats.commands_received >= 1, timeout=2)

Built on the ``websockets`` library's threaded server (``websockets.sync.server``); no asyncio.
The library's own keepalive pings are off (``ping_interval=None``) so that :meth:`stall` is a
true stall, and compression is off (``compression=None``) so :meth:`burst` can write
pre-encoded frames. Incoming messages are limited to ``max_size`` bytes (default 1 MiB).

Routes (HTTP and WebSocket on the same port):

- ``/ws/subscribe``: the MM endpoint (:mod:`mmws.sim.mm`). A plain HTTP GET gets ``426`` with
  ``{"detail":"This endpoint requires a WebSocket connection. Use ws://host:port/ws/subscribe"}``.
- ``/?token=T`` or ``/feed?token=T``: the feed endpoint (:mod:`mmws.sim.feed`).
- ``GET /v1/ws/new?t=API_TOKEN``, ``GET /v1/ws/renew?t=API_TOKEN``: feed token REST.
- anything else: ``404`` ``{"detail":"Not Found"}``.
- a request that is not an HTTP/1.1 GET, or is not HTTP at all: websockets' parser refuses
  it and the TCP connection is closed without a response.

Reactions to bad input (no input crashes the server or touches other connections; each
connection has its own reader and writer threads):

- MM: see the table in :mod:`mmws.sim.mm` (error frames; the four auth errors also close);
  no subscribe within ``auth_timeout``: close with ``error_close_code`` (1008) and reason
  ``Authentication timeout`` (no error frame). Heartbeats go to every open MM connection,
  subscribed or not, every ``heartbeat_interval`` (one timer for all connections).
- feed: see :mod:`mmws.sim.feed` (``INVALID_COMMAND`` and friends, ``RATE_LIMITED``).
- a message over ``max_size``: websockets closes that connection with 1009.
- a text frame that is not UTF-8: websockets closes that connection with 1007.
- a client that does not read: its frames queue on its own writer thread; past
  ``max_send_queue`` queued frames the connection is closed with 1008 ``send queue overflow``.
- a flood of commands: each is answered in order on that connection only (MM); the feed
  rate limit answers ``RATE_LIMITED`` beyond 10 per second. Every message is counted, but
  only the last ``max_recorded_messages`` per connection are kept for inspection, a message
  over ``max_recorded_size`` only as its first 256 characters, and only the last
  ``max_closed_connections`` closed connections: a flood cannot grow memory without bound.
- a client that does not read while :meth:`Simulator.close`, :meth:`~Simulator.resume` or
  :meth:`~Simulator.drop_connections` runs: only that connection's writer thread waits on
  it; ``close()`` cuts its TCP connection after the grace period, which frees the writer.

Threads (all daemon, all named ``mmws-sim-*``, all joined by :meth:`Simulator.close` within a
deadline): ``accept`` (listening socket), per connection ``conn-N`` (reads commands),
``recv-N`` (websockets' frame reader, renamed) and ``send-N`` (writes, in order), ``timer``
(heartbeats, delayed pongs, token expiry, batch updates), ``scenario`` (paces the generators;
only when a rate is > 0) and ``restart`` (during a non-blocking :meth:`restart`).
"""

from __future__ import annotations

import dataclasses
import email.utils
import heapq
import http
import itertools
import json
import logging
import math
import os
import re
import selectors
import socket
import ssl
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from types import TracebackType
from typing import Any, Final, TypeGuard
from urllib.parse import parse_qs, urlsplit

import attrs
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.sync.server import Server, ServerConnection, serve

from mmws._codec import model_codec
from mmws._secret import redact_url
from mmws.errors import ConfigError
from mmws.mm.protocol import CHANNELS, validate_api_key
from mmws.sim.faults import Faults, abort_socket
from mmws.sim.feed import CHANNELS as FEED_CHANNELS
from mmws.sim.feed import (
    PLANS,
    FeedServerSession,
    TokenStore,
    Topic,
    connection_limit,
    render,
    rest_error,
    topic_keys,
)
from mmws.sim.mm import (
    Action,
    Close,
    MMServerSession,
    Pong,
    Send,
    burst_frames,
    encode,
    encode_broadcast,
)
from mmws.sim.scenario import FeedUpdate, MatchGenerator, MatchInfo, Scenario, ScenarioEvent

__all__ = [
    "BurstResult",
    "ConnectionInfo",
    "ReceivedMessage",
    "SimStats",
    "Simulator",
]

logger = logging.getLogger("mmws.sim")


class _RedactSecrets(logging.Filter):
    """websockets logs request lines and frames at DEBUG: hide ``token=``/``t=`` values, the
    value of every ``apiKey``/``api_key`` field and, verbatim, every secret a live simulator
    knows (its API keys, feed API tokens and issued feed tokens), so no secret reaches a log
    (house rule 9).

    A frame is redacted from its full payload before websockets shortens it for the log
    (first and last characters only), so a key at the end of a long frame is hidden too. A
    fragment of a message (continuation, or not final) may hold part of a secret that no
    pattern recognises: its whole payload is masked."""

    _KEY = re.compile(r"""(["']api_?key["']\s*:\s*["'])([^"']*)""", re.I)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _log_secrets()
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, Frame) for a in args):
            record.args = tuple(
                self._frame(a, secrets) if isinstance(a, Frame) else a for a in args
            )
        text = record.getMessage()
        clean = redact_url(self.mask(text, secrets))
        if clean != text:
            record.msg, record.args = clean, ()
        return True

    @classmethod
    def mask(cls, text: str, secrets: Iterable[str]) -> str:
        """``text`` with every ``apiKey`` value and every secret replaced by as many ``*``."""
        text = cls._KEY.sub(lambda m: m.group(1) + "*" * len(m.group(2)), text)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, "*" * len(secret))
        return text

    @classmethod
    def _frame(cls, frame: Frame, secrets: Iterable[str]) -> Frame:
        if frame.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            return frame
        data = bytes(frame.data)
        if frame.opcode is Opcode.CONT or not frame.fin:
            return dataclasses.replace(frame, data=b"*" * len(data))
        text = data.decode("utf-8", "surrogateescape")
        clean = redact_url(cls.mask(text, secrets))
        if clean == text:
            return frame
        return dataclasses.replace(frame, data=clean.encode("utf-8", "surrogateescape"))


_SIMULATORS: Final[weakref.WeakSet[Simulator]] = weakref.WeakSet()
_SIMULATORS_LOCK: Final = threading.Lock()
_MIN_SECRET: Final = 4  # shorter "secrets" (test values) would mask ordinary words


def _log_secrets() -> list[str]:
    """Every secret of every live simulator, longest first (for the log filter)."""
    with _SIMULATORS_LOCK:
        sims = list(_SIMULATORS)
    found: set[str] = set()
    for sim in sims:
        found.update(sim._secrets)
    return sorted(found, key=len, reverse=True)


_WS_LOGGER: Final = logging.getLogger("mmws.sim.websockets")
_WS_LOGGER.addFilter(_RedactSecrets())

MM_PATH: Final = "/ws/subscribe"
FEED_PATHS: Final = ("/", "/feed")
_DETAIL_426: Final = (
    "This endpoint requires a WebSocket connection. Use ws://host:port/ws/subscribe"
)
_HEARTBEAT: Final = '{"type":"heartbeat"}'
_MM_PONG: Final = '{"type":"pong"}'
_CHUNK: Final = 256 * 1024


# -- data the simulator exposes -------------------------------------------------------------


@attrs.frozen
class ReceivedMessage:
    """One message a client sent: ``data`` (``str``; ``bytes`` for a binary frame) and when it
    was read (``time.monotonic()``).

    ``size`` is the message's length (characters, or bytes for a binary frame). A message
    longer than the simulator's ``max_recorded_size`` is not kept whole: ``data`` then holds
    only its first 256 characters (bytes) and ``truncated`` is True.
    """

    connection_id: int
    data: str | bytes
    at: float
    size: int = attrs.field()
    truncated: bool = False

    @size.default
    def _size(self) -> int:
        return len(self.data)

    @property
    def json(self) -> Any:
        """The message decoded as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.data)


@attrs.frozen
class ConnectionInfo:
    """A snapshot of one connection (open or closed). ``endpoint`` is ``"mm"`` or ``"feed"``.

    MM fields: ``api_key``, ``client``, ``subscribed``, ``subscription_id``, ``channels``.
    Feed fields: ``token``, ``topics`` (topic keys), ``command_times`` (arrival of the
    commands, ``time.monotonic()``; the last ``max_recorded_messages``), ``rate_limited``
    (commands refused by the rate limit).

    ``received`` holds the last ``max_recorded_messages`` messages of the connection (see
    :class:`ReceivedMessage` for long ones).
    """

    id: int
    endpoint: str
    path: str
    opened_at: float
    closed_at: float | None
    close_code: int | None
    frames_sent: int
    received: tuple[ReceivedMessage, ...]
    api_key: str | None = None
    client: str | None = None
    subscribed: bool = False
    subscription_id: int | None = None
    channels: tuple[str, ...] = ()
    token: str | None = None
    topics: tuple[str, ...] = ()
    command_times: tuple[float, ...] = ()
    rate_limited: int = 0

    @property
    def open(self) -> bool:
        return self.closed_at is None


@attrs.frozen
class SimStats:
    """Counters since the simulator started.

    A connection is opened (and active) from the moment its WebSocket upgrade is accepted,
    before the 101 response goes out, and active until its server side has finished, which
    can be a moment after a cut or close."""

    connections_opened: int
    connections_active: int
    frames_sent: int
    commands_received: int
    handshakes_rejected: int
    http_responses: int
    restarts: int
    listening: bool


@attrs.frozen
class BurstResult:
    """The last :meth:`Simulator.burst`: frames written (all connections), the connections,
    and ``time.monotonic()`` at the first and after the last write. With ``rate``, frame ``i``
    (``orderId`` i, from 1) was due at ``started_at + (i - 1) / rate``."""

    frames: int
    connections: int
    started_at: float
    finished_at: float
    rate: float | None


# -- websockets connection with stall hold and raw writes -----------------------------------


class _SimConnection(ServerConnection):
    """websockets' server connection, plus: everything written while ``hold()`` is true is
    held in memory (this covers websockets' own pongs and close frames, so a stall is total),
    and :meth:`send_encoded` writes pre-encoded frames."""

    def __init__(
        self, sock: socket.socket, protocol: ServerProtocol, *args: Any, **kwargs: Any
    ) -> None:
        # websockets 17+ passes the Server positionally after the protocol; 13 to 16 do not.
        self.hold: Callable[[], bool] | None = None
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
        self.closing = False
        self.sending = False
        self.dead = False
        self.stopping = False
        self.queue: deque[_Item] = deque()
        self.cond = threading.Condition(threading.Lock())
        self.writer: threading.Thread | None = None
        self.first: list[Action] = []  # sent as soon as the connection is open

    def die(self) -> None:
        """No more writes: later items are refused, queued markers released."""
        with self.cond:
            self.dead = True
            rest = list(self.queue)
            self.queue.clear()
        for left in rest:
            if isinstance(left, _Marker):
                left.done.set()

    def enqueue(self, item: _Item, limit: float) -> bool:
        """Queue ``item`` for the writer; False if the connection is gone (markers are then
        released at once). Past ``limit`` queued items the connection is closed."""
        with self.cond:
            if not self.dead and len(self.queue) >= limit and not self.closing:
                self.closing = True
                self.queue.clear()
                self.queue.append(Close(1008, "send queue overflow"))
                self.cond.notify()
                return False
            if self.dead:
                if isinstance(item, _Marker):
                    item.done.set()
                return False
            self.queue.append(item)
            self.cond.notify()
            return True

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def request_flush(self) -> None:
        """Have the writer write what was held during a stall before anything queued. The
        caller never touches the socket, so it cannot block behind a client that does not
        read (the writer may)."""
        with self.cond:
            if not self.dead:
                self.queue.appendleft(_FLUSH)
            self.cond.notify_all()


# -- timer -----------------------------------------------------------------------------------


class _Timer:
    """One thread running callbacks at given monotonic times."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Callable[[], object]]] = []
        self._seq = itertools.count()
        self._stopped = False
        self.thread = threading.Thread(target=self._run, name="mmws-sim-timer", daemon=True)
        self.thread.start()

    def call_later(self, delay: float, fn: Callable[[], object]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn))
            self._cond.notify()

    def call_every(self, interval: float, fn: Callable[[], object]) -> None:
        def tick() -> None:
            self.call_later(interval, tick)
            fn()

        self.call_later(interval, tick)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, fn = heapq.heappop(self._heap)
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            try:
                fn()
            except Exception:  # a callback must never kill the timer
                logger.exception("simulator timer callback failed")


# -- listener --------------------------------------------------------------------------------


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


def _json_response(status: int, body: Any, extra: Iterable[tuple[str, str]] = ()) -> Response:
    data = encode(body).encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *extra,
        ]
    )
    return Response(status, _phrase(status), headers, data)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _url_host(host: str) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_duration(name: str, value: object, *, none_ok: bool) -> None:
    """A duration option: a finite number > 0 (or None if ``none_ok``), else ConfigError."""
    if value is None and none_ok:
        return
    if not (_is_number(value) and 0 < value < math.inf):
        allowed = " (or None)" if none_ok else ""
        raise ConfigError(f"{name} must be a finite number > 0{allowed}, got {value!r}")


def _check_host(host: object) -> None:
    """Refuse a host that the socket layer would reject with something else than OSError
    (a TypeError, a UnicodeError), as ConfigError; OSError is reported when listening."""
    if not isinstance(host, str) or "\0" in host:
        raise ConfigError(f"host must be a host name or IP address, got {host!r}")
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        pass
    except ValueError as exc:  # UnicodeError: not a valid IDNA name
        raise ConfigError(f"host {host!r} is not a valid host name: {exc}") from None


class _Registry:
    """The MM key registry the sessions see (:class:`mmws.sim.mm.Registry`)."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def client_for(self, api_key: str) -> str | None:
        sim = self._sim
        return None if api_key in sim._revoked else sim._api_keys.get(api_key)

    def bind(self, session: MMServerSession, api_key: str) -> int | None:
        return self._sim._bind(session, api_key)


# -- the simulator ---------------------------------------------------------------------------


class Simulator:
    """A local MM + feed WebSocket server for tests, demos and benchmarks.

    Starts listening at construction; use it as a context manager or call :meth:`close`.
    All public methods are thread-safe. Arguments (keyword-only after ``port``):

    MM endpoint:
        ``api_keys``: key (a UUID) -> client name; two keys may share a client. None: one
        generated demo key for client ``"demo"``.
        ``seed``, ``rate``: the scenario's seed and events per second (0: only what is
        published). ``heartbeat_interval`` (None: no heartbeats), ``auth_timeout`` (None: no
        limit), ``max_connections_per_key``, ``legacy_field_names``, ``error_close_code``,
        ``send_error_frames``: see :mod:`mmws.sim.mm`.

    Feed endpoint:
        ``feed_api_tokens``: REST API token -> plan (BASIC, PRO, ULTRA, MEGA). None: one
        generated demo API token with plan ``feed_plan`` (MEGA). ``feed_rate`` (None: same as
        ``rate``), ``feed_token_ttl`` (1500 s), ``feed_max_connections`` (per token),
        ``feed_max_subscribe_per_connection``, ``feed_max_commands_per_second`` (None: no
        limit), ``feed_batch_interval`` (None: no ``batch_update``), ``feed_matches``.

    Transport:
        ``max_size`` (incoming message limit), ``max_send_queue`` (queued frames per
        connection before it is closed), ``close_timeout``, ``open_timeout``,
        ``ssl_context`` (a server-side ``ssl.SSLContext``: the URLs become ``wss://`` and
        ``https://``; for TLS tests with a locally issued certificate).

    Recording:
        What :attr:`connections` and :meth:`received_messages` show, bounded so that a
        client flooding the simulator cannot grow its memory without limit.
        ``max_recorded_messages`` (10 000): messages (and feed ``command_times``) kept per
        connection, the latest; ``max_recorded_size`` (64 KiB): a longer message is kept as
        its first 256 characters with ``truncated=True``; ``max_closed_connections``
        (1 000): closed connections kept, the latest (open ones are always kept).

    Durations (``heartbeat_interval``, ``auth_timeout``, ``feed_token_ttl``,
    ``feed_batch_interval``, ``close_timeout``, ``open_timeout``) must be finite numbers > 0
    (or None where None is allowed), rates finite and >= 0, ``port`` 0-65535; anything else
    raises :class:`~mmws.errors.ConfigError` naming the option.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: Mapping[str, str] | None = None,
        seed: int = 0,
        rate: float = 20.0,
        heartbeat_interval: float | None = 60.0,
        auth_timeout: float | None = 30.0,
        max_connections_per_key: int = 5,
        legacy_field_names: bool = False,
        error_close_code: int = 1008,
        send_error_frames: bool = True,
        feed_api_tokens: Mapping[str, str] | None = None,
        feed_plan: str = "MEGA",
        feed_rate: float | None = None,
        feed_token_ttl: float = 1500.0,
        feed_max_connections: int = 5,
        feed_max_subscribe_per_connection: int = 20,
        feed_max_commands_per_second: int | None = 10,
        feed_batch_interval: float | None = 30.0,
        feed_matches: int = 3,
        max_size: int = 2**20,
        max_send_queue: int = 100_000,
        close_timeout: float = 2.0,
        open_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        max_recorded_messages: int = 10_000,
        max_recorded_size: int = 64 * 1024,
        max_closed_connections: int = 1_000,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an integer from 0 to 65535, got {port!r}")
        _check_host(host)
        for name, value, none_ok in (
            ("heartbeat_interval", heartbeat_interval, True),
            ("auth_timeout", auth_timeout, True),
            ("feed_token_ttl", feed_token_ttl, False),
            ("feed_batch_interval", feed_batch_interval, True),
            ("close_timeout", close_timeout, False),
            ("open_timeout", open_timeout, False),
        ):
            _check_duration(name, value, none_ok=none_ok)
        for name, count, least in (
            ("max_size", max_size, 1),
            ("max_send_queue", max_send_queue, 1),
            ("max_recorded_messages", max_recorded_messages, 0),
            ("max_recorded_size", max_recorded_size, 0),
            ("max_closed_connections", max_closed_connections, 0),
        ):
            if isinstance(count, bool) or not isinstance(count, int) or count < least:
                raise ConfigError(f"{name} must be an integer >= {least}, got {count!r}")
        if api_keys is None:
            api_keys = {str(uuid.uuid4()): "demo"}
        if not api_keys:
            raise ConfigError("api_keys must hold at least one key")
        for key in api_keys:
            validate_api_key(key)
        for name, value in (("rate", rate), ("feed_rate", feed_rate)):
            if value is not None and not (_is_number(value) and 0 <= value < math.inf):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if feed_api_tokens is None:
            feed_api_tokens = {uuid.uuid4().hex: feed_plan}
        if not feed_api_tokens:
            raise ConfigError("feed_api_tokens must hold at least one token")
        try:
            self._tokens = TokenStore(feed_api_tokens, feed_token_ttl)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

        self.host = host
        self._api_keys = dict(api_keys)
        self._feed_api_tokens = dict(feed_api_tokens)
        self.seed = seed
        self.rate = float(rate)
        self.feed_rate = self.rate if feed_rate is None else float(feed_rate)
        self.heartbeat_interval = heartbeat_interval
        self.auth_timeout = auth_timeout
        self.max_connections_per_key = max_connections_per_key
        self.legacy_field_names = legacy_field_names
        self.error_close_code = error_close_code
        self.send_error_frames = send_error_frames
        self.feed_max_connections = feed_max_connections
        self.feed_max_subscribe_per_connection = feed_max_subscribe_per_connection
        self.feed_max_commands_per_second = feed_max_commands_per_second
        self.feed_batch_interval = feed_batch_interval
        self.max_size = max_size
        self.max_send_queue = max_send_queue
        self.close_timeout = close_timeout
        self.open_timeout = open_timeout
        self.ssl_context = ssl_context
        self.max_recorded_messages = max_recorded_messages
        self.max_recorded_size = max_recorded_size
        self.max_closed_connections = max_closed_connections
        self._ws_scheme = "wss" if ssl_context is not None else "ws"
        # What the log filter hides verbatim; replaced (never mutated) when a token is issued.
        self._secrets: frozenset[str] = frozenset(
            s for s in (*self._api_keys, *self._feed_api_tokens) if len(s) >= _MIN_SECRET
        )
        with _SIMULATORS_LOCK:
            _SIMULATORS.add(self)

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._gen_lock = threading.Lock()
        self._restart_lock = threading.Lock()
        self._faults = Faults()
        self._stop = threading.Event()
        self._closed = False
        self._local = threading.local()
        self._ids = itertools.count(1)
        self._sub_ids = itertools.count(1)
        self._batch_ids = itertools.count(1)
        self._conns: dict[int, _Conn] = {}
        self._history: list[_Conn] = []
        self._closed_in_history = 0
        self._handshaking: dict[int, socket.socket] = {}
        self._threads: set[threading.Thread] = set()
        self._opened = 0
        self._frames_sent = 0
        self._commands = 0
        self._rejected = 0
        self._http = 0
        self._restarts = 0
        self._last_burst: BurstResult | None = None
        self._revoked: set[str] = set()
        self._listener: _Listener | None = None

        self._registry = _Registry(self)
        clients = list(dict.fromkeys(self._api_keys.values()))
        self._scenario = Scenario(seed, clients)
        self._matches = MatchGenerator(seed, feed_matches)

        self.port = port
        self.port = self._start_listener(initial=True)
        self._timer: _Timer = _Timer()
        if heartbeat_interval is not None:
            self._timer.call_every(heartbeat_interval, self._heartbeat)
        if feed_batch_interval is not None:
            self._timer.call_every(feed_batch_interval, self.send_batch_update)
        self._scenario_thread: threading.Thread | None = None
        if self.rate > 0 or self.feed_rate > 0:
            self._scenario_thread = self._spawn(self._scenario_loop, "mmws-sim-scenario")

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Simulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"listening on port {self.port}"
        return f"<Simulator {state}>"

    def close(self, timeout: float = 5.0) -> None:
        """Stop everything: close connections (1001), stop listening, join every thread.

        Connections get up to ``close_timeout`` (capped at 1 s) to finish the closing
        handshake, then their TCP connection is cut (this also frees a writer blocked on a
        client that does not read). Returns within about ``timeout`` seconds (plus that
        grace) whatever the clients do; a thread still running then is logged. Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._faults.resume()
        self._timer.stop()
        self._stop_listener()
        conns = self._open_conns()
        for conn in conns:
            # The writer writes what a stall held, then the close frame; this thread never
            # writes, so a client that does not read cannot block it (it is cut below).
            conn.request_flush()
            self._apply(conn, Close(1001, "server shutting down"))
        with self._lock:
            for sock in self._handshaking.values():
                abort_socket(sock, reset=False)
        grace = time.monotonic() + min(1.0, self.close_timeout)
        self.wait_for(lambda: not self._conns, max(0.0, grace - time.monotonic()))
        for conn in self._open_conns():
            self._cut(conn, reset=True, force=True)
        with self._lock:
            threads = set(self._threads)
            threads.add(self._timer.thread)
            threads.update(c.ws.recv_events_thread for c in self._history)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            logger.warning("simulator threads still running after close: %s", alive)

    # -- addresses --------------------------------------------------------------------------

    @property
    def mm_url(self) -> str:
        """``ws://HOST:PORT/ws/subscribe``."""
        return f"{self._ws_scheme}://{_url_host(self.host)}:{self.port}{MM_PATH}"

    @property
    def api_key(self) -> str:
        """A valid MM key: the first of ``api_keys``, or the generated demo key."""
        return next(iter(self._api_keys))

    @property
    def api_keys(self) -> Mapping[str, str]:
        """Key -> client name."""
        return dict(self._api_keys)

    @property
    def rest_url(self) -> str:
        """``http://HOST:PORT``, base of ``/v1/ws/new`` and ``/v1/ws/renew``."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{_url_host(self.host)}:{self.port}"

    @property
    def feed_api_token(self) -> str:
        """The REST API token (``t=``) of the first feed plan."""
        return next(iter(self._feed_api_tokens))

    @property
    def feed_token(self) -> str:
        """The active WebSocket token of :attr:`feed_api_token` (issued as by ``/v1/ws/new``
        if none is active)."""
        return self.issue_feed_token(self.feed_api_token)

    @property
    def feed_url(self) -> str:
        """``ws://HOST:PORT/?token=...`` with :attr:`feed_token`."""
        return f"{self._ws_scheme}://{_url_host(self.host)}:{self.port}/?token={self.feed_token}"

    def issue_feed_token(self, api_token: str) -> str:
        """The active token for ``api_token`` (one of ``feed_api_tokens``), as ``/v1/ws/new``."""
        with self._lock:
            result = self._tokens.issue(api_token, time.monotonic(), time.time())
            if result is not None:
                self._note_secret(result[0].token)
        if result is None:
            raise ConfigError("unknown feed API token")
        issued, is_new = result
        if is_new:
            self._timer.call_later(self._tokens.ttl, self._expire_tokens)
        return issued.token

    @property
    def feed_matches(self) -> tuple[MatchInfo, ...]:
        """The feed generator's current matches (ids to subscribe to)."""
        with self._gen_lock:
            return self._matches.matches

    # -- observation ------------------------------------------------------------------------

    @property
    def connections(self) -> tuple[ConnectionInfo, ...]:
        """Every connection since start (open and closed), oldest first."""
        with self._lock:
            return tuple(self._info(c) for c in self._history)

    @property
    def active_connections(self) -> tuple[ConnectionInfo, ...]:
        """The open connections."""
        with self._lock:
            return tuple(self._info(c) for c in self._history if c.closed_at is None)

    def received_messages(self, connection_id: int | None = None) -> tuple[ReceivedMessage, ...]:
        """What clients sent (one connection, or all), in arrival order."""
        with self._lock:
            out = [
                m
                for c in self._history
                if connection_id is None or c.id == connection_id
                for m in c.received
            ]
        out.sort(key=lambda m: m.at)
        return tuple(out)

    @property
    def stats(self) -> SimStats:
        """Counters since the simulator started (connections, frames, commands, refused
        handshakes, HTTP responses, restarts)."""
        with self._lock:
            return SimStats(
                connections_opened=self._opened,
                connections_active=len(self._conns),
                frames_sent=self._frames_sent,
                commands_received=self._commands,
                handshakes_rejected=self._rejected,
                http_responses=self._http,
                restarts=self._restarts,
                listening=self._listener is not None,
            )

    @property
    def listening(self) -> bool:
        """True while the port accepts connections (False during :meth:`restart`)."""
        with self._lock:
            return self._listener is not None

    @property
    def last_burst(self) -> BurstResult | None:
        """What the last :meth:`burst` sent, and when; ``None`` before the first."""
        with self._lock:
            return self._last_burst

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` is true (re-checked on every change in the simulator:
        connections, messages, subscriptions, frames sent) or ``timeout``; its last value."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    # -- data -------------------------------------------------------------------------------

    def publish(
        self,
        channel: str,
        event: str,
        payload: Mapping[str, Any] | Any,
        old: Mapping[str, Any] | None = None,
        api_key: str | None = None,
    ) -> int:
        """Broadcast on an MM channel; the number of connections it was queued for.

        ``payload`` is a camelCase wire dict or a model (``mmws.mm.Order`` ...). Client
        channels go to every subscribed connection, or with ``api_key`` only to connections of
        that key's client; ``scores`` and ``emergency`` go to every subscriber.
        """
        if channel not in CHANNELS:
            raise ConfigError(f"unknown MM channel {channel!r}")
        if not isinstance(payload, Mapping):
            if not attrs.has(type(payload)):
                raise TypeError("payload must be a wire dict or an mmws model instance")
            payload = model_codec(type(payload)).unstructure(payload)
        client = None
        if api_key is not None:
            client = self._api_keys.get(api_key)
            if client is None:
                raise ConfigError("api_key is not one of the simulator's keys")
        kind = event.value if isinstance(event, Enum) else str(event)
        return self._deliver_mm(channel, encode_broadcast(channel, kind, payload, old), client)

    def step(self, count: int = 1) -> list[ScenarioEvent]:
        """Generate and send the next ``count`` scenario events now (any ``rate``)."""
        out = []
        for _ in range(count):
            with self._gen_lock:
                event = self._scenario.next_event()
            self._deliver_mm(event.channel, encode(event.frame()), event.client)
            out.append(event)
        return out

    def burst(
        self,
        count: int,
        channel: str = "orders",
        rate: float | None = None,
        api_key: str | None = None,
    ) -> int:
        """Send ``count`` pre-encoded order-fill broadcasts (``orderId`` 1..count) to every
        connection of ``api_key`` (default: :attr:`api_key`) subscribed to ``orders``; block
        until written; return the frames written (all connections together).

        Without ``rate`` the frames are written in 256 KiB chunks as fast as each socket takes
        them; with ``rate`` (events/s) one at a time on schedule (see :class:`BurstResult`).
        Blocks until every frame is written or its connection has ended (during a
        :meth:`stall`, until :meth:`resume`). A reader keeps up best with websocket-client's
        ``skip_utf8_validation=True``.
        """
        if channel != "orders":
            raise ConfigError("burst sends order fills: channel must be 'orders'")
        key = self.api_key if api_key is None else api_key
        if key not in self._api_keys:
            raise ConfigError("api_key is not one of the simulator's keys")
        with self._lock:
            targets = [
                c
                for c in self._conns.values()
                if isinstance(c.session, MMServerSession)
                and c.session.api_key == key
                and c.session.wants(channel, None)
                and not c.closing
            ]
        frames = [
            Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
            for text in burst_frames(count)
        ]
        tally = _Tally()
        started = time.monotonic()
        if rate is None:
            chunks: list[tuple[bytes, int]] = []
            pending: list[bytes] = []
            size = 0
            for frame in frames:
                pending.append(frame)
                size += len(frame)
                if size >= _CHUNK:
                    chunks.append((b"".join(pending), len(pending)))
                    pending, size = [], 0
            if pending:
                chunks.append((b"".join(pending), len(pending)))
            for conn in targets:
                for data, n in chunks:
                    conn.enqueue(_Raw(data, n, tally), self.max_send_queue + len(chunks))
        else:
            if not rate > 0:
                raise ConfigError(f"rate must be > 0, got {rate!r}")
            for i, frame in enumerate(frames):
                delay = started + i / rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                for conn in targets:
                    conn.enqueue(_Raw(frame, 1, tally), self.max_send_queue + count)
        markers = []
        for conn in targets:
            marker = _Marker(threading.Event())
            conn.enqueue(marker, self.max_send_queue + len(frames) + 1)
            markers.append(marker)
        for marker in markers:
            marker.done.wait()
        result = BurstResult(tally.frames, len(targets), started, time.monotonic(), rate)
        with self._lock:
            self._last_burst = result
        return tally.frames

    def publish_feed(self, frame: Mapping[str, Any]) -> int:
        """Send a feed data frame to the subscriptions it belongs to; the frames queued.

        Shape 2 (``"type":"event"``) goes to the subscription named by its ``channel``,
        ``scope`` and ``id``; anything else (shape 1) to ``C:all``, ``C:match:<matchId>`` and
        ``C:league:<leagueId>``, once per connection.
        """
        channel = frame.get("channel")
        if channel not in FEED_CHANNELS:
            raise ConfigError(f"unknown feed channel {channel!r}")
        if frame.get("type") == "event":
            scope = frame.get("scope")
            sid = frame.get("id")
            keys: tuple[str, ...] = (Topic(str(channel), str(scope), sid and str(sid)).key,)
        else:
            keys = (
                f"{channel}:all",
                f"{channel}:match:{frame.get('matchId')}",
                f"{channel}:league:{frame.get('leagueId')}",
            )
        text = encode(frame)
        sent = 0
        for conn in self._feed_conns():
            topics = conn.session.topics if isinstance(conn.session, FeedServerSession) else {}
            if any(k in topics for k in keys) and conn.enqueue(text, self.max_send_queue):
                sent += 1
        return sent

    def step_feed(self, count: int = 1) -> list[FeedUpdate]:
        """Generate and send the next ``count`` feed updates now (any ``feed_rate``)."""
        out = []
        for _ in range(count):
            with self._gen_lock:
                update = self._matches.next_update()
            self._deliver_feed(update)
            out.append(update)
        return out

    def send_batch_update(self) -> int:
        """Send ``batch_update`` to every STATS/ODDS ``all`` subscription now (the timer does
        it every ``feed_batch_interval``); the frames queued."""
        sent = 0
        for channel in ("STATS", "ODDS"):
            key = f"{channel}:all"
            if not self._all_subscribers(key):
                continue
            with self._gen_lock:
                matches = self._matches.snapshot(channel)
            frame = {
                "type": "event",
                "channel": channel,
                "scope": "all",
                "id": None,
                "eventType": "batch_update",
                "eventId": f"batch{next(self._batch_ids):06d}",
                "ts": int(time.time() * 1000),
                "data": {"matches": matches},
            }
            text = encode(frame)
            # Chosen and queued under the lock, so after any subscribe reply (see _read_loop).
            with self._lock:
                sent += sum(
                    1 for c in self._all_subscribers(key) if c.enqueue(text, self.max_send_queue)
                )
        return sent

    def _all_subscribers(self, key: str) -> list[_Conn]:
        with self._lock:
            return [
                c
                for c in self._feed_conns()
                if isinstance(c.session, FeedServerSession) and key in c.session.topics
            ]

    def send_raw(self, text: str | bytes, endpoint: str | None = None) -> int:
        """Send ``text`` verbatim (a text frame; ``bytes`` as UTF-8 text) to every open
        connection (or those of ``endpoint``, "mm" or "feed"); the number reached."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return sum(
            1
            for c in self._open_conns()
            if (endpoint is None or c.endpoint == endpoint)
            and c.enqueue(text, self.max_send_queue)
        )

    # -- faults -----------------------------------------------------------------------------

    def drop_connections(self, *, reset: bool = True, endpoint: str | None = None) -> int:
        """Cut every open connection's TCP without a close frame: RST (``reset``) or FIN.
        The client sees the connection lost (no close code). Returns the number cut."""
        conns = [c for c in self._open_conns() if endpoint is None or c.endpoint == endpoint]
        for conn in conns:
            self._cut(conn, reset=reset)
        return len(conns)

    def close_connections(
        self, code: int = 1000, reason: str = "", *, endpoint: str | None = None
    ) -> int:
        """Close every open connection with ``code`` and ``reason``, after the frames already
        queued for it; returns at once (the writer does the closing handshake)."""
        conns = [c for c in self._open_conns() if endpoint is None or c.endpoint == endpoint]
        for conn in conns:
            self._apply(conn, Close(code, reason))
        return len(conns)

    def stall(self) -> None:
        """Keep every TCP connection open but write nothing and answer nothing until
        :meth:`resume` (frames are held, not dropped; see :mod:`mmws.sim.faults`)."""
        self._faults.stall()

    def resume(self) -> None:
        """End a :meth:`stall`: held frames go out, held commands are answered. Returns at
        once: each connection's writer does the writing (a client that does not read delays
        only its own connection)."""
        self._faults.resume()
        for conn in self._open_conns():
            conn.request_flush()

    @property
    def stalled(self) -> bool:
        """True between :meth:`stall` and :meth:`resume`."""
        return self._faults.stalled

    def pause_heartbeats(self) -> None:
        """Stop MM heartbeats (everything else flows)."""
        self._faults.pause_heartbeats()

    def resume_heartbeats(self) -> None:
        self._faults.resume_heartbeats()

    def delay_pongs(self, seconds: float) -> None:
        """Send each pong ``seconds`` after its ping (``math.inf``: never; 0: at once)."""
        self._faults.delay_pongs(seconds)

    def reject_handshakes(self, status: int | None) -> None:
        """Refuse WebSocket upgrades with HTTP ``status`` (e.g. 429, 503); None to stop."""
        self._faults.reject_handshakes(status)

    def restart(self, down_for: float = 1.0, *, wait: bool = False) -> None:
        """Stop listening and cut every connection (RST), then listen again on the same port
        after ``down_for`` seconds. Returns at once unless ``wait``; watch
        :attr:`listening` / ``stats.restarts`` (or ``wait_for``) to know when it is back."""
        with self._restart_lock:
            self._stop_listener()
            self.drop_connections()

        def come_back() -> None:
            if self._stop.wait(down_for):
                return
            with self._restart_lock:
                if not self._stop.is_set():
                    self._start_listener()
                    with self._changed:
                        self._restarts += 1
                        self._changed.notify_all()

        if wait:
            come_back()
        else:
            self._spawn(come_back, "mmws-sim-restart")

    def revoke_key(self, api_key: str) -> None:
        """Make ``api_key`` invalid ("client is inactive"): its next subscribe gets
        ``Invalid API key`` and a close. Open connections are left alone (cut them with
        :meth:`drop_connections` to force the client to subscribe again)."""
        if api_key not in self._api_keys:
            raise ConfigError("api_key is not one of the simulator's keys")
        with self._lock:
            self._revoked.add(api_key)

    def restore_key(self, api_key: str) -> None:
        """Undo :meth:`revoke_key`."""
        with self._lock:
            self._revoked.discard(api_key)

    # -- private: MM key registry (through _Registry) ---------------------------------------

    def _note_secret(self, secret: str) -> None:
        """Have the log filter hide ``secret`` (an issued feed token) too. Holds the lock."""
        if len(secret) >= _MIN_SECRET and secret not in self._secrets:
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

    # -- private: listening -----------------------------------------------------------------

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
            logger=_WS_LOGGER,
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

    def _run_connection(self, server: Server, sock: socket.socket, addr: Any, cid: int) -> None:
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

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        query = parse_qs(url.query)
        upgrade = (request.headers.get("Upgrade") or "").lower()
        if path.rstrip("/") in ("/v1/ws/new", "/v1/ws/renew"):
            return self._http_answer(self._rest(path.rstrip("/"), query))
        if path == MM_PATH:
            if "websocket" not in upgrade:
                return self._http_answer(_json_response(426, {"detail": _DETAIL_426}))
            rejected = self._maybe_reject()
            if rejected is None:
                self._accept(ws, request, "mm", "")
            return rejected
        if path in FEED_PATHS:
            if "websocket" not in upgrade:
                detail = "This endpoint requires a WebSocket connection"
                return self._http_answer(_json_response(426, {"detail": detail}))
            rejected = self._maybe_reject()
            if rejected is not None:
                return rejected
            token = (query.get("token") or [""])[0]
            if not token:
                return self._refuse(_json_response(401, rest_error(401, "Missing token")))
            with self._lock:
                issued = self._tokens.check(token, time.monotonic())
                known = self._tokens.known(token)
            if issued is None:
                text = "Token expired" if known else "Invalid token"
                return self._refuse(_json_response(403, rest_error(403, text)))
            self._accept(ws, request, "feed", token, issued.plan)
            return None
        return self._http_answer(_json_response(404, {"detail": "Not Found"}))

    def _http_answer(self, response: Response) -> Response:
        with self._lock:
            self._http += 1
        return response

    def _refuse(self, response: Response) -> Response:
        with self._changed:
            self._rejected += 1
            self._changed.notify_all()
        return response

    def _maybe_reject(self) -> Response | None:
        status = self._faults.reject_status
        if status is None:
            return None
        extra = [("Retry-After", "1")] if status in (429, 503) else []
        return self._refuse(_json_response(status, {"detail": _phrase(status)}, extra))

    def _rest(self, route: str, query: Mapping[str, list[str]]) -> Response:
        api_token = (query.get("t") or [""])[0]
        if api_token not in self._feed_api_tokens:
            return _json_response(401, rest_error(401, "Invalid API token"))
        now, wall = time.monotonic(), time.time()
        with self._lock:
            if route == "/v1/ws/new":
                result = self._tokens.issue(api_token, now, wall)
                assert result is not None
                issued, is_new = result
                self._note_secret(issued.token)
            else:
                renewed = self._tokens.renew(api_token, now, wall)
                if renewed is None:
                    return _json_response(
                        404, rest_error(404, "No active token; call /v1/ws/new first")
                    )
                issued, is_new = renewed, False
        self._timer.call_later(self._tokens.ttl, self._expire_tokens)
        limits = {
            "max_connections": self.feed_max_connections,
            "max_subscribe_per_connection": self.feed_max_subscribe_per_connection,
        }
        server = f"{self._ws_scheme}://{_url_host(self.host)}:{self.port}"
        return _json_response(200, self._tokens.result(issued, is_new, server, limits))

    # -- private: connections ---------------------------------------------------------------

    def _accept(
        self, ws: ServerConnection, request: Request, endpoint: str, token: str, plan: str = ""
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
            return _MM_PONG
        return encode({"type": "pong", "ts": int(time.time() * 1000)})

    def _write_loop(self, conn: _Conn) -> None:
        ws = conn.ws
        faults = self._faults
        while True:
            with conn.cond:
                while not conn.queue or (
                    faults.stalled and not self._stop.is_set() and not conn.stopping
                ):
                    conn.cond.wait()
                item = conn.queue.popleft()
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

    def _deliver_mm(self, channel: str, text: str, client: str | None) -> int:
        with self._lock:
            targets = [
                c
                for c in self._conns.values()
                if isinstance(c.session, MMServerSession)
                and not c.closing
                and c.session.wants(channel, client)
            ]
        return sum(1 for c in targets if c.enqueue(text, self.max_send_queue))

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

    # -- private: timers and pacing ---------------------------------------------------------

    def _heartbeat(self) -> None:
        if self._faults.stalled or self._faults.heartbeats_paused:
            return
        for conn in self._open_conns():
            if conn.endpoint == "mm" and not conn.closing:
                conn.enqueue(_HEARTBEAT, self.max_send_queue)

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

    # -- snapshots --------------------------------------------------------------------------

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
        }
        if isinstance(session, MMServerSession):
            return ConnectionInfo(
                **base,
                api_key=session.api_key,
                client=session.client,
                subscribed=session.subscribed,
                subscription_id=session.subscription_id,
                channels=tuple(sorted(session.channels)),
            )
        return ConnectionInfo(
            **base,
            token=session.token,
            topics=tuple(session.topics),
            command_times=tuple(session.command_times),
            rate_limited=session.rate_limited,
        )
