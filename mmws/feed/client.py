"""``FeedClient``: the Soccer Football Info feed on the same machinery as ``MMClient``.

What the user holds; the engine it drives is :class:`mmws.feed._engine.FeedEngine` (see
:mod:`mmws._handle` for why they are two objects)."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from pathlib import Path

from mmws._handle import ClientHandle
from mmws._recorder import Recorder
from mmws._secret import SecretURL
from mmws.feed._engine import FeedEngine
from mmws.feed.events import FeedStreamEvent
from mmws.feed.protocol import ScopeStyle

__all__ = ["FeedClient"]


class FeedClient(ClientHandle[FeedStreamEvent]):
    """A synchronous client of the Soccer Football Info WebSocket feed.

    ::

        feed = mmws.FeedClient(url=url_with_token, subscriptions=[("MAIN", "all")])
        feed.connect()
        feed.subscribe("ODDS", "match:12345")   # blocks until acknowledged
        rtt = feed.ping()
        for event in feed: ...

    Either ``url`` (with ``?token=``) or ``token_provider`` (a callable returning a fresh
    URL, asked at every connect and reconnect; see :class:`mmws.RestTokenProvider`) must be
    given. Commands (subscribe, unsubscribe, ping, and resubscribing after a reconnect) pass
    one sliding-window limiter: at most ``rate_limit`` in any second plus a margin; callers
    wait, they are not refused. Every active subscription is restored after a reconnect.

    Nothing touches the network before :meth:`connect` (or ``with``). A bad value raises
    ``ConfigError`` here, or in ``connect()`` for a channel or scope.

    Args:
        url: The WebSocket URL with the access token, ``wss://...?token=...``; the token is
            kept redacted. Give ``url`` or ``token_provider``, not both.
        subscriptions: The ``(channel, scope)`` pairs :meth:`connect` subscribes to.
            Default: ``[("MAIN", "all")]``. See :meth:`subscribe` for the channels and
            scopes.
        ping_interval: Seconds between the client's pings (default 30); ``None`` sends none.
        pong_timeout: Seconds a ping may wait for its pong (default 10); after that the
            connection counts as dead: ``Stale``, then a reconnect.
        connect_timeout: Seconds for one whole connection attempt (default 10): TCP, proxy,
            TLS, the WebSocket upgrade and the confirmation of every subscription. Also the
            default timeout of :meth:`subscribe` and :meth:`unsubscribe`.
        backoff_base: Seconds; the first reconnect waits at most this long, and the limit
            doubles with each attempt (default 0.5; the waits are random, full jitter).
        backoff_cap: The longest wait between reconnect attempts, in seconds (default 30).
        scope_style: How a scope goes on the wire: ``"seed"`` (the default) sends
            ``"scope": "match:12345"``, ``"split"`` sends ``"scope": "match", "id": "12345"``.
            Your code always writes ``"match:12345"``.
        token_provider: Instead of ``url``: a callable that returns the WebSocket URL with a
            fresh token, asked at every connect and reconnect (for example a
            :class:`~mmws.RestTokenProvider`).
        reconnect: Reconnect after a lost connection (default ``True``); ``False`` closes the
            client at the first disconnect.
        maxsize: How many events the queue holds (default 10000); when it is full, the
            reader stops reading and TCP pushes back on the server. Nothing is dropped.
        heartbeat_timeout: Seconds the server may stay completely silent before the
            connection counts as dead; ``None`` (the default) for no limit.
        rate_limit: At most this many commands (subscribe, unsubscribe, ping) in any second
            (default 10, the server's limit); more wait their turn.
        rate_margin: Seconds added to that one-second window against clock and network skew
            (default 0.1).
        on_event: A callable that receives every event on the ``mmws-dispatch`` thread,
            instead of your code calling :meth:`get`. An exception it raises is logged, and
            the stream goes on.
        deliver_keepalive: Also deliver the ``FeedPong`` events (default ``False``: the
            client consumes them).
        io_timeout: Seconds one send may block before the connection counts as broken
            (default 10).
        backoff_reset_after: Seconds; a connection that lived at least this long starts the
            next outage again from the short waits (default 60).
        record: A file (``str`` or ``Path``; gzip when it ends in ``.gz``) to record every
            frame the server sends to, for :func:`mmws.replay`, or a :class:`~mmws.Recorder`
            to share; ``None`` (the default) records nothing.
        ssl_context: The ``ssl.SSLContext`` to verify ``wss://`` servers with, instead of
            the system's trusted certificates.
        ca_file: A PEM file of the CA certificates to trust; ignored when ``ssl_context`` is
            given.
        verify_tls: ``False`` turns certificate verification off, for a test server only; a
            warning is logged at creation and at every connection. Default ``True``.
        proxy_host: The proxy's host name. ``None`` (the default) uses the ``https_proxy``
            (``wss://``) or ``http_proxy`` (``ws://``) environment variable, if set.
        proxy_port: The proxy's TCP port; needed with ``proxy_host``.
        proxy_auth: ``(user, password)`` for the proxy, kept redacted like the token.
        proxy_type: ``"http"`` (the default, HTTP ``CONNECT``), ``"socks4"``,
            ``"socks4a"``, ``"socks5"`` or ``"socks5h"`` (SOCKS needs the ``python-socks``
            package).
    """

    _engine: FeedEngine

    def __init__(
        self,
        url: str | SecretURL | None = None,
        subscriptions: Iterable[tuple[str, str]] = (("MAIN", "all"),),
        ping_interval: float | None = 30.0,
        pong_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        scope_style: ScopeStyle = "seed",
        *,
        token_provider: Callable[[], str] | None = None,
        reconnect: bool = True,
        maxsize: int = 10_000,
        heartbeat_timeout: float | None = None,
        rate_limit: int = 10,
        rate_margin: float = 0.1,
        on_event: Callable[[FeedStreamEvent], object] | None = None,
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
    ) -> None:
        if isinstance(url, str):
            url = SecretURL(url)  # the token stays out of this frame's locals
        arguments = {name: value for name, value in locals().items() if name != "self"}
        engine = FeedEngine(**arguments)
        self._adopt(engine)

    def connect(self) -> FeedClient:
        """Connect, subscribe to ``subscriptions`` and block until each is acknowledged.

        Raises ``ConfigError`` for a bad channel or scope before any network use,
        ``SubscriptionError`` if the server refuses one, and the errors of
        :meth:`MMClient.connect` otherwise. Calling it on a connected client does nothing.

        Returns:
            The client itself, so ``feed = FeedClient(url=...).connect()`` works.
        """
        return super().connect()

    def subscribe(self, channel: str, scope: str, timeout: float | None = None) -> None:
        """Subscribe and block until the server acknowledges (``timeout`` defaults to
        ``connect_timeout``). Raises ``ConfigError`` for a bad channel or scope (nothing is
        sent), ``SubscriptionError`` with the server's ``code`` when refused.

        The subscription is kept: a reconnect restores it. If no answer comes in time,
        ``TransportTimeout`` is raised and the topic stays requested; :meth:`unsubscribe`
        drops it.

        Args:
            channel: One of ``MAIN``, ``STATS``, ``ODDS``, ``STATS_REALTIME``,
                ``ODDS_REALTIME`` and ``MAIN_REALTIME`` (:data:`mmws.FEED_CHANNELS`).
            scope: ``"all"``, ``"match:<id>"`` or ``"league:<id>"`` (ids of letters,
                digits, ``_``, ``-`` and ``.``).
            timeout: Seconds to wait for the answer (and, before that, for the rate
                limiter); ``None`` uses ``connect_timeout``.
        """
        self._engine.subscribe(channel, scope, timeout)

    def unsubscribe(self, channel: str, scope: str, timeout: float | None = None) -> None:
        """Unsubscribe from exactly the channel and scope used to subscribe; blocks until
        acknowledged. The server's error (e.g. not subscribed) is a ``SubscriptionError``.

        Args:
            channel: The channel, as given to :meth:`subscribe`.
            scope: The scope, as given to :meth:`subscribe` (``"all"``, ``"match:<id>"``
                or ``"league:<id>"``).
            timeout: Seconds to wait for the answer (and, before that, for the rate
                limiter); ``None`` uses ``connect_timeout``.
        """
        self._engine.unsubscribe(channel, scope, timeout)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The topics (``CHANNEL:scope``) this client keeps subscribed, reconnects included."""
        return self._engine.subscriptions
