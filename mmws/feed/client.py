"""``FeedClient``: the Soccer Football Info feed on the same machinery as ``MMClient``."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mmws._client import StreamClient
from mmws._delivery import Lane
from mmws._options import ClientOptions
from mmws._ratelimit import SlidingWindow
from mmws._recorder import Recorder
from mmws._secret import SecretURL
from mmws._session import Session
from mmws.errors import (
    ConfigError,
    SubscriptionError,
    TransportTimeout,
)
from mmws.feed.events import FeedError, FeedStreamEvent
from mmws.feed.protocol import (
    FeedProtocol,
    Request,
    ScopeStyle,
    topic_of,
    validate_channel,
    validate_scope,
)
from mmws.lifecycle import Connected, KeepaliveEvent

__all__ = ["FeedClient"]

log = logging.getLogger("mmws.feed")


class FeedClient(StreamClient[FeedStreamEvent]):
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

    _lanes: Mapping[type, Lane] = MappingProxyType(
        {Connected: Lane.CONTROL}
    )
    _protocol_name = "feed"

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
        if (url is None) == (token_provider is None):
            raise ConfigError("give exactly one of url= (with ?token=) or token_provider=")
        if token_provider is not None and not callable(token_provider):
            raise ConfigError("token_provider must be callable and return a WebSocket URL")
        if scope_style not in ("seed", "split"):
            raise ConfigError(f"scope_style must be 'seed' or 'split', got {scope_style!r}")
        self._scope_style: ScopeStyle = scope_style
        self._initial = list(subscriptions)
        self._subs = Subscriptions()
        window = SlidingWindow(rate_limit, 1.0, rate_margin)
        options = ClientOptions.pick(locals())
        super().__init__(
            url=url,
            options=options,
            on_event=on_event,
            record=record,
            token_provider=token_provider,
            rate_limit=window,
        )

    # -- public API -------------------------------------------------------------------------

    def connect(self) -> FeedClient:
        """Connect, subscribe to ``subscriptions`` and block until each is acknowledged.

        Raises ``ConfigError`` for a bad channel or scope before any network use,
        ``SubscriptionError`` if the server refuses one, and the errors of
        :meth:`MMClient.connect` otherwise. Calling it on a connected client does nothing.

        Returns:
            The client itself, so ``feed = FeedClient(url=...).connect()`` works.
        """
        with self._lock:
            for channel, scope in self._initial:
                validate_channel(channel)
                validate_scope(scope)
                self._subs.want(channel, scope, replace=False)
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
        validate_channel(channel)
        validate_scope(scope)
        topic = topic_of(channel, scope)
        with self._lock:
            added = self._subs.want(channel, scope)

        def send(p: FeedProtocol) -> Request | None:
            # A reconnect may have restored it already (it was wanted): do not send twice.
            return None if topic in p.active else p.subscribe(channel, scope)

        try:
            request = self._paced_command(send, timeout)
            if request is not None:
                self._wait(request, timeout)
        except SubscriptionError:
            # A refusal. Forget the topic only if this call added it: a subscription that
            # was already active stays active (and is restored after reconnects).
            if added:
                with self._lock:
                    self._subs.drop(topic)
            raise
        # On a timeout the topic stays wanted: the server may still confirm it, and the next
        # reconnect restores it. unsubscribe() drops it.

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
        validate_channel(channel)
        validate_scope(scope)
        topic = topic_of(channel, scope)
        with self._lock:
            was_wanted = self._subs.drop(topic)

        def send(p: FeedProtocol) -> Request | None:
            # After a reconnect the new connection never had it: nothing to undo there.
            if was_wanted and topic not in p.active:
                return None
            return p.unsubscribe(channel, scope)

        request = self._paced_command(send, timeout)
        if request is not None:
            self._wait(request, timeout)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The topics (``CHANNEL:scope``) this client keeps subscribed, reconnects included."""
        with self._lock:
            return self._subs.topics()

    # -- hooks ------------------------------------------------------------------------------

    def _new_protocol(self) -> FeedProtocol:
        return FeedProtocol(
            scope_style=self._scope_style, keepalive=self._keepalive_for_new_protocol()
        )

    def _handshake(self, session: Session, deadline: float) -> list[Any]:
        protocol = session.protocol
        assert isinstance(protocol, FeedProtocol)
        with self._lock:
            todo = self._subs.wanted()
        first = not self._threads
        requests: list[Request] = []
        events: list[Any] = []

        def read(until: float) -> list[Any]:
            return [
                event
                for event in self._handshake_read(session, deadline, until)
                if self._deliver_keepalive or not isinstance(event, KeepaliveEvent)
            ]

        for channel, scope in todo:

            def subscribe(channel: str = channel, scope: str = scope) -> None:
                requests.append(protocol.subscribe(channel, scope))

            events += self._handshake_command(session, subscribe, read)
        while any(not r.done for r in requests):
            events += read(deadline)
        for request in requests:
            if request.error is None:
                continue
            if first:
                raise request.error
            with self._lock:
                self._subs.fail(request.topic, request.error)
            events.append(
                FeedError(request.error.code, request.error.message, request.topic, request.error)
            )
        return events

    # -- private ----------------------------------------------------------------------------

    def _wait(self, request: Request, timeout: float | None) -> None:
        """Block until ``request`` is answered; follow it across a reconnect."""
        deadline = time.monotonic() + (self._connect_timeout if timeout is None else timeout)
        topic = request.topic
        with self._lock:
            while True:
                if request.done:
                    error = request.error
                    if error is None:
                        return
                    if not request.lost:
                        raise error
                    # The connection dropped before the reply; the reconnect restores
                    # every wanted topic, so watch for the topic on the new connection.
                    if request.action == "unsubscribe":
                        return
                    session = self._session
                    if session is not None and topic in getattr(session.protocol, "active", {}):
                        return
                    failed = self._subs.pop_failure(topic)
                    if failed is not None:
                        raise failed
                self._check_alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportTimeout(
                        f"no reply to {request.action} {topic} in time"
                        + (
                            "; it stays requested (the server may still confirm it, and "
                            "reconnects restore it): call unsubscribe() to drop it"
                            if request.action == "subscribe"
                            else ""
                        )
                    )
                self._acks.wait(min(left, 0.1))


class Subscriptions:
    """The topics a feed client keeps subscribed across reconnects, and the ones a
    reconnect's resubscription was refused (reported once to a waiting ``subscribe()``).
    What the server confirmed on the current connection is the protocol core's ``active``.
    Not thread-safe: the client's lock guards it."""

    def __init__(self) -> None:
        self._wanted: dict[str, tuple[str, str]] = {}
        self._failed: dict[str, SubscriptionError] = {}

    def want(self, channel: str, scope: str, *, replace: bool = True) -> bool:
        """Keep ``(channel, scope)`` subscribed; True if it was not wanted before."""
        topic = topic_of(channel, scope)
        added = topic not in self._wanted
        if added or replace:
            self._wanted[topic] = (channel, scope)
            self._failed.pop(topic, None)
        return added

    def drop(self, topic: str) -> bool:
        """Stop keeping ``topic``; True if it was wanted."""
        return self._wanted.pop(topic, None) is not None

    def fail(self, topic: str, error: SubscriptionError) -> None:
        """A resubscription was refused: no longer wanted; the refusal waits to be seen."""
        self._wanted.pop(topic, None)
        self._failed[topic] = error

    def pop_failure(self, topic: str) -> SubscriptionError | None:
        return self._failed.pop(topic, None)

    def wanted(self) -> list[tuple[str, str]]:
        return list(self._wanted.values())

    def topics(self) -> tuple[str, ...]:
        return tuple(self._wanted)
