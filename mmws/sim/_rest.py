"""The simulator's MM REST API (protocols.md A.6), answered from its ground truth
(:mod:`mmws.sim._truth`) on the simulator's one port, and the REST faults.

All routes are ``GET`` under ``/api/v1`` and need the header ``X-API-Key`` (one of the
simulator's MM keys, not revoked: else ``401 {"detail": "Invalid or missing API key"}``);
the key's client selects the data. Errors are FastAPI style: an unknown path is ``404
{"detail": "Not Found"}``, a bad query parameter ``422 {"detail": [{"loc": ["query",
NAME], "msg": ..., "type": ..., "input": ...}, ...]}`` (every bad parameter listed).

========================  ==================================================================
route                     parameters -> answer
========================  ==================================================================
``/api/v1/orders``        ``fixtureId``, ``exchange``, ``status`` (comma-separated
                          ``orderStatus`` values), ``fromDate``/``toDate`` (``YYYY-MM-DD``,
                          inclusive, on the UTC day of ``createdAt``), ``page`` (from 1),
                          ``pageSize`` (default 50, at most 2000) -> ``{"data": [...],
                          "total", "page", "pageSize", "totalPages"}``, by ``orderId``
``/api/v1/orders/open``   ``fixtureId``, ``exchange`` -> ``{"orders": [...], "count"}``: the
                          orders PENDING_PLACEMENT or PLACED, by ``orderId``
``/api/v1/bets``          ``orderId``, ``bookmaker``, ``status`` (comma-separated
                          ``betStatus`` values, lowercase), ``fromDate``/``toDate`` (on
                          ``placedAt``), ``page``, ``pageSize`` -> paginated, by ``betId``
``/api/v1/accounts``      ``exchange`` -> ``{"oddsFormat": "decimal", "accounts": [...],
                          "count"}``
``/api/v1/trading/status`` -> ``TradingStatusResponse``; ``status`` is ``"emergency"`` while
                          the last emergency broadcast said so, else ``"active"``
========================  ==================================================================

Filters compare exactly; an empty parameter is no filter. Rows are the wire dicts of the
broadcasts, merged (see :mod:`mmws.sim._truth`).
"""

from __future__ import annotations

import http
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Final
from urllib.parse import parse_qsl

from websockets.http11 import Request

from mmws.sim._conn import API_PREFIX
from mmws.sim._state import SimState
from mmws.sim._truth import Truth, paginate
from mmws.sim.faults import check_seconds
from mmws.sim.snapshots import RestRequest

logger = logging.getLogger("mmws.sim")

__all__ = ["MAX_PAGE_SIZE", "REST_LOG_SIZE", "RestApi"]

MAX_PAGE_SIZE: Final = 2000
DEFAULT_PAGE_SIZE: Final = 50
REST_LOG_SIZE: Final = 10_000
DETAIL_401: Final = "Invalid or missing API key"
_INT: Final = re.compile(r"[+-]?[0-9]{1,30}")
_DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SECRET_NAME: Final = re.compile(r"api_?key|token|^t$|^key$", re.I)

Answer = Callable[[Truth, str], Any]
"""Reads the truth for one client (called under the simulator's lock): the 200 body."""


class _Query:
    """The query parameters of one request, read with FastAPI's (pydantic's) rules; every
    problem is collected as a 422 ``detail`` item."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self.params = params
        self.errors: list[dict[str, Any]] = []

    def _error(self, name: str, kind: str, msg: str, **ctx: Any) -> None:
        item: dict[str, Any] = {
            "type": kind,
            "loc": ["query", name],
            "msg": msg,
            "input": self.params[name],
        }
        if ctx:
            item["ctx"] = ctx
        self.errors.append(item)

    def text(self, name: str) -> str | None:
        return self.params.get(name) or None

    def statuses(self, name: str) -> frozenset[str] | None:
        value = self.params.get(name)
        if not value:
            return None
        return frozenset(s.strip() for s in value.split(",") if s.strip()) or None

    def integer(
        self, name: str, default: int | None = None, *, ge: int | None = None, le: int | None = None
    ) -> int | None:
        value = self.params.get(name)
        if value is None:
            return default
        if not _INT.fullmatch(value.strip()):
            msg = "Input should be a valid integer, unable to parse string as an integer"
            self._error(name, "int_parsing", msg)
            return default
        number = int(value)
        if ge is not None and number < ge:
            msg = f"Input should be greater than or equal to {ge}"
            self._error(name, "greater_than_equal", msg, ge=ge)
            return default
        if le is not None and number > le:
            msg = f"Input should be less than or equal to {le}"
            self._error(name, "less_than_equal", msg, le=le)
            return default
        return number

    def day(self, name: str) -> date | None:
        value = self.params.get(name)
        if not value:
            return None
        try:
            if not _DAY.fullmatch(value):
                raise ValueError("expected YYYY-MM-DD")
            return date.fromisoformat(value)
        except ValueError as exc:
            msg = f"Input should be a valid date in the format YYYY-MM-DD, {exc}"
            self._error(name, "date_parsing", msg)
            return None

    def paging(self) -> tuple[int, int]:
        page = self.integer("page", 1, ge=1)
        size = self.integer("pageSize", DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
        assert page is not None and size is not None
        return page, size


def _orders(q: _Query) -> Answer:
    fixture, exchange, statuses = q.text("fixtureId"), q.text("exchange"), q.statuses("status")
    start, end = q.day("fromDate"), q.day("toDate")
    page, size = q.paging()

    def answer(truth: Truth, client: str) -> Any:
        rows = truth.orders(
            client,
            fixture_id=fixture,
            exchange=exchange,
            statuses=statuses,
            from_date=start,
            to_date=end,
        )
        return paginate(rows, page, size)

    return answer


def _open_orders(q: _Query) -> Answer:
    fixture, exchange = q.text("fixtureId"), q.text("exchange")

    def answer(truth: Truth, client: str) -> Any:
        rows = truth.orders(client, fixture_id=fixture, exchange=exchange, open_only=True)
        return {"orders": rows, "count": len(rows)}

    return answer


def _bets(q: _Query) -> Answer:
    order_id = q.integer("orderId")
    bookmaker, statuses = q.text("bookmaker"), q.statuses("status")
    start, end = q.day("fromDate"), q.day("toDate")
    page, size = q.paging()

    def answer(truth: Truth, client: str) -> Any:
        rows = truth.bets(
            client,
            order_id=order_id,
            bookmaker=bookmaker,
            statuses=statuses,
            from_date=start,
            to_date=end,
        )
        return paginate(rows, page, size)

    return answer


def _accounts(q: _Query) -> Answer:
    exchange = q.text("exchange")

    def answer(truth: Truth, client: str) -> Any:
        rows = truth.accounts(client, exchange=exchange)
        return {"oddsFormat": "decimal", "accounts": rows, "count": len(rows)}

    return answer


def _trading_status(q: _Query) -> Answer:
    def answer(truth: Truth, client: str) -> Any:
        active = truth.emergency_active
        emergency = truth.emergency if active else None
        return {
            "client": client,
            "clientName": client,
            "oddsFormat": "decimal",
            "status": "emergency" if active else "active",
            "tradingActive": not active,
            "manualPaused": False,
            "manualPausedAt": None,
            "manualPausedReason": None,
            "manualStopped": False,
            "manualStoppedAt": None,
            "manualStoppedReason": None,
            "systemTradingBlocked": active,
            "emergencyActive": active,
            "systemStopped": False,
            "softPaused": False,
            "systemReason": None if emergency is None else emergency.get("reason"),
            "systemDurationSeconds": None,
        }

    return answer


ROUTES: Final[dict[str, Callable[[_Query], Answer]]] = {
    f"{API_PREFIX}/orders": _orders,
    f"{API_PREFIX}/orders/open": _open_orders,
    f"{API_PREFIX}/bets": _bets,
    f"{API_PREFIX}/accounts": _accounts,
    f"{API_PREFIX}/trading/status": _trading_status,
}


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class RestApi(SimState):
    """The MM REST part of :class:`~mmws.sim.server.Simulator` (it mixes this in)."""

    def _api(self, request: Request, path: str, query: str) -> tuple[int, Any, list[Any]]:
        """Answer one ``/api/v1`` request: (status, JSON body, extra headers)."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        fault = self._faults.take_rest_error()
        delay = self._faults.rest_latency
        if delay > 0:
            self._stop.wait(delay)  # ends at once when the simulator closes
        status, body, extra = self._api_answer(request, path, params, fault)
        shown = {
            name: "***" if _SECRET_NAME.search(name) or value in self._secrets else value
            for name, value in params.items()
        }
        with self._changed:
            self._rest_log.append(RestRequest(path, shown, status, time.monotonic()))
            self._changed.notify_all()
        logger.debug("REST %s -> %d", path, status)
        return status, body, extra

    def _api_answer(
        self,
        request: Request,
        path: str,
        params: Mapping[str, str],
        fault: tuple[int, float | None] | None,
    ) -> tuple[int, Any, list[Any]]:
        if fault is not None:
            status, retry_after = fault
            extra = [] if retry_after is None else [("Retry-After", str(math.ceil(retry_after)))]
            return status, {"detail": _phrase(status)}, extra
        route = ROUTES.get(path.rstrip("/"))
        if route is None:
            return 404, {"detail": "Not Found"}, []
        key = request.headers.get("X-API-Key")
        with self._lock:
            client = None if key is None or key in self._revoked else self._api_keys.get(key)
        if client is None:
            return 401, {"detail": DETAIL_401}, []
        q = _Query(params)
        answer = route(q)
        if q.errors:
            return 422, {"detail": q.errors}, []
        with self._lock:
            body = answer(self._truth, client)
        return 200, body, []

    # -- public -----------------------------------------------------------------------------

    @property
    def rest_requests(self) -> tuple[RestRequest, ...]:
        """The latest 10 000 MM REST requests (``/api/v1/...``), oldest first: path, query,
        status answered, when. The ``X-API-Key`` header is never kept."""
        with self._lock:
            return tuple(self._rest_log)

    def rest_errors(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``count`` MM REST requests (any ``/api/v1`` path, with or without
        a valid key) with HTTP ``status`` (400 to 599) and ``{"detail": <its phrase>}``;
        with ``retry_after`` (seconds) also a ``Retry-After`` header, whole seconds rounded
        up. Replaces a count still pending (0 cancels it). ``TypeError`` / ``ValueError``
        name a bad argument.

        Args:
            status: The HTTP status to answer with, 400 to 599 (e.g. 429 or 503).
            count: How many requests get it (default 1; 0 cancels).
            retry_after: Seconds for a ``Retry-After`` header; ``None`` (the default) sends
                none.
        """
        self._faults.rest_errors(status, count, retry_after)

    def rest_latency(self, seconds: float) -> None:
        """Send every MM REST answer ``seconds`` late (0: at once again). The wait holds only
        that request's connection, and ends at once when the simulator closes.
        ``TypeError`` / ``ValueError`` unless ``seconds`` is a finite number >= 0.

        Args:
            seconds: The delay of every answer from now on (0 for none).
        """
        check_seconds("seconds", seconds)
        self._faults.set_rest_latency(seconds)
