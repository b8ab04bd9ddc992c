"""The one exception tree of mmws.

Users catch these and nothing else: every error raised by websocket-client, ``socket`` or
``ssl`` is translated at the transport boundary and chained (``raise ... from exc``)::

    MmwsError
    ├── ConfigError(MmwsError, ValueError)    bad URL, API key not a UUID, unknown channel/scope
    ├── ClientClosed                          the client was closed; no more events will come
    ├── ProtocolError                         abstract
    │   ├── LocalProtocolError                we did something illegal in this state
    │   └── RemoteProtocolError               the server sent something we cannot decode
    ├── ServerError                           the server answered with an error; .code, .message
    │   ├── AuthenticationError               apiKey required / invalid format / invalid key (fatal)
    │   ├── ConnectionLimitError              too many connections for this key (retry later)
    │   ├── SubscriptionError                 CHANNEL_NOT_ALLOWED, SUBSCRIPTION_LIMIT, ...
    │   └── RestError                         the REST API answered an HTTP error; .status, .detail
    │       └── RateLimitError                HTTP 429 on every attempt; .retry_after
    └── TransportError
        ├── ConnectError                      TCP / TLS / handshake failed; .status for HTTP
        │   └── ConnectTimeout(ConnectError, TransportTimeout)  connect_timeout ran out
        ├── TransportTimeout(TransportError, TimeoutError)
        │   └── HeartbeatTimeout              no pong / no server heartbeat in time
        └── ConnectionClosed                  .code, .reason; reads as a sentence

No message in this tree ever contains an API key or a feed token: messages are built from
values the caller chose to show (channel names, codes, redacted URLs), never from secrets.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CertificateError",
    "ClientClosed",
    "ConfigError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionLimitError",
    "HeartbeatTimeout",
    "LocalProtocolError",
    "MmwsError",
    "ProtocolError",
    "RateLimitError",
    "RemoteProtocolError",
    "RestError",
    "ServerError",
    "SubscriptionError",
    "TransportError",
    "TransportTimeout",
]


class MmwsError(Exception):
    """Base class of every error mmws raises."""


class ConfigError(MmwsError, ValueError):
    """A bad argument, found before anything was sent: the message names the bad value."""


class ClientClosed(MmwsError):
    """The client is closed and its queue is drained: no further event will arrive."""


class ProtocolError(MmwsError):
    """Something broke the protocol. Abstract: only its two subclasses are raised."""

    def __init__(self, *args: object) -> None:
        if type(self) is ProtocolError:
            raise TypeError(
                "ProtocolError is abstract: raise LocalProtocolError or RemoteProtocolError"
            )
        super().__init__(*args)


class LocalProtocolError(ProtocolError):
    """We tried something that is illegal in the current state (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The server sent a frame we cannot decode.

    ``raw`` holds the start of the offending frame (at most 200 characters) for bug reports.

    Args:
        message: What is wrong with the frame.
        raw: The frame, or its start; only the first 200 characters are kept.
    """

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw[:200]


class ServerError(MmwsError):
    """The server answered with an error frame. ``code`` may be ``None`` (MM sends text only).

    ``str(error)`` is ``"<code>: <message>"``, or the message alone without a code.

    Args:
        message: The server's error text, kept as ``message``.
        code: The server's error code, kept as ``code``; ``None`` when it sent none.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        self.message = message
        self.code = code
        super().__init__(f"{code}: {message}" if code else message)

    def __reduce__(self) -> tuple[type[ServerError], tuple[str, str | None]]:
        return (type(self), (self.message, self.code))


class AuthenticationError(ServerError):
    """The server refused the credentials. Fatal: a client never retries it by itself."""


class ConnectionLimitError(ServerError):
    """The server refused the connection because the key already has too many open."""


class SubscriptionError(ServerError):
    """A subscribe or unsubscribe command was refused; ``code`` is the server's code."""


class RestError(ServerError):
    """The MM REST API (:class:`mmws.MMRest`) answered with an HTTP error, or with a
    redirect, which is never followed (the API key must not go where you did not send it).

    ``status`` is the HTTP status. ``detail`` is the server's explanation (FastAPI's
    ``detail`` text, or the start of the body), possibly empty; it never holds the API key.
    ``retry_after`` is the server's ``Retry-After`` in seconds when it sent one, else ``None``.

    Args:
        message: What failed, e.g. ``"GET /api/v1/orders failed with HTTP 404"``; kept as
            ``message``.
        status: The HTTP status, kept as ``status``.
        detail: The server's explanation, kept as ``detail`` (may be empty).
        retry_after: The server's ``Retry-After``, in seconds, kept as ``retry_after``;
            ``None`` when it sent none.
    """

    def __init__(
        self, message: str, status: int, detail: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after

    def __reduce__(  # type: ignore[override]
        self,
    ) -> tuple[type[RestError], tuple[str, int, str, float | None]]:
        return (type(self), (self.message, self.status, self.detail, self.retry_after))


class RateLimitError(RestError):
    """HTTP 429 on every attempt: the key used up its request budget (2,000 a minute).
    ``retry_after`` is how long the server last asked to wait, when it said."""


class TransportError(MmwsError):
    """The network connection failed or ended."""


class ConnectError(TransportError):
    """Opening the connection failed: DNS, TCP, TLS or the WebSocket upgrade.

    ``status`` is the HTTP status of a refused upgrade (for example 429 or 503, or a 3xx
    redirect, which is never followed), else ``None``. ``retry_after`` is the server's
    ``Retry-After`` in seconds (capped at 10 minutes), else ``None``.

    Args:
        message: What failed, as a sentence (URLs redacted).
        status: The HTTP status of a refused upgrade, kept as ``status``; ``None`` when the
            failure was not an HTTP answer.
        retry_after: The server's ``Retry-After``, in seconds, kept as ``retry_after``;
            ``None`` when it sent none.
    """

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class CertificateError(ConnectError):
    """The server's TLS certificate failed verification (untrusted, expired, or issued for
    another host). Fatal, at the first connect and at every reconnect: a certificate that
    suddenly fails is what a man in the middle looks like, and retrying cannot fix it."""


class TransportTimeout(TransportError, TimeoutError):
    """An operation on the connection did not finish in time."""


class ConnectTimeout(ConnectError, TransportTimeout):
    """The connection attempt as a whole (TCP, proxy, TLS, the upgrade and the
    subscription's confirmation) did not finish within ``connect_timeout``."""


class HeartbeatTimeout(TransportTimeout):
    """The server went silent: no pong, or no message at all, within the configured time."""


class ConnectionClosed(TransportError):
    """The connection ended. ``code`` is the close code (1006 when no close frame came).

    Args:
        code: The WebSocket close code, kept as ``code`` (default 1006: no close frame).
        reason: The close frame's reason text, kept as ``reason`` (may be empty).
    """

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        text = f"connection closed with code {code}"
        if reason:
            text += f" ({reason})"
        super().__init__(text)

    def __reduce__(self) -> tuple[type[ConnectionClosed], tuple[int, str]]:
        return (type(self), (self.code, self.reason))
