"""``FeedClient``: the Soccer Football Info feed on the same machinery as ``MMClient``."""

from __future__ import annotations

import logging
import ssl
import threading
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
    ClientClosed,
    ConfigError,
    ConnectError,
    LocalProtocolError,
    MmwsError,
    SubscriptionError,
    TransportTimeout,
)
from mmws.feed.events import FeedError, FeedPong, FeedStreamEvent
from mmws.feed.protocol import (
    FeedProtocol,
    Request,
    ScopeStyle,
    topic_of,
    validate_channel,
    validate_scope,
)
from mmws.lifecycle import Connected

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
        self._token_provider = token_provider
        self._scope_style: ScopeStyle = scope_style
        self._initial = list(subscriptions)
        self._wanted: dict[str, tuple[str, str]] = {}
        self._failed: dict[str, SubscriptionError] = {}
        self._limiter = SlidingWindow(rate_limit, 1.0, rate_margin)
        self._ping_slot: list[float] | None = None
        self._pongs = 0
        provider_secrets = getattr(token_provider, "secrets", None)
        secrets = tuple(provider_secrets()) if callable(provider_secrets) else ()
        options = ClientOptions(
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            heartbeat_timeout=heartbeat_timeout,
            connect_timeout=connect_timeout,
            io_timeout=io_timeout,
            reconnect=reconnect,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            backoff_reset_after=backoff_reset_after,
            maxsize=maxsize,
            deliver_keepalive=deliver_keepalive,
            ssl_context=ssl_context,
            ca_file=ca_file,
            verify_tls=verify_tls,
            proxy_host=proxy_host,
            proxy_port=proxy_port,
            proxy_auth=proxy_auth,
            proxy_type=proxy_type,
        )
        super().__init__(
            url=url, options=options, on_event=on_event, record=record, secrets=secrets
        )
        self._acks = threading.Condition(self._lock)
        self._maintain_not_before = 0.0

    # -- public API -------------------------------------------------------------------------

    def connect(self) -> FeedClient:
        """Connect, subscribe to ``subscriptions`` and block until each is acknowledged.

        Raises ``ConfigError`` for a bad channel or scope before any network use,
        ``SubscriptionError`` if the server refuses one, and the errors of
        :meth:`MMClient.connect` otherwise."""
        with self._lock:
            for channel, scope in self._initial:
                validate_channel(channel)
                validate_scope(scope)
                self._wanted.setdefault(topic_of(channel, scope), (channel, scope))
        return super().connect()

    def subscribe(self, channel: str, scope: str, timeout: float | None = None) -> None:
        """Subscribe and block until the server acknowledges (``timeout`` defaults to
        ``connect_timeout``). Raises ``ConfigError`` for a bad channel or scope (nothing is
        sent), ``SubscriptionError`` with the server's ``code`` when refused."""
        validate_channel(channel)
        validate_scope(scope)
        topic = topic_of(channel, scope)
        with self._lock:
            added = topic not in self._wanted
            self._wanted[topic] = (channel, scope)
            self._failed.pop(topic, None)

        def send(p: FeedProtocol) -> Request | None:
            # A reconnect may have restored it already (it was wanted): do not send twice.
            return None if topic in p.active else p.subscribe(channel, scope)

        try:
            request = self._command(send, timeout)
            if request is not None:
                self._wait(request, timeout)
        except SubscriptionError:
            # A refusal. Forget the topic only if this call added it: a subscription that
            # was already active stays active (and is restored after reconnects).
            if added:
                with self._lock:
                    self._wanted.pop(topic, None)
            raise
        # On a timeout the topic stays wanted: the server may still confirm it, and the next
        # reconnect restores it. unsubscribe() drops it.

    def unsubscribe(self, channel: str, scope: str, timeout: float | None = None) -> None:
        """Unsubscribe from exactly the channel and scope used to subscribe; blocks until
        acknowledged. The server's error (e.g. not subscribed) is a ``SubscriptionError``."""
        validate_channel(channel)
        validate_scope(scope)
        topic = topic_of(channel, scope)
        with self._lock:
            was_wanted = self._wanted.pop(topic, None) is not None

        def send(p: FeedProtocol) -> Request | None:
            # After a reconnect the new connection never had it: nothing to undo there.
            if was_wanted and topic not in p.active:
                return None
            return p.unsubscribe(channel, scope)

        request = self._command(send, timeout)
        if request is not None:
            self._wait(request, timeout)

    def ping(self, timeout: float | None = None) -> float:
        """Send a ping and wait for the pong; return the round trip in seconds."""
        deadline = time.monotonic() + (self._keepalive_args[1] if timeout is None else timeout)
        sent: list[float] = []
        wanted = [0]

        def send(p: FeedProtocol) -> None:
            # The server answers pings in order: if the keepalive's ping is still waiting
            # for its pong, ours is the one after it.
            ahead = 1 if p.keepalive.ping_outstanding_since is not None else 0
            wanted[0] = self._pongs + ahead + 1
            sent.append(time.monotonic())
            p.ping(sent[0])

        self._command(send, timeout)
        start = sent[0]
        with self._lock:
            while self._pongs < wanted[0]:
                self._check_alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportTimeout("no pong within the timeout")
                self._acks.wait(min(left, 0.1))
        return time.monotonic() - start

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The topics (``CHANNEL:scope``) this client keeps subscribed, reconnects included."""
        with self._lock:
            return tuple(self._wanted)

    # -- hooks ------------------------------------------------------------------------------

    def _new_protocol(self) -> FeedProtocol:
        return FeedProtocol(
            scope_style=self._scope_style, keepalive=self._keepalive_for_new_protocol()
        )

    def _open_url(self) -> str:
        if self._token_provider is None:
            return self._url
        # The helper keeps the fresh URL (its token) out of every raising frame's locals.
        error = self._ask_provider()
        if error is not None:
            raise error
        return self._url

    def _ask_provider(self) -> MmwsError | None:
        """Ask the token provider for a URL and keep it in ``_url``; return (never raise)
        what went wrong."""
        assert self._token_provider is not None
        try:
            url = self._token_provider()
        except MmwsError as exc:
            return exc.with_traceback(None)  # the provider's frames may hold the token
        except Exception as exc:
            # Its text may hold a token: only the type is kept. Retryable: a provider's
            # trouble (a network blip) may pass.
            return ConnectError(f"token_provider failed: {type(exc).__name__}")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            return ConfigError("token_provider must return a ws:// or wss:// URL")
        provider_secrets = getattr(self._token_provider, "secrets", None)
        if callable(provider_secrets):
            self._secrets = self._secrets.with_values(*provider_secrets())
        self._url = url
        return None

    def _handshake(self, session: Session, deadline: float) -> list[Any]:
        protocol = session.protocol
        assert isinstance(protocol, FeedProtocol)
        with self._lock:
            todo = list(self._wanted.values())
        first = not self._threads
        requests: list[Request] = []
        events: list[Any] = []
        while todo or any(not r.done for r in requests):
            wait_until = deadline
            if todo:
                with self._lock:
                    now = time.monotonic()
                    delay = self._limiter.delay(now)
                    if delay <= 0:
                        slot = self._limiter.record(now)
                        channel, scope = todo.pop(0)
                        requests.append(protocol.subscribe(channel, scope))
                        texts = protocol.data_to_send()
                if delay <= 0:
                    for text in texts:
                        session.transport.send(text)
                    with self._lock:
                        self._limiter.sent(slot, time.monotonic())
                    continue
                wait_until = now + delay
            for event in self._handshake_read(session, deadline, wait_until):
                if isinstance(event, FeedPong) and not self._deliver_keepalive:
                    continue
                events.append(event)
        for request in requests:
            if request.error is None:
                continue
            if first:
                raise request.error
            with self._lock:
                self._wanted.pop(request.topic, None)
                self._failed[request.topic] = request.error
            events.append(
                FeedError(request.error.code, request.error.message, request.topic, request.error)
            )
        return events

    def _decode(self, session: Session, data: bytes | str, now: float) -> list[Any]:
        protocol = session.protocol
        assert isinstance(protocol, FeedProtocol)
        before = protocol.pending
        events = super()._decode(session, data, now)
        if protocol.pending != before:
            with self._lock:
                self._acks.notify_all()
        return events

    def _note_keepalive(self, event: Any) -> None:
        if isinstance(event, FeedPong):
            with self._lock:
                self._pongs += 1
                if event.rtt is not None:
                    self._last_rtt = event.rtt
                    if event.server_ts is not None:
                        server = event.server_ts / 1000.0
                        self._clock_offset = server - (time.time() - event.rtt / 2)
                self._acks.notify_all()

    def _ping_delay(self, now: float) -> float:
        delay = self._limiter.delay(now)
        if delay <= 0:
            self._ping_slot = self._limiter.record(now)
        return delay

    def _ping_sent(self, now: float) -> None:
        slot, self._ping_slot = self._ping_slot, None
        if slot is not None:
            self._limiter.sent(slot, now)

    def _maintenance_due(self) -> float | None:
        renew_due = getattr(self._token_provider, "renew_due", None)
        if not callable(renew_due):
            return None
        due = renew_due()
        if not isinstance(due, int | float):
            return None
        return max(self._maintain_not_before, time.monotonic() + (due - time.time()))

    def _maintain(self) -> None:
        renew = getattr(self._token_provider, "renew", None)
        if not callable(renew):
            return
        # At most one renewal a second, one every 5 s after a failure: never a busy loop.
        self._maintain_not_before = time.monotonic() + 1.0
        try:
            renew()
        except MmwsError as exc:
            # The next (re)connect asks the provider for a new token anyway.
            self._maintain_not_before = time.monotonic() + 5.0
            self._last_error = str(exc)
            log.warning("feed token renewal failed: %s", exc)

    # -- private ----------------------------------------------------------------------------

    def _check_alive(self) -> None:
        """(lock held) Raise if the client can no longer carry a command."""
        if self._closing:
            raise ClientClosed("the client is closed")

    def _command(self, make: Callable[[FeedProtocol], Any], timeout: float | None) -> Any:
        """Run ``make`` on the current protocol once the rate limiter allows, and send what
        it queued (at most one command). Returns what ``make`` returned."""
        if not self._threads:
            raise LocalProtocolError("call connect() first")
        deadline = time.monotonic() + (self._connect_timeout if timeout is None else timeout)
        slot: list[float] | None = None
        while True:
            with self._lock:
                self._check_alive()
                session = self._session
                delay = 0.1
                if session is not None and session.dead is None:
                    now = time.monotonic()
                    delay = self._limiter.delay(now)
                    if delay <= 0:
                        protocol = session.protocol
                        assert isinstance(protocol, FeedProtocol)
                        result = make(protocol)
                        texts = protocol.data_to_send()
                        # make() may decide there is nothing to send
                        slot = self._limiter.record(now) if texts else None
                        break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportTimeout("the command could not be sent within the timeout")
                self._acks.wait(min(delay, left, 0.1))
        for text in texts:
            try:
                session.transport.send(text)
            except MmwsError:
                break  # the reader sees the broken connection; the request fails with it
        if slot is not None:
            with self._lock:
                self._limiter.sent(slot, time.monotonic())
        return result

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
                    # everything in _wanted, so watch for the topic on the new connection.
                    if request.action == "unsubscribe":
                        return
                    session = self._session
                    if session is not None and topic in getattr(session.protocol, "active", {}):
                        return
                    failed = self._failed.pop(topic, None)
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
