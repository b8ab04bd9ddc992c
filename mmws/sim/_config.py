"""Validation of the simulator's options, in one place."""

from __future__ import annotations

import logging
import math
import socket
import ssl
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import ClassVar, TypeGuard

import attrs

from mmws.errors import ConfigError
from mmws.mm.protocol import validate_api_key

logger = logging.getLogger("mmws.sim")

__all__ = ["SimConfig", "check_duration", "check_host", "is_number", "url_host"]


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_duration(name: str, value: object, *, none_ok: bool) -> None:
    """A duration option: a finite number > 0 (or None if ``none_ok``), else ConfigError."""
    if value is None and none_ok:
        return
    if not (is_number(value) and 0 < value < math.inf):
        allowed = " (or None)" if none_ok else ""
        raise ConfigError(f"{name} must be a finite number > 0{allowed}, got {value!r}")


def check_host(host: object) -> None:
    """Refuse a host that the socket layer would reject with something else than OSError
    (a TypeError, a UnicodeError), as ConfigError; OSError is reported when listening."""
    if not isinstance(host, str) or "\0" in host:
        raise ConfigError(f"host must be a host name or IP address, got {host!r}")
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        pass
    except ValueError as exc:  # UnicodeError: not a valid IDNA name
        raise ConfigError(f"host {host!r} is not a valid host name: {exc}") from None



def _demo_keys(value: Mapping[str, str] | None) -> Mapping[str, str]:
    """``None``: one generated demo key for client ``"demo"``."""
    return {str(uuid.uuid4()): "demo"} if value is None else dict(value)


@attrs.frozen(kw_only=True)
class SimConfig:
    """Every option of :class:`~mmws.sim.server.Simulator`, validated here and nowhere
    else: a bad one raises :class:`~mmws.errors.ConfigError` naming it. ``api_keys`` and
    ``feed_api_tokens`` of ``None`` become one generated demo key and API token."""

    RUNTIME: ClassVar[tuple[str, ...]] = (
        "host", "seed", "rate", "heartbeat_interval", "auth_timeout",
        "max_connections_per_key", "legacy_field_names", "error_close_code",
        "send_error_frames", "feed_max_connections", "feed_max_subscribe_per_connection",
        "feed_max_commands_per_second", "feed_batch_interval", "max_size", "max_send_queue",
        "close_timeout", "open_timeout", "ssl_context", "max_recorded_messages",
        "max_recorded_size", "max_closed_connections",
    )
    """The options the simulator keeps as plain attributes, which a test may change live."""

    host: str = "127.0.0.1"
    port: int = 0
    api_keys: Mapping[str, str] = attrs.field(default=None, converter=_demo_keys)
    seed: int = 0
    rate: float = 20.0
    heartbeat_interval: float | None = 60.0
    auth_timeout: float | None = 30.0
    max_connections_per_key: int = 5
    legacy_field_names: bool = False
    error_close_code: int = 1008
    send_error_frames: bool = True
    feed_api_tokens: Mapping[str, str] | None = None
    feed_plan: str = "MEGA"
    feed_rate: float | None = None
    feed_token_ttl: float = 1500.0
    feed_max_connections: int = 5
    feed_max_subscribe_per_connection: int = 20
    feed_max_commands_per_second: int | None = 10
    feed_batch_interval: float | None = 30.0
    feed_matches: int = 3
    max_size: int = 2**20
    max_send_queue: int = 100_000
    close_timeout: float = 2.0
    open_timeout: float = 10.0
    ssl_context: ssl.SSLContext | None = None
    max_recorded_messages: int = 10_000
    max_recorded_size: int = 64 * 1024
    max_closed_connections: int = 1_000
    scenario_start: datetime | None = None

    def __attrs_post_init__(self) -> None:
        port = self.port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an integer from 0 to 65535, got {port!r}")
        check_host(self.host)
        for name, none_ok in (
            ("heartbeat_interval", True),
            ("auth_timeout", True),
            ("feed_token_ttl", False),
            ("feed_batch_interval", True),
            ("close_timeout", False),
            ("open_timeout", False),
        ):
            check_duration(name, getattr(self, name), none_ok=none_ok)
        for name, least in (
            ("max_size", 1),
            ("max_send_queue", 1),
            ("max_recorded_messages", 0),
            ("max_recorded_size", 0),
            ("max_closed_connections", 0),
        ):
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int) or count < least:
                raise ConfigError(f"{name} must be an integer >= {least}, got {count!r}")
        if not self.api_keys:
            raise ConfigError("api_keys must hold at least one key")
        for key in self.api_keys:
            validate_api_key(key)
        for name in ("rate", "feed_rate"):
            value = getattr(self, name)
            if value is not None and not (is_number(value) and 0 <= value < math.inf):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
            if value is not None:
                object.__setattr__(self, name, float(value))
        tokens = self.feed_api_tokens
        if tokens is None:
            tokens = {uuid.uuid4().hex: self.feed_plan}
        if not tokens:
            raise ConfigError("feed_api_tokens must hold at least one token")
        object.__setattr__(self, "feed_api_tokens", dict(tokens))
        object.__setattr__(self, "scenario_start", _scenario_start(self.scenario_start))

    @property
    def api_tokens(self) -> Mapping[str, str]:
        """The feed API tokens (the generated demo one when none were given)."""
        return self.feed_api_tokens or {}


def _scenario_start(value: object) -> datetime:
    """``scenario_start`` in UTC; None: now (UTC), truncated to whole seconds."""
    if value is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ConfigError(
            f"scenario_start must be a timezone-aware datetime (or None), got {value!r}"
        )
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ConfigError(f"scenario_start is out of range in UTC: {value!r}") from None


def url_host(host: str) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host
