"""``MMClient``: the 55-tech market-making stream as typed events in one ordered queue.

What the user holds; the engine it drives is :class:`mmws.mm._engine.MMEngine`
(see :mod:`mmws._handle` for why they are two objects)."""

from __future__ import annotations

import hashlib
import ssl
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

from mmws._handle import ClientHandle
from mmws._recorder import Recorder
from mmws._secret import Secret
from mmws._session import Health
from mmws.errors import ConnectionLimitError
from mmws.mm._engine import DEFAULT_URL, MMEngine
from mmws.mm.events import MMStreamEvent
from mmws.mm.protocol import CHANNELS
from mmws.mm.rest import MMRest
from mmws.mm.state import MMState

__all__ = ["DuplicateClientWarning", "MMClient"]


class DuplicateClientWarning(UserWarning):
    """An ``MMClient`` was made while another one for the same key and URL is still open in
    this process: in a notebook, usually a cell run again, whose first client still runs
    (and holds one of the key's 5 connections). Given once per key and URL."""


_OPEN: weakref.WeakSet[MMClient] = weakref.WeakSet()  # made and not closed yet
_WARNED: set[tuple[str, str]] = set()  # (key, URL) pairs warned about: once each


def _key_id(api_key: Secret) -> str:
    """Tells keys apart without keeping another copy of one."""
    return hashlib.sha256(api_key.reveal().encode("utf-8", "replace")).hexdigest()


class MMClient(ClientHandle[MMStreamEvent]):
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

    _engine: MMEngine

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
    ) -> None:
        # Rebound at once: only the redacting type stays in this frame's locals, so a
        # ConfigError raised below shows no key in a traceback rendered with its locals.
        api_key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        arguments = {name: value for name, value in locals().items() if name != "self"}
        engine = MMEngine(**arguments)
        self._adopt(engine)
        self._identity = (_key_id(api_key), url)
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
            self._engine.connect()
        except ConnectionLimitError as exc:
            others = [
                c for c in self.open_clients()
                if c._identity[0] == self._identity[0] and c is not self
            ]  # fmt: skip
            held = sum(c._engine.connections for c in others)
            where = (
                f"this process holds {held} connection(s) for this key in {len(others)} other "
                "open MMClient(s); mmws.MMClient.open_clients() lists them"
                if others
                else "no other MMClient of this process holds one: they are elsewhere"
            )
            raise ConnectionLimitError(f"{exc.message} ({where})", exc.code) from None
        self._pin()
        return self

    @property
    def state(self) -> MMState:
        """The state cache (``MMClient(..., state=True)`` only; ``ConfigError`` otherwise):
        orders, open orders, bets, balances, scores and the emergency switch, kept equal to
        the server's across reconnects and gaps. See "Your orders and balances"."""
        return self._engine.state

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels this client subscribes to, validated, in the order given, without
        repeats (``ConfigError`` if one is unknown)."""
        return self._engine.channels

    def close(self, timeout: float = 5.0) -> None:
        """Stop: unsubscribe (best effort), close the socket and join every thread.

        Idempotent. Returns within ``timeout`` seconds even when the server is stalled.
        Events already queued stay readable; then ``get()`` raises ``ClientClosed``.

        Args:
            timeout: Seconds to wait, at most, for the goodbye, the sockets and the threads
                (default 5).
        """
        _OPEN.discard(self)
        self._engine.close(timeout)

    def health(self) -> Health:
        """A snapshot of the connection; with ``lines=2`` or more also each line's.

        Returns:
            A :class:`~mmws.Health`, safe to log (no secret is in it).
        """
        return self._engine.health()

    def ping(self, timeout: float | None = None) -> float:
        """Send a ping and wait for the pong; the round trip in seconds. With several
        lines, on the first line that is up.

        Args:
            timeout: Seconds to wait for the pong; ``None`` uses ``pong_timeout``. A pong
                that does not come in time raises ``TransportTimeout``.

        Returns:
            The round trip, in seconds.
        """
        return self._engine.ping(timeout)
