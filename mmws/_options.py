"""The settings both clients share, as one frozen object validated in one place.

``MMClient`` and ``FeedClient`` list every keyword explicitly (so a misspelt one is a type
error and a ``TypeError`` naming the class) and hand them over as one
:class:`ClientOptions`; the machinery in :mod:`mmws._client` reads nothing else.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, Final

import attrs

from mmws._transport import TransportOptions
from mmws.errors import ConfigError

__all__ = ["PROXY_TYPES", "ClientOptions"]

PROXY_TYPES: Final = ("http", "socks4", "socks4a", "socks5", "socks5h")


def _seconds(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    if value != value or value == float("inf"):
        raise ConfigError(f"{name} must be a finite number of seconds, got {value!r}")


@attrs.frozen(slots=True, kw_only=True)
class ClientOptions:
    """Keepalive, reconnect, delivery, TLS and proxy settings of one client."""

    ping_interval: float | None = 30.0
    pong_timeout: float = 10.0
    heartbeat_timeout: float | None = None
    connect_timeout: float = 10.0
    io_timeout: float = 10.0
    reconnect: bool = True
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    backoff_reset_after: float = 60.0
    maxsize: int = 10_000
    deliver_keepalive: bool = False
    ssl_context: ssl.SSLContext | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    proxy_host: str | None = None
    proxy_port: int | None = None
    proxy_auth: tuple[str, str] | None = attrs.field(default=None, repr=False)
    proxy_type: str = "http"

    def __attrs_post_init__(self) -> None:
        _seconds("ping_interval", self.ping_interval, optional=True)
        _seconds("pong_timeout", self.pong_timeout)
        _seconds("heartbeat_timeout", self.heartbeat_timeout, optional=True)
        for name in ("connect_timeout", "io_timeout", "backoff_base", "backoff_cap",
                     "backoff_reset_after"):
            _seconds(name, getattr(self, name))
        if self.backoff_cap < self.backoff_base:
            raise ConfigError(
                f"backoff_cap must be >= backoff_base, got {self.backoff_cap!r} < "
                f"{self.backoff_base!r}"
            )
        maxsize = self.maxsize
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
            raise ConfigError(f"maxsize must be a positive integer, got {maxsize!r}")
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise ConfigError(
                f"ssl_context must be an ssl.SSLContext, got {type(self.ssl_context).__name__}"
            )
        if self.proxy_type not in PROXY_TYPES:
            raise ConfigError(
                f"proxy_type must be one of {', '.join(PROXY_TYPES)}, got {self.proxy_type!r}"
            )
        port = self.proxy_port
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
        ):
            raise ConfigError(f"proxy_port must be a TCP port (1-65535), got {port!r}")
        auth = self.proxy_auth
        if auth is not None and (
            not isinstance(auth, tuple) or len(auth) != 2 or not all(
                isinstance(part, str) for part in auth)
        ):
            raise ConfigError("proxy_auth must be a (user, password) tuple of strings")

    @classmethod
    def pick(cls, arguments: Mapping[str, Any]) -> ClientOptions:
        """The options among a constructor's ``locals()``: each client lists every keyword
        in its signature (for type checkers and ``help()``) and hands them over here."""
        return cls(**{f.name: arguments[f.name] for f in attrs.fields(cls) if f.name in arguments})

    def transport(self) -> TransportOptions:
        return TransportOptions(
            connect_timeout=float(self.connect_timeout),
            io_timeout=float(self.io_timeout),
            ssl_context=self.ssl_context,
            ca_file=self.ca_file,
            verify_tls=self.verify_tls,
            proxy_host=self.proxy_host,
            proxy_port=self.proxy_port,
            proxy_auth=self.proxy_auth,
            proxy_type=self.proxy_type,
        )
