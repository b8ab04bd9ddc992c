"""``MMClient``: the 55-tech market-making stream as typed events in one ordered queue."""

from __future__ import annotations

import hashlib
import logging
import ssl
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

from mmws._client import StreamClient
from mmws._delivery import Lane
from mmws._options import ClientOptions
from mmws._recorder import Recorder
from mmws._secret import Secret, SecretSet
from mmws._session import Health, ProtocolCore, Session
from mmws.errors import (
    ClientClosed,
    ConfigError,
    ConnectionLimitError,
    ConnectTimeout,
    MmwsError,
)
from mmws.errors import ServerError as ServerErrorException
from mmws.lifecycle import Connected, KeepaliveEvent
from mmws.mm._lines import LineGroup
from mmws.mm._resync import StateKeeper
from mmws.mm.events import (
    EmergencyEvent,
    MMStreamEvent,
    ScoreEvent,
    ServerErrorEvent,
    Subscribed,
)
from mmws.mm.protocol import (
    CHANNELS,
    MMProtocol,
    MMProtocolState,
    validate_api_key,
    validate_channels,
)
from mmws.mm.rest import MMRest
from mmws.mm.state import MMState

__all__ = ["DuplicateClientWarning", "MMClient"]

DEFAULT_URL: Final = "wss://mmapi.55-tech.com/ws/subscribe"

log = logging.getLogger("mmws.client")


class DuplicateClientWarning(UserWarning):
    """An ``MMClient`` was made while another one for the same key and URL is still open in
    this process: in a notebook, usually a cell run again, whose first client still runs
    (and holds one of the key's 5 connections). Given once per key and URL."""


_OPEN: weakref.WeakSet[MMClient] = weakref.WeakSet()  # made and not closed yet (not lines)
_WARNED: set[tuple[str, str]] = set()  # (key, URL) pairs warned about: once each


def _key_id(api_key: Secret) -> str:
    """Tells keys apart without keeping another copy of one."""
    return hashlib.sha256(api_key.reveal().encode("utf-8", "replace")).hexdigest()


class MMClient(StreamClient[MMStreamEvent]):
    """A synchronous client of the MM WebSocket.

    ::

        with mmws.MMClient(api_key, channels=["orders", "bets"]) as client:
            for event in client:
                ...

    Delivery: ``orders``, ``bets``, ``accounts`` and ``emergency`` events are never dropped
    (when ``maxsize`` events wait, the reader stops reading and TCP pushes back on the
    server); ``emergency`` jumps ahead of a backlog; ``scores`` may be coalesced to the latest
    per fixture when the queue is full, announced by ``Overflow``. Lifecycle events
    (``Connected``, ``Subscribed``, ``Disconnected``, ``Reconnecting``, ``Stale``,
    ``Closed``) arrive in order with the data.

    ``heartbeat_timeout`` (default 90 s) bounds the silence allowed from a server that
    promises a heartbeat every 60 s. ``on_event=`` runs a callback on the ``mmws-dispatch``
    thread instead of calling ``get()``. Set ``deliver_keepalive=True`` to also receive
    ``Pong`` and ``Heartbeat`` events. TLS: ``ssl_context=`` or ``ca_file=``;
    ``verify_tls=False`` disables verification and logs a warning. Proxies: ``proxy_host``,
    ``proxy_port``, ``proxy_auth``, ``proxy_type``.

    ``state=True`` keeps :attr:`state` (your orders, bets and balances, resynced from REST
    after every reconnect and gap: ``rest_url``, ``rest``, ``resync_timeout``,
    ``resync_backoff``, ``audit_interval``; see "Your orders and balances"). ``lines=2`` (up
    to 5) keeps that many live connections and merges them, each broadcast once
    (``line_events``, ``line_window``, ``line_hold``; see "Hot standby" in the reconnect
    guide).

    Nothing touches the network before :meth:`connect` (or ``with``). Every option is a
    keyword from ``on_event`` on; a bad value raises ``ConfigError`` here, or in
    ``connect()`` for the key and the channels.

    Args:
        api_key: Your MM API key, a UUID (``8-4-4-4-12`` hex digits). It is kept redacted:
            no repr, error, log line or recording shows it.
        channels: The channels to subscribe to, from ``orders``, ``bets``, ``accounts``,
            ``scores`` and ``emergency`` (a list, or one comma-separated string). Default:
            all five (:data:`mmws.CHANNELS`).
        url: The WebSocket URL (``ws://`` or ``wss://``). Default: the production server,
            ``wss://mmapi.55-tech.com/ws/subscribe``.
        ping_interval: Seconds between the client's pings (default 30); ``None`` sends none.
        pong_timeout: Seconds a ping may wait for its pong (default 10); after that the
            connection counts as dead: ``Stale``, then a reconnect.
        heartbeat_timeout: Seconds the server may stay completely silent (default 90) before
            the connection counts as dead; ``None`` for no limit.
        connect_timeout: Seconds for one whole connection attempt (default 10): TCP, proxy,
            TLS, the WebSocket upgrade and the server's confirmation together.
        reconnect: Reconnect after a lost connection (default ``True``); ``False`` closes the
            client at the first disconnect.
        backoff_base: Seconds; the first reconnect waits at most this long, and the limit
            doubles with each attempt (default 0.5; the waits are random, full jitter).
        backoff_cap: The longest wait between reconnect attempts, in seconds (default 30).
        maxsize: How many events the queue holds (default 10000). When it is full, the
            reader stops reading (TCP pushes back on the server) and ``scores`` are
            coalesced; no other event is dropped.
        legacy_field_names: Subscribe with ``api_key`` instead of ``apiKey``, the field name
            of the server before 2026-04-18 (default ``False``).
        on_event: A callable that receives every event on the ``mmws-dispatch`` thread,
            instead of your code calling :meth:`get`. An exception it raises is logged, and
            the stream goes on.
        deliver_keepalive: Also deliver the ``Pong`` and ``Heartbeat`` events (default
            ``False``: the client consumes them).
        io_timeout: Seconds one send may block before the connection counts as broken
            (default 10); with ``state=True`` and no ``rest``, also the timeout of each
            REST request of the state cache.
        backoff_reset_after: Seconds; a connection that lived at least this long starts the
            next outage again from the short waits (default 60).
        record: A file (``str`` or ``Path``) to record every frame the server sends to, as
            JSON lines that :func:`mmws.replay` reads, or a :class:`~mmws.Recorder` to
            share; ``None`` (the default) records nothing. Only with ``lines=1``.
        ssl_context: The ``ssl.SSLContext`` to verify ``wss://`` servers with, instead of
            the system's trusted certificates.
        ca_file: A PEM file of the CA certificates to trust (your organisation's CA behind a
            TLS-intercepting proxy); ignored when ``ssl_context`` is given.
        verify_tls: ``False`` turns certificate verification off, for a test server only; a
            warning is logged at creation and at every connection. Default ``True``.
        proxy_host: The proxy's host name. ``None`` (the default) uses the ``https_proxy``
            (``wss://``) or ``http_proxy`` (``ws://``) environment variable, if set.
        proxy_port: The proxy's TCP port; needed with ``proxy_host``.
        proxy_auth: ``(user, password)`` for the proxy, kept redacted like the key.
        proxy_type: ``"http"`` (the default, HTTP ``CONNECT``), ``"socks4"``,
            ``"socks4a"``, ``"socks5"`` or ``"socks5h"`` (SOCKS needs the ``python-socks``
            package).
        state: Keep :attr:`state`, your orders, bets and balances, resynced from REST after
            every reconnect and gap (default ``False``).
        rest_url: With ``state=True``: the REST server's base URL. Default: the WebSocket
            URL's host and port, with ``wss`` turned into ``https`` (``ws`` into ``http``).
        rest: With ``state=True``: your own :class:`~mmws.MMRest` (for example with other
            timeouts or retries); it wins over ``rest_url``.
        resync_timeout: With ``state=True``: how long, in seconds, ``connect()`` waits for
            the first resync before it raises ``ConnectTimeout`` (default 30).
        resync_backoff: With ``state=True``: seconds before a failed resync is tried again
            (default 1); the wait doubles each time, up to 30 s.
        audit_interval: With ``state=True``: seconds between the audits that compare a
            synced state with REST (default 60); ``None`` never audits.
        lines: How many live connections to keep and merge (hot standby), from 1 (the
            default) to 5, the provider's limit per key.
        line_events: With ``lines=2`` or more: also deliver each line's own lifecycle
            events, with its number in ``line`` (default ``False``).
        line_window: With ``lines=2`` or more: seconds a delivered broadcast is remembered
            to recognise its copies from the other lines (default 10); a line that brings
            nothing for that long while another delivers is replaced.
        line_hold: With ``lines=2`` or more and ``state=True``: seconds a broadcast that does
            not follow on from the cached state is held back, waiting for another line to
            bring the one before it (default 0.25; 0 turns holding off; at most
            ``line_window``).
    """

    _lanes: Mapping[type, Lane] = MappingProxyType(
        {
            EmergencyEvent: Lane.PRIORITY,
            ScoreEvent: Lane.COALESCE,
            Connected: Lane.CONTROL,
        }
    )
    def __init__(
        self,
        api_key: str | Secret,
        channels: Iterable[str] = CHANNELS,
        url: str = DEFAULT_URL,
        ping_interval: float | None = 30.0,
        pong_timeout: float = 10.0,
        heartbeat_timeout: float | None = 90.0,
        connect_timeout: float = 10.0,
        reconnect: bool = True,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        maxsize: int = 10_000,
        legacy_field_names: bool = False,
        *,
        on_event: Callable[[MMStreamEvent], object] | None = None,
        deliver_keepalive: bool = False,
        io_timeout: float = 10.0,
        backoff_reset_after: float = 60.0,
        record: str | Path | Recorder | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        verify_tls: bool = True,
        proxy_host: str | None = None,
        proxy_port: int | None = None,
        proxy_auth: tuple[str, str] | None = None,
        proxy_type: str = "http",
        state: bool = False,
        rest_url: str | None = None,
        rest: MMRest | None = None,
        resync_timeout: float = 30.0,
        resync_backoff: float = 1.0,
        audit_interval: float | None = 60.0,
        lines: int = 1,
        line_events: bool = False,
        line_window: float = 10.0,
        line_hold: float = 0.25,
        _line: bool = False,
    ) -> None:
        # Rebound at once: only the redacting type stays in this frame's locals, so a
        # ConfigError raised below shows no key in a traceback rendered with its locals.
        api_key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        self._api_key = api_key
        self._channels_arg = tuple(channels) if not isinstance(channels, str) else channels
        self._legacy_field_names = legacy_field_names
        line_options = {k: v for k, v in locals().items() if k in _LINE_OPTIONS}
        # Every option is checked before the base class opens anything (a recording file).
        count = _line_count(lines)
        if count > 1 and record is not None:
            raise ConfigError("record= works with lines=1 only")
        window = _positive("line_window", line_window)
        if isinstance(line_hold, bool) or not isinstance(line_hold, int | float) or not (
            0 <= line_hold <= window
        ):
            raise ConfigError(f"line_hold must be a number from 0 to line_window ({window:g} s), "
                              f"got {line_hold!r}")  # fmt: skip
        if not state and (rest is not None or rest_url is not None):
            raise ConfigError("rest= and rest_url= are for the state cache: add state=True")
        if state:
            resync_wait = _positive("resync_timeout", resync_timeout)
            backoff = _positive("resync_backoff", resync_backoff)
            audit = None if audit_interval is None else _positive("audit_interval", audit_interval)
            if rest is None:
                rest = MMRest(
                    api_key,
                    base_url=rest_url if rest_url is not None else derive_rest_url(url),
                    timeout=io_timeout,
                    ssl_context=ssl_context,
                    ca_file=ca_file,
                    verify_tls=verify_tls,
                )
            elif not isinstance(rest, MMRest):
                raise ConfigError(f"rest must be an mmws.MMRest, got {type(rest).__name__}")
        options = ClientOptions.pick(locals())
        super().__init__(
            url=url, options=options, on_event=on_event, record=record, secrets=SecretSet(api_key)
        )
        self._keeper: StateKeeper | None = None
        if rest is not None:
            self._resync_timeout = resync_wait
            keeper = StateKeeper(
                rest,
                self._wake,
                self._command_for_keeper,
                self._queue.put_many,
                self._stop.is_set,
                retry_base=backoff,
                barrier_timeout=max(1.0, pong_timeout),
                audit_interval=audit,
                strict=count > 1,  # copies from several lines can come out of order
            )
            self._keeper = keeper
            self._event_filter = keeper.on_events
        self._line_hook: Callable[[], None] | None = None  # set on the lines of a group
        self._group: LineGroup | None = None
        self._group_error: MmwsError | None = None
        self._group_started = False
        if count > 1:
            stagger = float(backoff_base) / count
            members = []
            for index in range(count):
                member = MMClient(api_key, channels, url, _line=True, **line_options)
                member._stagger = index * stagger
                members.append(member)
            self._event_filter = None  # the lines decode; the group applies the state
            self._group = LineGroup(
                self, members, self._keeper, line_events=line_events, window=window,
                hold=float(line_hold),
            )
        self._identity = (_key_id(api_key), url)
        self._connections = count
        if not _line:
            others = [c for c in list(_OPEN) if c._identity == self._identity and c.is_open]
            if others and self._identity not in _WARNED:
                _WARNED.add(self._identity)
                warnings.warn(
                    DuplicateClientWarning(
                        f"{len(others)} other MMClient(s) for this key and URL are still open "
                        f"in this process ({', '.join(repr(c) for c in others)}): each holds "
                        "connections of the key's limit of 5. Close what you no longer need: "
                        "old_client.close(), or for c in mmws.MMClient.open_clients(): "
                        "c.close(); 'with mmws.MMClient(...) as client:' closes by itself."
                    ),
                    stacklevel=2,
                )
            _OPEN.add(self)

    @property
    def is_open(self) -> bool:
        """``True`` while the client is connected (or connecting, or reconnecting) and not
        closed."""
        return bool(self._threads or self._group_started) and not self._closing

    @classmethod
    def open_clients(cls) -> list[MMClient]:
        """Every ``MMClient`` of this process that is open (connected and not closed), for
        example to close the ones a notebook cell left behind."""
        return [c for c in list(_OPEN) if c.is_open]

    def connect(self) -> MMClient:
        """Validate the key and channels (``ConfigError``, before any network use), then
        connect and block until the server confirms the subscription.

        With ``state=True`` it also waits for the first resync from REST (at most
        ``resync_timeout``). With ``lines=2`` or more it returns once the first line is
        subscribed; the others connect in the background. Calling it on a connected client
        does nothing.

        Returns:
            The client itself, so ``client = MMClient(key).connect()`` works.

        Raises:
            ConfigError: A bad key, channel or setting (before any network use).
            AuthenticationError: The server (or, with ``state=True``, the REST API) refused
                the key. Never retried.
            ConnectionLimitError: The key already has its 5 connections open; the message
                says how many of them clients of this process hold.
            ConnectError: The host could not be reached, or the handshake failed
                (``CertificateError`` for a TLS certificate that does not verify).
            ConnectTimeout: ``connect_timeout`` ran out, or with ``state=True``
                ``resync_timeout`` did.
            ClientClosed: The client was closed.
        """
        try:
            return self._connect_checked()
        except ConnectionLimitError as exc:
            others = [
                c for c in self.open_clients()
                if c._identity[0] == self._identity[0] and c is not self
            ]  # fmt: skip
            held = sum(c._connections for c in others)
            where = (
                f"this process holds {held} connection(s) for this key in {len(others)} other "
                "open MMClient(s); mmws.MMClient.open_clients() lists them"
                if others
                else "no other MMClient of this process holds one: they are elsewhere"
            )
            raise ConnectionLimitError(f"{exc.message} ({where})", exc.code) from None

    def _connect_checked(self) -> MMClient:
        validate_api_key(self._api_key)
        self._channels = validate_channels(self._channels_arg)
        keeper = self._keeper
        if self._group is not None:
            if not self._connect_group():
                return self
        elif keeper is None or self._threads:
            return super().connect()
        else:
            super().connect()
        if keeper is None:
            return self
        self._start_thread("resync", keeper.run)
        deadline = time.monotonic() + self._resync_timeout
        with self._lock:
            while keeper.first_result is None and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
            result = keeper.first_result
        if result is True:
            return self
        self.close()
        if isinstance(result, MmwsError):
            raise result
        raise ConnectTimeout(
            f"the first state resync from {keeper.rest.base_url} did not finish within "
            f"{self._resync_timeout:g} s (resync_timeout); last error: {self._last_error}"
        )

    @property
    def state(self) -> MMState:
        """The state cache (``MMClient(..., state=True)`` only; ``ConfigError`` otherwise):
        orders, open orders, bets, balances, scores and the emergency switch, kept equal to
        the server's across reconnects and gaps. See "Your orders and balances"."""
        if self._keeper is None:
            raise ConfigError("this client keeps no state: create it with state=True")
        return self._keeper.state

    def close(self, timeout: float = 5.0) -> None:
        """Stop: unsubscribe (best effort), close the socket and join every thread.

        Idempotent. Returns within ``timeout`` seconds even when the server is stalled.
        Events already queued stay readable; then ``get()`` raises ``ClientClosed``.

        Args:
            timeout: Seconds to wait, at most, for the goodbye, the sockets and the threads
                (default 5).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        _OPEN.discard(self)
        if self._keeper is not None:
            self._keeper.rest.close()  # a REST request in flight ends now
        group = self._group
        if group is not None:
            with self._lock:
                self._closing = True  # what the lines report now is not the stream's
                self._wake.notify_all()
            self._stop.set()
            group.close(deadline)
            if self._group_error is not None:
                self._finish(self._group_error)
        super().close(max(0.0, deadline - time.monotonic()))

    def health(self) -> Health:
        """A snapshot of the connection; with ``lines=2`` or more also each line's.

        Returns:
            A :class:`~mmws.Health`, safe to log (no secret is in it).
        """
        base = super().health()
        return base if self._group is None else self._group.health(base)

    def ping(self, timeout: float | None = None) -> float:
        """Send a ping and wait for the pong; the round trip in seconds. With several
        lines, on the first line that is up.

        Args:
            timeout: Seconds to wait for the pong; ``None`` uses ``pong_timeout``. A pong
                that does not come in time raises ``TransportTimeout``.

        Returns:
            The round trip, in seconds.
        """
        if self._group is None:
            return super().ping(timeout)
        return self._group.live_line().ping(timeout)

    def _connect_group(self) -> bool:
        """Connect the lines; False when they already were."""
        assert self._group is not None
        with self._lock:
            if self._closing:
                raise ClientClosed("this client was closed; create a new one")
            if self._threads or self._group_started:
                return False
            self._group_started = True
        try:
            self._group.connect()
        except BaseException:
            self._group.close(time.monotonic() + 1.0)
            with self._lock:
                self._group_started = False
            raise
        if self._on_event is not None:
            self._start_thread("dispatch", self._run_dispatch)
        return True

    def _fatal_line(self, error: MmwsError) -> None:
        """A line ended for good (a refused key): the whole client does."""
        self._group_error = error
        self.close()

    def _command_for_keeper(
        self, send: Callable[[ProtocolCore, int], None], timeout: float | None
    ) -> None:
        if self._group is not None:
            self._group.command(send, timeout)
        else:
            self._paced_command(lambda core: send(core, 0), timeout)

    def _connection_lost(self) -> None:
        # After close() the state stays as it was then: a final view, not a stale one.
        if self._closing:
            return
        if self._line_hook is not None:
            self._line_hook()
        elif self._keeper is not None:
            self._keeper.connection_lost()

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels this client subscribes to, validated, in the order given, without
        repeats (``ConfigError`` if one is unknown)."""
        return validate_channels(self._channels_arg)

    def __repr__(self) -> str:
        key = getattr(self, "_api_key", None)
        hint = key.hint if isinstance(key, Secret) else "?"
        return f"{super().__repr__()[:-1]} key={hint!r}>"

    # -- hooks ------------------------------------------------------------------------------

    def _new_protocol(self) -> MMProtocol:
        return MMProtocol(
            legacy_field_names=self._legacy_field_names,
            keepalive=self._keepalive_for_new_protocol(),
        )

    def _handshake(self, session: Session, deadline: float) -> list[Any]:
        protocol = session.protocol
        assert isinstance(protocol, MMProtocol)
        with self._lock:
            protocol.subscribe(self._api_key, self._channels)
        self._send(session)
        events: list[Any] = []
        while True:
            for event in self._handshake_read(session, deadline):
                if isinstance(event, ServerErrorEvent):
                    # the core always attaches the classified exception
                    raise event.error or ServerErrorException(event.message, event.code)
                if isinstance(event, KeepaliveEvent) and not self._deliver_keepalive:
                    continue
                if isinstance(event, Subscribed) and event.missing:
                    log.warning(
                        "the server confirmed only %s of the channels asked for; missing: %s",
                        ", ".join(map(str, event.channels)) or "none",
                        ", ".join(event.missing),
                    )
                events.append(event)
            if protocol.state is MMProtocolState.SUBSCRIBED:
                return events


_LINE_OPTIONS: Final = frozenset(
    {
        "ping_interval", "pong_timeout", "heartbeat_timeout", "connect_timeout", "reconnect",
        "backoff_base", "backoff_cap", "legacy_field_names", "deliver_keepalive",
        "io_timeout", "backoff_reset_after", "ssl_context", "ca_file", "verify_tls",
        "proxy_host", "proxy_port", "proxy_auth", "proxy_type",
    }
)  # fmt: skip
"""The options each line of a hot-standby client takes from the client."""


def _line_count(lines: object) -> int:
    if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 5:
        raise ConfigError(f"lines must be an integer from 1 to 5 (5 connections per key), "
                          f"got {lines!r}")  # fmt: skip
    return lines


def derive_rest_url(ws_url: str) -> str:
    """The REST base URL of a WebSocket URL: ``wss`` -> ``https``, ``ws`` -> ``http``, the
    same host and port, no path."""
    parts = urlsplit(ws_url)
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ConfigError(
            f"cannot derive the REST URL from a {parts.scheme or 'schemeless'} URL: "
            "pass rest_url="
        )
    host = parts.netloc.rpartition("@")[2]  # never carry credentials over
    return f"{scheme}://{host}"


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a number > 0, got {value!r}")
    return float(value)
