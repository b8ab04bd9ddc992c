"""The Redis side of the relay, shared by :class:`~mmws.RedisRelay` and
:class:`~mmws.RedisSource`: the one place that imports ``redis`` (the optional extra
``mmws[redis]``), connections with mmws's own retry policy, URLs shown without their
password, the checks of the options both take, and the shapes of redis-py's replies."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

try:
    import redis as _redis
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError, ResponseError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError(
        'mmws.redis needs the redis package: the extra "redis" of mmws (in a checkout of '
        "mmws: python -m pip install '.[redis]')"
    ) from exc

from mmws._secret import Secret
from mmws.errors import ConfigError

__all__ = [
    "DEFAULT_URL", "ENTRY_ID", "RedisError", "ResponseError", "as_text", "check_positive",
    "check_stream", "connect_redis", "entry_fields", "id_key", "passwords", "redacted_url",
    "redis_error", "reply_entries", "saved_id",
]  # fmt: skip

DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"
ENTRY_ID: Final = re.compile(r"\d{1,20}(-\d{1,20})?")


def redacted_url(url: str) -> str:
    """The URL without its password: ``redis://user:***@host``, ``?password=***``."""
    scheme, sep, rest = url.partition("//")
    head, question, query = rest.partition("?")
    at = head.rfind("@")  # a password may hold a raw '@' or '/'
    if sep and at >= 0 and ":" in head[:at]:
        head = head[:at].partition(":")[0] + ":***" + head[at:]
    rest = head + question + query
    return re.sub(r"(?i)((?:^|[?&;])password=)[^&;#]*", r"\1***", scheme + sep + rest)


def passwords(url: str) -> list[str]:
    """The passwords in ``url`` (its user part, a ``password=`` in its query)."""
    found = re.findall(r"(?i)(?:^|[?&;])password=([^&;#]+)", url.partition("?")[2])
    head = url.partition("//")[2].partition("?")[0]
    user = head[: head.rfind("@")] if "@" in head else ""
    if ":" in user:
        found.append(user.partition(":")[2])
    return sorted((p for p in found if p), key=len, reverse=True)


def connect_redis(url: Secret, timeout: float, single: bool = False) -> Any:  # loose types
    try:
        pool = _redis.ConnectionPool.from_url(
            url.reveal(),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # mmws retries itself, with its own backoff
        )
    except ValueError as exc:
        detail = str(exc)
        for secret in passwords(url.reveal()):
            detail = detail.replace(secret, "***")  # a parse error may quote a piece of it
        raise ConfigError(f"not a Redis URL: {redacted_url(url.reveal())!r} ({detail})") from None
    return _redis.Redis(connection_pool=pool, single_connection_client=single)


def check_positive(name: str, value: Any, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {what}, got {value!r}")


def check_stream(stream: Any) -> str:
    if not isinstance(stream, str) or not stream:
        raise ConfigError(f"stream must be a non-empty string, got {stream!r}")
    return stream


def id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def saved_id(saved: Mapping[bytes, bytes]) -> tuple[int, int] | None:
    """The stream id a saved snapshot covers; None when there is none, or it is damaged."""
    try:
        return id_key(saved[b"id"]) if saved else None
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def redis_error(exc: BaseException, url: str) -> str:
    return f"{type(exc).__name__}: {exc} ({url})"


def as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def reply_entries(reply: Any) -> list[Any]:
    """The ``(id, fields)`` pairs of an XREAD or XREADGROUP reply of one stream, in either
    shape redis-py gives (a list of ``[stream, entries]``, or a dict with RESP3)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (item[1] for item in reply)
    return [tuple(entry) for entries in streams for entry in (entries or ())]


def entry_fields(fields: Any) -> Mapping[Any, Any]:
    """An entry's fields as a mapping (RESP3 may give a flat list)."""
    if isinstance(fields, Mapping):
        return fields
    items = list(fields or ())
    return dict(zip(items[::2], items[1::2], strict=False))

