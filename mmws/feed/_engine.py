"""The engine of ``FeedClient`` (:mod:`mmws.feed.client`): the Soccer Football Info feed on
the same machinery as ``MMClient``: its handshake, its commands and what it keeps
subscribed across reconnects."""

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

__all__ = ["FeedEngine"]

log = logging.getLogger("mmws.feed")


class FeedEngine(StreamClient[FeedStreamEvent]):
    """The engine of a :class:`mmws.FeedClient`; it takes the same arguments."""

    _lanes: Mapping[type, Lane] = MappingProxyType(
        {Connected: Lane.CONTROL}
    )
    _protocol_name = "feed"
    _shown_as = "FeedClient"

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

    # -- what the handle calls ----------------------------------------------------------------

    def connect(self) -> FeedEngine:
        """See :meth:`mmws.FeedClient.connect`."""
        with self._lock:
            for channel, scope in self._initial:
                validate_channel(channel)
                validate_scope(scope)
                self._subs.want(channel, scope, replace=False)
        return super().connect()

    def subscribe(self, channel: str, scope: str, timeout: float | None = None) -> None:
        """See :meth:`mmws.FeedClient.subscribe`."""
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
        """See :meth:`mmws.FeedClient.unsubscribe`."""
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
        """See :attr:`mmws.FeedClient.subscriptions`."""
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
