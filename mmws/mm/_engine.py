"""The engine of ``MMClient`` (:mod:`mmws.mm.client`): the MM handshake, the state keeper
and the lines of a hot-standby client, on :class:`~mmws._client.StreamClient`'s threads.
The options are documented, and the key and the URL identify clients, on the handle."""

from __future__ import annotations

import logging
import ssl
import time
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
from mmws._session import ClientState, Health, ProtocolCore, Session
from mmws.errors import (
    ClientClosed,
    ConfigError,
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

__all__ = ["DEFAULT_URL", "MMEngine", "derive_rest_url"]

DEFAULT_URL: Final = "wss://mmapi.55-tech.com/ws/subscribe"

log = logging.getLogger("mmws.client")


class MMEngine(StreamClient[MMStreamEvent]):
    """The engine of an :class:`mmws.MMClient`, or of one line of a hot-standby client; it
    takes the same arguments."""

    _lanes: Mapping[type, Lane] = MappingProxyType(
        {
            EmergencyEvent: Lane.PRIORITY,
            ScoreEvent: Lane.COALESCE,
            Connected: Lane.CONTROL,
        }
    )
    _shown_as = "MMClient"

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
                member = MMEngine(api_key, channels, url, **line_options)
                member._stagger = index * stagger
                members.append(member)
            self._event_filter = None  # the lines decode; the group applies the state
            self._group = LineGroup(
                self, members, self._keeper, line_events=line_events, window=window,
                hold=float(line_hold),
            )
        self.connections = count

    @property
    def is_open(self) -> bool:
        return bool(self._threads or self._group_started) and not self._closing

    def connect(self) -> MMEngine:
        """See :meth:`mmws.MMClient.connect`."""
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
        """See :attr:`mmws.MMClient.state`."""
        if self._keeper is None:
            raise ConfigError("this client keeps no state: create it with state=True")
        return self._keeper.state

    def close(self, timeout: float = 5.0) -> None:
        """See :meth:`mmws.MMClient.close`; also the REST client and every line."""
        deadline = time.monotonic() + max(0.0, timeout)
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
        """A snapshot of the connection; with ``lines=2`` or more also each line's."""
        base = super().health()
        return base if self._group is None else self._group.health(base)

    def ping(self, timeout: float | None = None) -> float:
        """See :meth:`mmws.MMClient.ping`: with several lines, on the first line up."""
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
        """See :attr:`mmws.MMClient.channels`."""
        return validate_channels(self._channels_arg)

    def __repr__(self) -> str:
        key = getattr(self, "_api_key", None)
        hint = key.hint if isinstance(key, Secret) else "?"
        group = getattr(self, "_group", None)
        lines = f" lines={len(group.lines)}" if group is not None else ""
        return f"{super().__repr__()[:-1]} key={hint!r}{lines}>"

    def _shown_state(self) -> str:
        # The lines are the connections of a hot-standby client: its state is theirs (the
        # best of them) until it is closed.
        own = super()._shown_state()
        group = getattr(self, "_group", None)
        if group is None or own == ClientState.CLOSED.value:
            return own
        states = {line._shown_state() for line in group.lines}
        return next((s for s in ("connected", "reconnecting", "connecting") if s in states), own)

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
