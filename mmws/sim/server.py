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
- ``GET /api/v1/...`` (header ``X-API-Key``): the MM REST API (orders, open orders, bets,
  accounts, trading status; see :mod:`mmws.sim._rest`), answered from the ground truth that
  every MM broadcast builds (:meth:`Simulator.truth`).
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

Faults of one connection (:mod:`mmws.sim._linefaults`): :meth:`Simulator.delay_connection`,
:meth:`~Simulator.drop_connection`, :meth:`~Simulator.half_open` and
:meth:`~Simulator.skip_broadcasts` with a ``connection_id``; :meth:`~Simulator.mm_connections`
finds the ids. For clients that hold two connections at once.

Threads (all daemon, all named ``mmws-sim-*``, all joined by :meth:`Simulator.close` within a
deadline): ``accept`` (listening socket), per connection ``conn-N`` (reads commands),
``recv-N`` (websockets' frame reader, renamed) and ``send-N`` (writes, in order), ``timer``
(heartbeats, delayed pongs, token expiry, batch updates), ``scenario`` (paces the generators;
only when a rate is > 0) and ``restart`` (during a non-blocking :meth:`restart`).
"""

from __future__ import annotations

import itertools
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from mmws.errors import ConfigError
from mmws.mm.client import MMClient
from mmws.sim._config import SimConfig, url_host
from mmws.sim._conn import FEED_PATHS, MM_PATH, _Conn
from mmws.sim._http import HttpRoutes
from mmws.sim._hub import Hub, _Listener, _Registry
from mmws.sim._linefaults import LineFaults
from mmws.sim._logfilter import MIN_SECRET, register
from mmws.sim._mmdata import MMData
from mmws.sim._rest import REST_LOG_SIZE, RestApi
from mmws.sim._timer import _Timer
from mmws.sim._truth import Truth
from mmws.sim.actions import Close, encode
from mmws.sim.faults import Faults, abort_socket
from mmws.sim.feed import CHANNELS as FEED_CHANNELS
from mmws.sim.feed import (
    FeedServerSession,
    TokenStore,
    Topic,
)
from mmws.sim.scenario import FeedUpdate, MatchGenerator, MatchInfo, Scenario
from mmws.sim.snapshots import (
    BurstResult,
    ConnectionInfo,
    ReceivedMessage,
    RestRequest,
    SimStats,
)

logger = logging.getLogger("mmws.sim")


__all__ = [
    "FEED_PATHS",
    "MM_PATH",
    "BurstResult",
    "ConnectionInfo",
    "ReceivedMessage",
    "RestRequest",
    "SimStats",
    "Simulator",
]


class Simulator(Hub, HttpRoutes, RestApi, MMData, LineFaults):
    """A local MM + feed WebSocket server for tests, demos and benchmarks.

    Starts listening at construction; use it as a context manager or call :meth:`close`.
    All public methods are thread-safe. Every argument after ``port`` is keyword-only.
    What :attr:`connections` and :meth:`received_messages` show is bounded
    (``max_recorded_*``, ``max_closed_connections``), so that a client flooding the
    simulator cannot grow its memory without limit.

    Args:
        host: The address to listen on (default ``"127.0.0.1"``).
        port: The TCP port; 0 (the default) picks a free one (see :attr:`mm_url`).
        api_keys: MM keys (UUIDs) -> client name; two keys may share a client. ``None``:
            one generated demo key for client ``"demo"`` (see :attr:`api_key`).
        seed: The seed of the scenario's random generator (default 0): the same seed gives
            the same events.
        rate: Scenario events per second on the MM endpoint (default 20); 0 sends only what
            you publish.
        heartbeat_interval: Seconds between the MM heartbeats sent to every open connection
            (default 60); ``None`` sends none.
        auth_timeout: Seconds an MM connection may stay without a subscribe before it is
            closed (default 30); ``None`` for no limit.
        max_connections_per_key: Open MM connections allowed per key (default 5); one more
            gets ``Connection limit exceeded``.
        legacy_field_names: Speak the MM protocol before 2026-04-18: read the key from
            ``api_key`` and answer with ``subscription_id`` (default ``False``).
        error_close_code: The close code after a fatal MM error (default 1008).
        send_error_frames: Send the error frame before that close (default ``True``);
            ``False`` closes only, since the real server's frame shape is undocumented.
        feed_api_tokens: Feed REST API tokens -> plan (``"BASIC"``, ``"PRO"``, ``"ULTRA"``,
            ``"MEGA"``). ``None``: one generated demo API token with plan ``feed_plan``.
        feed_plan: The plan of that demo token (default ``"MEGA"``, every channel).
        feed_rate: Feed updates per second; ``None`` (the default) uses ``rate``.
        feed_token_ttl: Seconds a feed WebSocket token lives (default 1500); its connections
            are closed when it expires.
        feed_max_connections: Open feed connections allowed per token (default 5).
        feed_max_subscribe_per_connection: Subscriptions allowed per feed connection
            (default 20); one more gets ``SUBSCRIPTION_LIMIT``.
        feed_max_commands_per_second: Feed commands allowed per connection in any second
            (default 10); more get ``RATE_LIMITED``. ``None`` for no limit.
        feed_batch_interval: Seconds between the ``batch_update`` frames sent to ``all``
            subscriptions of ``STATS`` and ``ODDS`` (default 30); ``None`` sends none.
        feed_matches: How many matches the feed generator plays (default 3; see
            :attr:`feed_matches`).
        max_size: The largest message accepted from a client, in bytes (default 1 MiB); a
            larger one closes that connection with 1009.
        max_send_queue: Frames queued for one connection before it is closed with 1008
            (default 100000): a client that does not read cannot grow memory for ever.
        close_timeout: Seconds a connection gets for the closing handshake (default 2).
        open_timeout: Seconds a client gets for the opening handshake (default 10).
        ssl_context: A server-side ``ssl.SSLContext``: the URLs become ``wss://`` and
            ``https://`` (for TLS tests with a locally issued certificate).
        max_recorded_messages: Messages (and feed ``command_times``) kept per connection,
            the latest (default 10000).
        max_recorded_size: Bytes; a longer message is kept as its first 256 characters,
            with ``truncated=True`` (default 64 KiB).
        max_closed_connections: Closed connections kept, the latest (default 1000; open ones
            are always kept).
        scenario_start: The start of the scenario's simulated clock, a timezone-aware
            ``datetime``. ``None`` (the default): now, in UTC, to the second, so REST date
            filters find the scenario's orders as on the real server.
        warn_unreached: Make :meth:`publish` warn (:class:`~mmws.sim.UnreachedWarning`) when
            a broadcast reaches no client (default ``False``): a test that publishes before
            its client has subscribed would otherwise wait for an event that never comes.

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
        scenario_start: datetime | None = None,
        warn_unreached: bool = False,
    ) -> None:
        self.warn_unreached = bool(warn_unreached)
        config = SimConfig(
            host=host,
            port=port,
            api_keys=api_keys,
            seed=seed,
            rate=rate,
            heartbeat_interval=heartbeat_interval,
            auth_timeout=auth_timeout,
            max_connections_per_key=max_connections_per_key,
            legacy_field_names=legacy_field_names,
            error_close_code=error_close_code,
            send_error_frames=send_error_frames,
            feed_api_tokens=feed_api_tokens,
            feed_plan=feed_plan,
            feed_rate=feed_rate,
            feed_token_ttl=feed_token_ttl,
            feed_max_connections=feed_max_connections,
            feed_max_subscribe_per_connection=feed_max_subscribe_per_connection,
            feed_max_commands_per_second=feed_max_commands_per_second,
            feed_batch_interval=feed_batch_interval,
            feed_matches=feed_matches,
            max_size=max_size,
            max_send_queue=max_send_queue,
            close_timeout=close_timeout,
            open_timeout=open_timeout,
            ssl_context=ssl_context,
            max_recorded_messages=max_recorded_messages,
            max_recorded_size=max_recorded_size,
            max_closed_connections=max_closed_connections,
            scenario_start=scenario_start,
        )
        self.config = config
        try:
            self._tokens = TokenStore(config.api_tokens, config.feed_token_ttl)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        # The knobs a test may turn while the simulator runs are plain attributes.
        for name in config.RUNTIME:
            setattr(self, name, getattr(config, name))
        self._api_keys = dict(config.api_keys)
        self._feed_api_tokens = dict(config.api_tokens)
        self.feed_rate = config.rate if config.feed_rate is None else config.feed_rate
        self._ws_scheme = "wss" if ssl_context is not None else "ws"
        # What the log filter hides verbatim; replaced (never mutated) when a token is issued.
        self._secrets: frozenset[str] = frozenset(
            s for s in (*self._api_keys, *self._feed_api_tokens) if len(s) >= MIN_SECRET
        )
        register(self)

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._gen_lock = threading.Lock()
        self._restart_lock = threading.Lock()
        self._faults = Faults()
        self._stop = threading.Event()
        self._closed = False
        self._clients: list[MMClient] = []  # made by mm_client(): closed by close()
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
        assert config.scenario_start is not None  # SimConfig fills it in
        self._scenario_start = config.scenario_start
        self._scenario = Scenario(config.seed, clients, start=self._scenario_start)
        self._truth = Truth({c: self._scenario.accounts(c) for c in clients})
        self._rest_log = deque(maxlen=REST_LOG_SIZE)
        self._matches = MatchGenerator(config.seed, config.feed_matches)

        self.port = config.port
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

        Args:
            timeout: Seconds to wait, at most, for the simulator's threads (default 5).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._faults.resume()
        self._timer.stop()
        self._stop_listener()
        conns = self._open_conns()
        for conn in conns:
            if conn.half_open:
                # Its close frame could not reach the client: cut it now, not after the grace.
                self._cut(conn, reset=True)
                continue
            # The writer writes what a stall held (what a delay holds, at once), then the
            # close frame; this thread never writes, so a client that does not read cannot
            # block it (it is cut below).
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
        return f"{self._ws_scheme}://{url_host(self.host)}:{self.port}{MM_PATH}"

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
        """``http://HOST:PORT``, base of ``/v1/ws/new``, ``/v1/ws/renew`` and the MM REST API
        (``/api/v1/...``)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{url_host(self.host)}:{self.port}"

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
        return f"{self._ws_scheme}://{url_host(self.host)}:{self.port}/?token={self.feed_token}"

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
        """What clients sent (one connection, or all), in arrival order.

        Args:
            connection_id: Only this connection's messages (an id from
                :attr:`connections`); ``None`` (the default) for every connection's.
        """
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
        connections, messages, subscriptions, frames sent) or ``timeout``; its last value.

        Args:
            predicate: A function of no arguments, e.g.
                ``lambda: sim.stats.commands_received >= 1``.
            timeout: Seconds to wait, at most (default 5).
        """
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def wait_subscribed(
        self, count: int = 1, timeout: float = 5.0, *, channel: str | None = None
    ) -> int:
        """Wait until at least ``count`` open MM connections have subscribed (to
        ``channel``, if given); return how many have. Raises ``TimeoutError`` saying how
        many had after ``timeout`` seconds.

        Args:
            count: How many subscribed MM connections to wait for (default 1).
            timeout: Seconds to wait, at most (default 5).
            channel: Count only the connections subscribed to this channel, e.g.
                ``"orders"``; ``None`` (the default) counts every subscribed one.
        """

        def subscribed() -> int:
            return sum(
                1
                for c in self.active_connections
                if c.endpoint == "mm"
                and c.subscribed
                and (channel is None or channel in c.channels)
            )

        if not self.wait_for(lambda: subscribed() >= count, timeout):
            what = f" to {channel!r}" if channel else ""
            raise TimeoutError(
                f"{subscribed()} MM connection(s) subscribed{what} within {timeout} s, "
                f"not {count}"
            )
        return subscribed()

    def mm_client(self, **options: Any) -> MMClient:
        """An :class:`~mmws.MMClient` for this simulator (its key and URL), connected and
        subscribed, closed when the simulator closes: ``client = sim.mm_client()``.
        ``options`` go to ``MMClient`` (``channels``, ``state``, ``maxsize`` ...)."""
        client = MMClient(self.api_key, url=self.mm_url, **options)
        with self._lock:
            self._clients.append(client)
        client.connect()
        return client

    # -- data -------------------------------------------------------------------------------

    def publish_feed(self, frame: Mapping[str, Any]) -> int:
        """Send a feed data frame to the subscriptions it belongs to; the frames queued.

        Shape 2 (``"type":"event"``) goes to the subscription named by its ``channel``,
        ``scope`` and ``id``; anything else (shape 1) to ``C:all``, ``C:match:<matchId>`` and
        ``C:league:<leagueId>``, once per connection.

        Args:
            frame: The whole frame, as a dict in the wire's form (camelCase keys), e.g.
                ``{"type": "goal", "channel": "MAIN", "matchId": "1", "data": {...}}``.
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
        """Generate and send the next ``count`` feed updates now (any ``feed_rate``).

        Args:
            count: How many updates to send (default 1).

        Returns:
            The updates sent, in order.
        """
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

    def send_raw(self, text: str | bytes, endpoint: str | None = None) -> int:
        """Send ``text`` verbatim (a text frame; ``bytes`` as UTF-8 text) to every open
        connection (or those of ``endpoint``, "mm" or "feed"); the number reached.

        Args:
            text: The frame's text, sent as it is (it need not be valid JSON).
            endpoint: ``"mm"`` or ``"feed"`` for only that endpoint's connections; ``None``
                (the default) for all.
        """
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
        The client sees the connection lost (no close code). Returns the number cut.

        Args:
            reset: ``True`` (the default) sends RST, ``False`` a FIN.
            endpoint: ``"mm"`` or ``"feed"`` for only that endpoint's connections; ``None``
                (the default) for all.
        """
        conns = [c for c in self._open_conns() if endpoint is None or c.endpoint == endpoint]
        for conn in conns:
            self._cut(conn, reset=reset)
        return len(conns)

    def close_connections(
        self, code: int = 1000, reason: str = "", *, endpoint: str | None = None
    ) -> int:
        """Close every open connection with ``code`` and ``reason``, after the frames already
        queued for it; returns at once (the writer does the closing handshake).

        Args:
            code: The close code (default 1000, a normal close).
            reason: The close reason text (default empty).
            endpoint: ``"mm"`` or ``"feed"`` for only that endpoint's connections; ``None``
                (the default) for all.

        Returns:
            How many connections are being closed.
        """
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
        """Send MM heartbeats again after :meth:`pause_heartbeats`."""
        self._faults.resume_heartbeats()

    def delay_pongs(self, seconds: float) -> None:
        """Send each pong ``seconds`` after its ping (``math.inf``: never; 0: at once).

        Args:
            seconds: The delay of every pong from now on, MM and feed.
        """
        self._faults.delay_pongs(seconds)

    def reject_handshakes(self, status: int | None) -> None:
        """Refuse WebSocket upgrades with HTTP ``status`` (e.g. 429, 503); None to stop.

        Args:
            status: The HTTP status to answer every upgrade with; ``None`` accepts them
                again.
        """
        self._faults.reject_handshakes(status)

    def restart(self, down_for: float = 1.0, *, wait: bool = False) -> None:
        """Stop listening and cut every connection (RST), then listen again on the same port
        after ``down_for`` seconds. Returns at once unless ``wait``; watch
        :attr:`listening` / ``stats.restarts`` (or ``wait_for``) to know when it is back.

        Args:
            down_for: Seconds the port stays closed (default 1).
            wait: Block until it listens again (default ``False``).
        """
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
        :meth:`drop_connections` to force the client to subscribe again).

        Args:
            api_key: One of the simulator's keys (``ConfigError`` otherwise).
        """
        if api_key not in self._api_keys:
            raise ConfigError("api_key is not one of the simulator's keys")
        with self._lock:
            self._revoked.add(api_key)

    def restore_key(self, api_key: str) -> None:
        """Undo :meth:`revoke_key`.

        Args:
            api_key: The key to accept again.
        """
        with self._lock:
            self._revoked.discard(api_key)

