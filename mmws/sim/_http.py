"""HTTP routing of the simulator's one port: the WebSocket upgrades, 426 and 404 answers,
refused handshakes, the feed token REST routes and the MM REST API (:mod:`mmws.sim._rest`)."""

from __future__ import annotations

import email.utils
import http
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection

from mmws.sim._conn import API_PREFIX, DETAIL_426, FEED_PATHS, MM_PATH
from mmws.sim._state import SimState
from mmws.sim.actions import encode
from mmws.sim.feed import (
    rest_error,
)

logger = logging.getLogger("mmws.sim")

__all__ = ["HttpRoutes"]


def _json_response(status: int, body: Any, extra: Iterable[tuple[str, str]] = ()) -> Response:
    data = encode(body).encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *extra,
        ]
    )
    return Response(status, _phrase(status), headers, data)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _url_host(host: str) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host



class HttpRoutes(SimState):
    """The request handling part of :class:`~mmws.sim.server.Simulator`."""

    def _process_request(
        self, ws: ServerConnection, request: Request
    ) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        query = parse_qs(url.query)
        upgrade = (request.headers.get("Upgrade") or "").lower()
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            status, body, extra = self._api(request, path, url.query)
            return self._http_answer(_json_response(status, body, extra))
        if path.rstrip("/") in ("/v1/ws/new", "/v1/ws/renew"):
            return self._http_answer(self._rest(path.rstrip("/"), query))
        if path == MM_PATH:
            if "websocket" not in upgrade:
                return self._http_answer(_json_response(426, {"detail": DETAIL_426}))
            rejected = self._maybe_reject()
            if rejected is None:
                self._accept(ws, request, "mm", "")
            return rejected
        if path in FEED_PATHS:
            if "websocket" not in upgrade:
                detail = "This endpoint requires a WebSocket connection"
                return self._http_answer(_json_response(426, {"detail": detail}))
            rejected = self._maybe_reject()
            if rejected is not None:
                return rejected
            token = (query.get("token") or [""])[0]
            if not token:
                return self._refuse(_json_response(401, rest_error(401, "Missing token")))
            with self._lock:
                issued = self._tokens.check(token, time.monotonic())
                known = self._tokens.known(token)
            if issued is None:
                text = "Token expired" if known else "Invalid token"
                return self._refuse(_json_response(403, rest_error(403, text)))
            self._accept(ws, request, "feed", token, issued.plan)
            return None
        return self._http_answer(_json_response(404, {"detail": "Not Found"}))

    def _http_answer(self, response: Response) -> Response:
        with self._lock:
            self._http += 1
        return response

    def _refuse(self, response: Response) -> Response:
        with self._changed:
            self._rejected += 1
            self._changed.notify_all()
        return response

    def _maybe_reject(self) -> Response | None:
        status = self._faults.reject_status
        if status is None:
            return None
        extra = [("Retry-After", "1")] if status in (429, 503) else []
        return self._refuse(_json_response(status, {"detail": _phrase(status)}, extra))

    def _rest(self, route: str, query: Mapping[str, list[str]]) -> Response:
        api_token = (query.get("t") or [""])[0]
        if api_token not in self._feed_api_tokens:
            return _json_response(401, rest_error(401, "Invalid API token"))
        now, wall = time.monotonic(), time.time()
        with self._lock:
            if route == "/v1/ws/new":
                result = self._tokens.issue(api_token, now, wall)
                assert result is not None
                issued, is_new = result
                self._note_secret(issued.token)
            else:
                renewed = self._tokens.renew(api_token, now, wall)
                if renewed is None:
                    return _json_response(
                        404, rest_error(404, "No active token; call /v1/ws/new first")
                    )
                issued, is_new = renewed, False
        self._timer.call_later(self._tokens.ttl, self._expire_tokens)
        limits = {
            "max_connections": self.feed_max_connections,
            "max_subscribe_per_connection": self.feed_max_subscribe_per_connection,
        }
        server = f"{self._ws_scheme}://{_url_host(self.host)}:{self.port}"
        return _json_response(200, self._tokens.result(issued, is_new, server, limits))

