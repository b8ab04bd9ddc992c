"""MMRest: a small typed client for the MM REST API (protocols.md A.6), standard library only.

::

    with mmws.MMRest(api_key) as rest:
        resting = rest.open_orders()
        recent = rest.orders(from_date=date.today() - timedelta(days=1))

The answers decode through the same codecs as the WebSocket's, so ``rest.orders()`` gives
the :class:`~mmws.Order` objects an ``OrderEvent`` carries. One persistent HTTP/1.1
connection is kept alive between requests and reopened when the server closed it; one
request runs at a time, so threads may share an instance. Waits between retries end at
once when another thread calls :meth:`MMRest.close`.

The API key goes only into the ``X-API-Key`` header of requests to ``base_url``: a
redirect is never followed, and the key is in no log line, ``repr``, exception text or
traceback local (it stays a :class:`~mmws._secret.Secret` until the header is built).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from types import TracebackType
from typing import Any, Final

import attrs

from mmws._codec import UNDECODABLE, ModelCodec, model_codec, preview
from mmws._secret import Secret, SecretSet
from mmws._transport import MAX_RETRY_AFTER
from mmws._version import __version__
from mmws.errors import (
    AuthenticationError,
    CertificateError,
    ClientClosed,
    ConfigError,
    ConnectError,
    ConnectTimeout,
    MmwsError,
    RateLimitError,
    RemoteProtocolError,
    RestError,
    TransportError,
    TransportTimeout,
)
from mmws.mm._restwire import (
    MAX_BODY,
    MAX_ITEMS,
    MAX_PAGE_SIZE,
    RETRY_STATUSES,
    Pager,
    backoff_delay,
    date_range,
    decode_items,
    error_detail,
    integer_param,
    items_of,
    number,
    parse_base_url,
    retry_delay,
    statuses,
    text_param,
    whole,
)
from mmws.mm.models import Account, Bet, Order, TradingStatus
from mmws.mm.protocol import validate_api_key

__all__ = ["MMRest"]

log = logging.getLogger("mmws.rest")

DateLike = date | datetime | str

CLOSE_WAIT: Final = 1.0
"""How long ``close()`` waits for a request in flight to let go of the connection (one
still connecting, which the shutdown cannot wake, closes it itself when it ends)."""

_ORDERS: Final = model_codec(Order, {"orderId": "id"})
_BETS: Final = model_codec(Bet, {"betId": "id"})
_ACCOUNTS: Final = model_codec(Account)
_STATUS: Final = model_codec(TradingStatus)
_USER_AGENT: Final = f"mmws/{__version__}"
_LOOPBACK: Final = ("localhost", "127.0.0.1", "::1")


@attrs.frozen(slots=True)
class _Answer:
    status: int
    # hidden from repr: a traceback rendered with its locals must not show what a server
    # echoed back (it may be the key)
    headers: http.client.HTTPMessage = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)


@attrs.frozen(slots=True)
class _Failure:
    error: MmwsError
    retry: bool
    stale: bool = False  # a kept-alive connection the server had closed: reopen, free


class MMRest:
    """A typed client for the MM REST API, for resynchronising after a reconnect.

    Args:
        api_key: The key (a UUID), sent in the ``X-API-Key`` header and nowhere else.
        base_url: ``http://`` or ``https://`` and a host; a path prefix is kept. Default:
            ``https://mmapi.55-tech.com``.
        timeout: Seconds for each socket operation: connect, send, each read (default 10).
        ssl_context: The TLS context to use; it wins over ``ca_file``.
        ca_file: A PEM file of CAs to trust instead of the system's.
        verify_tls: ``False`` turns certificate checks off (whatever ``ssl_context``
            says), and logs a warning saying so. Default ``True``.
        retries: How often a 429, a 500/502/503/504 or a failed connection is retried
            (default 3; 0 never retries).
        page_size: Items per page of :meth:`orders` and :meth:`bets`, 1 to 2000 (default
            2000, the API's limit).
        backoff_base: The first wait between retries, in seconds (default 1); each next one
            doubles (1 s, 2 s, 4 s, ...). A 429's or 503's ``Retry-After`` replaces it.
        max_retry_after: The longest single wait, in seconds (default 60, at most 600).

    Errors: ``ConfigError`` for a bad argument (before anything is sent);
    ``AuthenticationError`` for HTTP 401/403; :class:`~mmws.RateLimitError` when 429
    persists; :class:`~mmws.RestError` for other HTTP errors (``status``, ``detail``) and
    for redirects, which are never followed; ``CertificateError``, ``ConnectError``,
    ``TransportTimeout`` and ``TransportError`` when the network fails;
    ``RemoteProtocolError`` for an answer that does not decode; ``ClientClosed`` after
    :meth:`close`. Environment proxies are not used.
    """

    max_items: int = MAX_ITEMS
    """The most items :meth:`orders` or :meth:`bets` collect in one call (then
    ``RemoteProtocolError``: narrow the dates)."""

    def __init__(
        self,
        api_key: str | Secret,
        base_url: str = "https://mmapi.55-tech.com",
        *,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        verify_tls: bool = True,
        retries: int = 3,
        page_size: int = MAX_PAGE_SIZE,
        backoff_base: float = 1.0,
        max_retry_after: float = 60.0,
    ) -> None:
        self._key = validate_api_key(api_key)
        self._secrets = SecretSet(self._key)
        self._base = parse_base_url(base_url)
        self.base_url = str(self._base)
        self.timeout = number(timeout, "timeout", 0.001)
        self.retries = whole(retries, "retries", 0)
        self.page_size = whole(page_size, "page_size", 1, MAX_PAGE_SIZE)
        self.backoff_base = number(backoff_base, "backoff_base", 0.0)
        self.max_retry_after = number(max_retry_after, "max_retry_after", 0.0, MAX_RETRY_AFTER)
        if not isinstance(verify_tls, bool):
            raise ConfigError(f"verify_tls must be True or False, got {type(verify_tls).__name__}")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise ConfigError(
                f"ssl_context must be an ssl.SSLContext, got {type(ssl_context).__name__}"
            )
        if ca_file is not None and not isinstance(ca_file, str | os.PathLike):
            raise ConfigError(f"ca_file must be a path, got {type(ca_file).__name__}")
        self._conn: http.client.HTTPConnection
        if self._base.secure:
            context = self._tls_context(ssl_context, ca_file, verify_tls)
            self._conn = http.client.HTTPSConnection(
                self._base.host, self._base.port, timeout=self.timeout, context=context
            )
        else:
            if self._base.host not in _LOOPBACK:
                log.warning(
                    "MMRest talks plain http:// to %s: the API key crosses the network "
                    "unencrypted",
                    self.base_url,
                )
            self._conn = http.client.HTTPConnection(
                self._base.host, self._base.port, timeout=self.timeout
            )
        self._lock = threading.Lock()  # one request at a time, with its retries
        self._closed = threading.Event()

    def __repr__(self) -> str:
        state = " closed" if self._closed.is_set() else ""
        return f"<MMRest {self.base_url} api_key={self._key.hint!r}{state}>"

    def __enter__(self) -> MMRest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public --------------------------------------------------------------------------

    def open_orders(
        self, *, fixture_id: str | None = None, exchange: str | None = None
    ) -> list[Order]:
        """Resting and partly filled orders (``GET /api/v1/orders/open``; not paged).

        Args:
            fixture_id: Only the orders of this fixture (e.g. ``"id1000000861624412"``).
            exchange: Only the orders on this exchange (e.g. ``"polymarket"``).

        Returns:
            The orders, as :class:`~mmws.Order` objects.
        """
        query = {
            "fixtureId": text_param(fixture_id, "fixture_id"),
            "exchange": text_param(exchange, "exchange"),
        }
        return self._list("/api/v1/orders/open", query, _ORDERS, ("data", "orders"))

    def orders(
        self,
        from_date: DateLike | None = None,
        to_date: DateLike | None = None,
        *,
        status: str | Iterable[str] | None = None,
        fixture_id: str | None = None,
        exchange: str | None = None,
    ) -> list[Order]:
        """Orders created from ``from_date`` to ``to_date`` (whole UTC days, both included),
        every page of ``GET /api/v1/orders``. ``status`` is one ``orderStatus`` or several.

        An order seen on two pages (the list moved on while it was read) is returned
        once, with the later copy.

        Args:
            from_date: The first day: a ``date``, a ``datetime`` (its UTC day) or a
                ``"YYYY-MM-DD"`` string; ``None`` sets no lower bound.
            to_date: The last day, in the same forms; ``None`` sets no upper bound.
            status: One ``orderStatus`` (e.g. ``"FILLED"`` or ``OrderStatus.FILLED``) or
                several; ``None`` for every status.
            fixture_id: Only the orders of this fixture.
            exchange: Only the orders on this exchange (e.g. ``"polymarket"``).

        Returns:
            The orders, as :class:`~mmws.Order` objects (at most :attr:`max_items`).
        """
        start, end = date_range(from_date, to_date)
        query = {
            "fixtureId": text_param(fixture_id, "fixture_id"),
            "exchange": text_param(exchange, "exchange"),
            "status": statuses(status),
            "fromDate": start,
            "toDate": end,
        }
        return self._paged("/api/v1/orders", query, _ORDERS, ("data", "orders"), "order_id")

    def bets(
        self,
        from_date: DateLike | None = None,
        to_date: DateLike | None = None,
        *,
        order_id: int | None = None,
        bookmaker: str | None = None,
        status: str | Iterable[str] | None = None,
    ) -> list[Bet]:
        """Hedge bets placed from ``from_date`` to ``to_date``, every page of
        ``GET /api/v1/bets``. ``status`` is sent lowercase, as the API expects.

        Args:
            from_date: The first day: a ``date``, a ``datetime`` (its UTC day) or a
                ``"YYYY-MM-DD"`` string; ``None`` sets no lower bound.
            to_date: The last day, in the same forms; ``None`` sets no upper bound.
            order_id: Only the bets hedging this order.
            bookmaker: Only the bets at this bookmaker (e.g. ``"pinnacle"``).
            status: One ``betStatus`` (e.g. ``"placed"``) or several; ``None`` for every
                status.

        Returns:
            The bets, as :class:`~mmws.Bet` objects (at most :attr:`max_items`).
        """
        start, end = date_range(from_date, to_date)
        query = {
            "orderId": integer_param(order_id, "order_id"),
            "bookmaker": text_param(bookmaker, "bookmaker"),
            "status": statuses(status, lower=True),
            "fromDate": start,
            "toDate": end,
        }
        return self._paged("/api/v1/bets", query, _BETS, ("data", "bets"), "bet_id")

    def accounts(self, *, exchange: str | None = None) -> list[Account]:
        """Exchange accounts and balances (``GET /api/v1/accounts``).

        Args:
            exchange: Only the accounts on this exchange (e.g. ``"kalshi"``).

        Returns:
            The accounts, as :class:`~mmws.Account` objects.
        """
        query = {"exchange": text_param(exchange, "exchange")}
        return self._list("/api/v1/accounts", query, _ACCOUNTS, ("data", "accounts"))

    def trading_status(self) -> TradingStatus:
        """Whether trading is active, paused, stopped or blocked by an emergency
        (``GET /api/v1/trading/status``)."""
        what = "GET /api/v1/trading/status"
        body = self._get("/api/v1/trading/status", {})
        if type(body) is dict and type(body.get("data")) is dict and not (
            _STATUS.known & body.keys()
        ):
            body = body["data"]  # tolerate a {"data": {...}} envelope
        if type(body) is not dict:
            raise RemoteProtocolError(f"{what}: the answer is a JSON {type(body).__name__}")
        return decode_items(_STATUS, [body], what, self._secrets.redact)[0]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the connection. A request or a wait in another thread ends at once with
        ``ClientClosed``; every later call raises ``ClientClosed``. Idempotent, and returns
        within about a second whatever the request in flight is doing."""
        self._closed.set()
        if not self._lock.acquire(blocking=False):
            self._interrupt()  # wake the thread that is in a request
            if not self._lock.acquire(timeout=CLOSE_WAIT):
                return  # it closes the connection itself when it ends (see _get)
        try:
            self._conn.close()
        finally:
            self._lock.release()

    # -- private -------------------------------------------------------------------------

    def _list(
        self, path: str, query: Mapping[str, object], codec: ModelCodec, keys: tuple[str, ...]
    ) -> list[Any]:
        what = f"GET {path}"
        items = items_of(self._get(path, query), keys, what)
        return decode_items(codec, items, what, self._secrets.redact)

    def _paged(
        self,
        path: str,
        query: Mapping[str, object],
        codec: ModelCodec,
        keys: tuple[str, ...],
        identity: str,
    ) -> list[Any]:
        pager = Pager(self.page_size, self.max_items)
        found: dict[Any, Any] = {}
        while True:
            what = f"GET {path} page {pager.page}"
            body = self._get(path, {**query, "page": pager.page, "pageSize": self.page_size})
            items = items_of(body, keys, what)
            for model in decode_items(codec, items, what, self._secrets.redact):
                found[getattr(model, identity)] = model  # a repeat keeps its first place
            if pager.last(body, items, what):
                return list(found.values())

    def _get(self, path: str, query: Mapping[str, object]) -> Any:
        """The JSON answer of ``GET path?query``, with retries (one request at a time)."""
        target = self._base.target(path, query)
        what = f"GET {path}"
        with self._lock:
            try:
                failures = 0
                while True:
                    if self._closed.is_set():
                        raise ClientClosed("MMRest is closed")
                    outcome = self._attempt(target, failures + 1)
                    if isinstance(outcome, _Answer) and 200 <= outcome.status < 300:
                        return self._json(outcome, what)
                    failure = (
                        outcome
                        if isinstance(outcome, _Failure)
                        else self._refused(outcome, what, failures + 1)
                    )
                    if not failure.retry or failures >= self.retries:
                        raise failure.error
                    wait = getattr(failure.error, "retry_after", None)
                    if wait is None:
                        wait = backoff_delay(self.backoff_base, failures, self.max_retry_after)
                    failures += 1
                    log.info(
                        "%s; retry %d of %d in %.3g s", failure.error, failures, self.retries, wait
                    )
                    self._wait(wait)
            finally:
                if self._closed.is_set():
                    self._conn.close()

    def _wait(self, seconds: float) -> None:
        """Sleep before a retry; ``ClientClosed`` as soon as :meth:`close` is called."""
        if self._closed.wait(seconds):
            raise ClientClosed("MMRest was closed while waiting to retry")

    def _attempt(self, target: str, attempt: int) -> _Answer | _Failure:
        note = f" (attempt {attempt})" if attempt > 1 else ""
        outcome = self._exchange(target, note)
        if isinstance(outcome, _Failure) and outcome.stale:
            log.debug("the server had closed the kept-alive connection; reopening it")
            outcome = self._exchange(target, note)
        return outcome

    def _exchange(self, target: str, note: str) -> _Answer | _Failure:
        """One request on the connection (opened first if needed). Returns its error, never
        raises it: http.client's frames below hold the header with the key in their locals,
        and a traceback must not carry them."""
        conn = self._conn
        reused = conn.sock is not None
        started = time.monotonic()
        if not reused:
            failure = self._open(conn, note)
            if failure is not None:
                return failure
        phase = "sending the request"
        try:
            conn.request("GET", target, headers=self._wire_headers())
            phase = "waiting for the answer"
            response = conn.getresponse()
            phase = "reading the answer"
            body = _read_body(response, target)
        except Exception as exc:
            conn.close()
            stale = reused and phase != "reading the answer"
            failure = self._failed(exc, phase, stale, target, note)
            log.debug("GET %s failed after %.1f ms: %s", target, _ms(started), failure.error)
            return failure
        except BaseException:
            conn.close()
            raise
        log.debug(
            "GET %s -> HTTP %d, %d bytes in %.1f ms%s",
            target, response.status, len(body), _ms(started), "" if reused else " (new connection)",
        )
        return _Answer(response.status, response.headers, body)

    def _wire_headers(self) -> dict[str, str]:
        # The one place the key is revealed: into a dict handed straight to http.client.
        return {
            "X-API-Key": self._key.reveal(),
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }

    def _open(self, conn: http.client.HTTPConnection, note: str) -> _Failure | None:
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            reason = self._secrets.redact(str(exc.verify_message or exc.reason or exc))
            error: MmwsError = CertificateError(
                f"TLS certificate verification failed for {self.base_url}: {reason}"
            )
            return _Failure(_chain(error, exc, self._secrets), retry=False)
        except Exception as exc:
            conn.close()
            if self._closed.is_set():
                return _Failure(ClientClosed("MMRest was closed while connecting"), retry=False)
            text = self._secrets.redact(f"{type(exc).__name__}: {exc}")[:200]
            if isinstance(exc, TimeoutError):
                error = ConnectTimeout(
                    f"connecting to {self.base_url} timed out after {self.timeout:g} s{note}"
                )
            else:
                error = ConnectError(f"cannot connect to {self.base_url}{note}: {text}")
            return _Failure(_chain(error, exc, self._secrets), retry=isinstance(exc, OSError))
        if self._closed.is_set():  # close() came while connecting: send nothing
            conn.close()
            return _Failure(ClientClosed("MMRest was closed while connecting"), retry=False)
        return None

    def _failed(
        self, exc: Exception, phase: str, maybe_stale: bool, target: str, note: str
    ) -> _Failure:
        """The error for a request that failed after the connection was open."""
        if self._closed.is_set():
            return _Failure(ClientClosed("MMRest was closed during a request"), retry=False)
        if isinstance(exc, MmwsError):
            return _Failure(exc.with_traceback(None), retry=False)
        if maybe_stale and isinstance(exc, ConnectionError):  # RemoteDisconnected is one
            return _Failure(TransportError("stale connection"), retry=True, stale=True)
        what = f"GET {target.partition('?')[0]}{note}"
        text = self._secrets.redact(f"{type(exc).__name__}: {exc}")[:200]
        error: MmwsError
        if isinstance(exc, TimeoutError):
            error = TransportTimeout(f"{what} timed out {phase} (timeout={self.timeout:g} s)")
        elif isinstance(exc, OSError | http.client.IncompleteRead):
            error = TransportError(f"{what}: the connection failed {phase}: {text}")
        elif isinstance(exc, http.client.HTTPException):
            return _Failure(
                _chain(
                    RemoteProtocolError(f"{what}: the answer is not valid HTTP/1.1 ({text})"),
                    exc,
                    self._secrets,
                ),
                retry=False,
            )
        else:
            error = RemoteProtocolError(f"{what}: the answer could not be read ({text})")
            return _Failure(_chain(error, exc, self._secrets), retry=False)
        return _Failure(_chain(error, exc, self._secrets), retry=True)

    def _refused(self, answer: _Answer, what: str, attempts: int) -> _Failure:
        """The error for an HTTP answer that is not 2xx, and whether to retry it."""
        status = answer.status
        detail = self._secrets.redact(error_detail(answer.body))
        said = f": {detail}" if detail else ""
        times = f" (attempt {attempts})" if attempts > 1 else ""
        if 300 <= status < 400:
            location = self._secrets.redact(str(answer.headers.get("Location", "")))[:200]
            return _Failure(
                RestError(
                    f"{what} answered HTTP {status}, a redirect to {location!r}; it is not "
                    f"followed (the API key goes only to {self.base_url})",
                    status,
                    detail,
                ),
                retry=False,
            )
        if status in (401, 403):
            return _Failure(
                AuthenticationError(f"{what} refused the API key with HTTP {status}{said}"),
                retry=False,
            )
        wait = None
        if status in (429, 503):
            wait = retry_delay(answer.headers.get("Retry-After"), time.time(), self.max_retry_after)
        if status == 429:
            error: RestError = RateLimitError(
                f"{what} answered HTTP 429 (rate limited){times}{said}", status, detail, wait
            )
        else:
            text = f"{what} failed with HTTP {status}{times}{said}"
            error = RestError(text, status, detail, wait)
        return _Failure(error, retry=status in RETRY_STATUSES)

    def _json(self, answer: _Answer, what: str) -> Any:
        try:
            return json.loads(answer.body.decode("utf-8"))
        except UNDECODABLE as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:100]
            raise RemoteProtocolError(
                self._secrets.redact(
                    f"{what} answered HTTP {answer.status} with a body that is not JSON "
                    f"({type(exc).__name__}: {reason})"
                ),
                self._secrets.redact(preview(answer.body)),
            ) from None

    def _tls_context(
        self,
        ssl_context: ssl.SSLContext | None,
        ca_file: str | os.PathLike[str] | None,
        verify_tls: bool,
    ) -> ssl.SSLContext:
        if not verify_tls:
            log.warning(
                "TLS certificate verification is DISABLED for %s (verify_tls=False): anyone "
                "on the network path can read the API key and change the answers",
                self.base_url,
            )
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if ssl_context is not None:
            return ssl_context
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the CA file {str(ca_file)!r}: {exc}") from None

    def _interrupt(self) -> None:
        """Shut the socket of the request in flight, so its thread wakes now."""
        sock = self._conn.sock
        if sock is not None:
            try:
                # socket.socket's own shutdown: an SSLSocket's would also drop its TLS
                # object under the reading thread's feet
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


def _read_body(response: http.client.HTTPResponse, target: str) -> bytes:
    """The whole body, at most :data:`MAX_BODY` bytes (``RemoteProtocolError`` beyond)."""
    length = response.length
    if length is not None:
        if length > MAX_BODY:
            raise RemoteProtocolError(
                f"GET {target.partition('?')[0]} announces a body of {length} bytes, "
                f"more than the {MAX_BODY} read"
            )
        return response.read()  # IncompleteRead when the server closes early
    parts: list[bytes] = []
    size = 0
    while chunk := response.read(1 << 20):
        size += len(chunk)
        if size > MAX_BODY:
            raise RemoteProtocolError(
                f"GET {target.partition('?')[0]} sent a body of more than {MAX_BODY} bytes"
            )
        parts.append(chunk)
    return b"".join(parts)


def _chain(error: MmwsError, exc: BaseException, secrets: SecretSet) -> MmwsError:
    """``error`` caused by ``exc``, with every traceback of ``exc``'s chain dropped (the
    frames of http.client hold the request, key included, in their locals); with no cause
    at all when the chain's text would show the key."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(seen) < 8 and all(cause is not s for s in seen):
        seen.append(cause)
        cause.__traceback__ = None
        cause = cause.__cause__ or cause.__context__
    text = " ".join(f"{e} {e.args!r}" for e in seen)
    error.__cause__ = None if secrets.found_in(text) else exc
    error.__suppress_context__ = True
    return error


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
