"""The pure parts of :class:`mmws.MMRest`: arguments, URLs, body shapes, paging, waits.

No I/O, no threads and no clock (the time comes in as ``now``), so every rule here is
tested without a socket. The rules:

1. ``base_url`` is ``http://`` or ``https://`` with a host, and may carry a path prefix
   (``https://host/prefix`` asks ``/prefix/api/v1/...``); no user name, query or fragment.
2. Dates are ``datetime.date``, ``datetime.datetime`` (its UTC date; naive means UTC, as
   everywhere in mmws) or ``"YYYY-MM-DD"``; they go out as ``YYYY-MM-DD``.
3. A status filter is a string or an iterable of strings, sent joined by commas.
4. A list answer is a JSON list, or an object holding the list under ``data`` or the
   endpoint's own key (``orders``, ``bets``, ``accounts``); anything else is a
   ``RemoteProtocolError``, as is an item that does not decode (naming page and index).
5. Paging asks ``page=1, 2, ...`` until ``page >= totalPages`` or, without ``totalPages``,
   until a page shorter than ``pageSize``. A server that keeps going (more than
   ``max_items`` in all, or more than :data:`EXTRA_PAGES` full pages past the
   ``totalPages`` it first announced) is a ``RemoteProtocolError``; one that ignores
   ``page`` (the same full page twice in a row) ends the paging.
6. ``Retry-After`` is seconds or an HTTP date; other waits are ``base * 2**n`` (1 s, 2 s,
   4 s, ...). Every wait is capped by ``max_retry_after``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import attrs

from mmws._codec import UNDECODABLE, ModelCodec
from mmws._secret import redact_url
from mmws._transport import retry_after
from mmws.errors import ConfigError, RemoteProtocolError

__all__ = [
    "EXTRA_PAGES",
    "MAX_BODY",
    "MAX_ITEMS",
    "MAX_PAGE_SIZE",
    "RETRY_STATUSES",
    "BaseURL",
    "Pager",
    "backoff_delay",
    "date_range",
    "decode_items",
    "error_detail",
    "integer_param",
    "items_of",
    "number",
    "parse_base_url",
    "retry_delay",
    "statuses",
    "text_param",
    "total_pages",
    "whole",
]

MAX_BODY: Final = 64 * 1024 * 1024
"""The largest answer body read (64 MiB): a larger one is a ``RemoteProtocolError``."""

MAX_PAGE_SIZE: Final = 2000
"""The API's own limit on ``pageSize``."""

MAX_ITEMS: Final = 1_000_000
"""The most items one paged call collects before it gives up (narrow the dates instead)."""

EXTRA_PAGES: Final = 10
"""Full pages accepted past the ``totalPages`` a server first announced (new rows may push
the list on while it is read); more means the server does not stop."""

RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})

_DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_UNSAFE: Final = re.compile(r"[\x00-\x20\x7f-\x9f]")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: object) -> str:
    """A short ``repr`` for an error message (a huge ``int`` has none)."""
    try:
        text = repr(value)
    except ValueError:
        return "(too large to show)"
    return text if len(text) <= 40 else text[:37] + "..."


def _printable(text: str) -> str:
    """One line of printable text: a server cannot forge log lines through it."""
    return "".join(c if c.isprintable() else " " for c in text).strip()


# -- the base URL --------------------------------------------------------------------------


@attrs.frozen(slots=True)
class BaseURL:
    """Where the requests go: scheme, host, port and an optional path prefix."""

    scheme: str
    host: str
    port: int
    prefix: str = ""

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.prefix}"

    def target(self, path: str, query: Mapping[str, object]) -> str:
        """The request target: prefix, path and the query of the parameters not ``None``."""
        text = urlencode([(name, value) for name, value in query.items() if value is not None])
        return self.prefix + path + ("?" + text if text else "")


def parse_base_url(url: object) -> BaseURL:
    """``base_url`` checked and split; ``ConfigError`` naming what is wrong."""
    if not isinstance(url, str):
        raise ConfigError(f"base_url must be a string, got {_kind(url)}")
    shown = repr(redact_url(url)[:100])
    if _UNSAFE.search(url):
        raise ConfigError(f"base_url has spaces or control characters: {shown}")
    try:
        parts = urlsplit(url)
        port = parts.port
        user = parts.username or parts.password
    except ValueError as exc:
        raise ConfigError(f"base_url is not a valid URL ({exc}): {shown}") from None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in ("http", "https") or not host:
        raise ConfigError(f"base_url must be an http:// or https:// URL with a host, got {shown}")
    if user is not None:
        raise ConfigError("base_url must not carry a user name or password (it is not shown)")
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        raise ConfigError(f"base_url must not have a query or a fragment, got {shown}")
    if port == 0:
        raise ConfigError(f"base_url has port 0, got {shown}")
    prefix = parts.path.rstrip("/")
    return BaseURL(scheme, host, port or (443 if scheme == "https" else 80), prefix)


# -- arguments -----------------------------------------------------------------------------


def number(value: object, name: str, low: float, high: float = math.inf) -> float:
    """A finite real number in ``[low, high]`` (``bool`` is not a number)."""
    try:
        result = float(value) if type(value) in (int, float) else math.nan  # type: ignore[arg-type]
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise ConfigError(f"{name} must be a finite number, got {_kind(value)} {_show(value)}")
    if not low <= result <= high:
        limit = f"at least {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
        raise ConfigError(f"{name} must be {limit}, got {_show(value)}")
    return result


def whole(value: object, name: str, low: int, high: int | None = None) -> int:
    """An ``int`` (not a ``bool``) in ``[low, high]``."""
    if type(value) is not int or value < low or (high is not None and value > high):
        limit = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{name} must be an integer {limit}, got {_kind(value)} {_show(value)}")
    return value


def text_param(value: object, name: str) -> str | None:
    """A non-empty string filter, or ``None`` (not sent)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {_kind(value)} {_show(value)}")
    return str.__str__(value)


def integer_param(value: object, name: str) -> int | None:
    """An integer filter (``order_id``), or ``None`` (not sent)."""
    return None if value is None else whole(value, name, 0)


def _day(value: object, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        try:
            return aware.astimezone(timezone.utc).date().isoformat()
        except (OverflowError, ValueError):
            raise ConfigError(f"{name} is out of range in UTC: {value!r}") from None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _DAY.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise ConfigError(f"{name} is not a real date: {value!r}") from None
    raise ConfigError(
        f"{name} must be a date, a datetime or a 'YYYY-MM-DD' string, "
        f"got {_kind(value)} {_show(value)}"
    )


def date_range(from_date: object, to_date: object) -> tuple[str | None, str | None]:
    """``(fromDate, toDate)`` as ``YYYY-MM-DD`` texts; ``ConfigError`` if either is not a
    date or ``from_date`` comes after ``to_date``."""
    start, end = _day(from_date, "from_date"), _day(to_date, "to_date")
    if start is not None and end is not None and start > end:
        raise ConfigError(f"from_date ({start}) is after to_date ({end})")
    return start, end


def statuses(value: object, name: str = "status", *, lower: bool = False) -> str | None:
    """A string or an iterable of strings, joined by commas; ``None`` is not sent."""
    if value is None:
        return None
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | bytearray | Mapping):
        items = list(value)
    else:
        raise ConfigError(
            f"{name} must be a string or an iterable of strings, got {_kind(value)}"
        )
    if not items:
        raise ConfigError(f"{name} must name at least one status")
    texts = []
    for item in items:
        if not isinstance(item, str) or not item:
            raise ConfigError(
                f"{name} must hold non-empty strings, got {_kind(item)} {_show(item)}"
            )
        text = str.__str__(item)
        texts.append(text.lower() if lower else text)
    return ",".join(texts)


# -- answers -------------------------------------------------------------------------------


def items_of(body: Any, keys: Sequence[str], what: str) -> list[Any]:
    """The list of a list answer: the body itself, or the first list under one of ``keys``."""
    if type(body) is list:
        return body
    if type(body) is dict:
        for key in keys:
            value = body.get(key)
            if type(value) is list:
                return value
        raise RemoteProtocolError(
            f"{what}: the answer is an object with no list under {' or '.join(map(repr, keys))}"
        )
    raise RemoteProtocolError(f"{what}: the answer is a JSON {_kind(body)}, not a list")


def total_pages(body: Any) -> int | None:
    """``totalPages`` of a paged answer, or ``None`` when absent or not a count."""
    if type(body) is dict:
        value = body.get("totalPages")
        if type(value) is int and value >= 0:
            return value
    return None


def decode_items(
    codec: ModelCodec,
    items: Sequence[Any],
    what: str,
    scrub: Callable[[str], str] = str,
) -> list[Any]:
    """Each item through ``codec``; the first that does not decode is a
    ``RemoteProtocolError`` naming ``what`` and its index (its text passed through
    ``scrub``, which removes the API key should a server echo it)."""
    out = []
    for index, item in enumerate(items):
        if type(item) is not dict:
            raise RemoteProtocolError(
                f"{what}: item {index} is a JSON {_kind(item)}, not an object"
            )
        try:
            out.append(codec.structure(item))
        except UNDECODABLE as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise RemoteProtocolError(
                scrub(f"{what}: item {index} does not decode ({type(exc).__name__}: {reason})")[
                    :400
                ]
            ) from None
    return out


def _fastapi(entry: object) -> str:
    if isinstance(entry, dict):
        loc = entry.get("loc")
        where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
        msg = entry.get("msg")
        msg = msg if isinstance(msg, str) else ""
        return f"{where}: {msg}" if where else msg
    return str(entry)


def error_detail(body: bytes) -> str:
    """The server's explanation of an error answer, as one printable line of at most 300
    characters: FastAPI's ``detail`` (a text, or a list of ``{loc, msg}``), else
    ``message`` or ``error``, else the start of the body."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UNDECODABLE:
        return _printable(body[:300].decode("utf-8", "replace"))[:300]
    if isinstance(data, dict):
        for key in ("detail", "message", "error"):
            value = data.get(key)
            if isinstance(value, str):
                return _printable(value[:300])[:300]
            if isinstance(value, list):
                return _printable("; ".join(_fastapi(e) for e in value[:5]))[:300]
    return ""


# -- paging --------------------------------------------------------------------------------


class Pager:
    """Which page to ask for next, and when to stop (rule 5 above). Pure."""

    __slots__ = ("announced", "items", "max_items", "max_pages", "page", "page_size", "previous")

    def __init__(self, page_size: int, max_items: int = MAX_ITEMS) -> None:
        self.page_size = page_size
        self.max_items = max_items
        self.max_pages = -(-max_items // page_size) + EXTRA_PAGES
        self.page = 1
        self.items = 0
        self.announced: int | None = None  # the first totalPages seen
        self.previous: list[Any] | None = None

    def last(self, body: Any, items: list[Any], what: str) -> bool:
        """Take the answer to :attr:`page`: ``True`` if it was the last page, else move
        :attr:`page` on. ``RemoteProtocolError`` when the server does not stop."""
        total = total_pages(body)
        if total is not None and self.announced is None:
            self.announced = total
            if total > self.max_pages:
                raise RemoteProtocolError(
                    f"{what}: the server announces {total} pages of {self.page_size}, more "
                    f"than the {self.max_items} items one call collects; narrow the dates"
                )
        self.items += len(items)
        if not items or (len(items) < self.page_size if total is None else self.page >= total):
            return True
        if items == self.previous:  # a server that ignores ``page``: nothing more to come
            return True
        if self.announced is not None and self.page >= self.announced + EXTRA_PAGES:
            raise RemoteProtocolError(
                f"{what}: the server keeps answering full pages past the "
                f"{self.announced} pages it announced"
            )
        if self.items >= self.max_items or self.page >= self.max_pages:
            raise RemoteProtocolError(
                f"{what}: more than {self.max_items} items in {self.page} pages; "
                "narrow the dates"
            )
        self.previous = items
        self.page += 1
        return False


# -- waits ---------------------------------------------------------------------------------


def retry_delay(header: object, now: float, cap: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date, read
    against ``now``, epoch seconds), at most ``cap``; ``None`` when absent or unreadable."""
    seconds = retry_after(header, now)
    return None if seconds is None else min(seconds, cap)


def backoff_delay(base: float, failures: int, cap: float) -> float:
    """The wait after the ``failures``-th failure in a row (from 0): ``base * 2**failures``,
    at most ``cap``."""
    return min(cap, base * 2.0 ** min(failures, 1000))
