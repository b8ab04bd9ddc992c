"""Feed tokens: the built-in provider that asks the REST API for a WebSocket URL.

The Soccer Football Info flow (protocols.md B.1): ``GET {base}/v1/ws/new/?t=<API token>``
returns the ``server`` URL (which carries ``?token=``) and ``expires_at`` (UTC,
``YYYY-MM-DD HH:MM:SS``). Tokens live about 25 minutes; ``GET {base}/v1/ws/renew/?t=...``
before expiry keeps them alive. Only the standard library's HTTP client is used.

Neither the API token nor the WebSocket token appears in a log line, repr or exception.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from mmws._secret import Secret, redact
from mmws.errors import AuthenticationError, ConfigError, ConnectError, MmwsError

__all__ = ["RestTokenProvider"]

log = logging.getLogger("mmws.feed.tokens")


class RestTokenProvider:
    """A ``token_provider`` for :class:`mmws.FeedClient` backed by ``/v1/ws/new``.

    Calling it returns a WebSocket URL with a token that is valid for at least
    ``renew_before`` more seconds, asking the REST API only when needed. :meth:`renew`
    extends the token; the client calls it on its keepalive thread when :meth:`renew_due`
    says so (``renew_before`` seconds before ``expires_at``; the provider suggests 5 minutes).

    Args:
        api_token: Your Soccer Football Info API token, sent as ``?t=``; kept redacted in
            reprs, logs and errors.
        base_url: The REST API's base URL (``http://`` or ``https://``). Default:
            ``https://api.soccerfootball.info``.
        renew_before: Seconds before the token expires at which a new one is fetched or the
            token renewed (default 300).
        timeout: Seconds each REST request may take (default 10).
        headers: Extra HTTP headers for the REST requests (for example a ``User-Agent``).

    Attributes:
        info: The last REST answer's other fields (``expires_at`` and whatever else the
            server sends), without the token and the URL; empty before the first token.
    """

    def __init__(
        self,
        api_token: str | Secret,
        base_url: str = "https://api.soccerfootball.info",
        *,
        renew_before: float = 300.0,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        self._api_token = api_token if isinstance(api_token, Secret) else Secret(api_token)
        self.base_url = base_url.rstrip("/")
        self.renew_before = renew_before
        self.timeout = timeout
        self._headers = dict(headers or {})
        self._lock = threading.Lock()
        self._url: str | None = None
        self._token: str | None = None
        self._expires_at: float | None = None  # epoch seconds
        self.info: Mapping[str, Any] = {}

    def __repr__(self) -> str:
        return f"<RestTokenProvider {self.base_url} api_token={self._api_token.hint!r}>"

    def secrets(self) -> tuple[str, ...]:
        """The API token and the current WebSocket token, for redaction: a client that uses
        this provider hides both in its reprs, logs, errors and recordings."""
        return tuple(s for s in (self._api_token.reveal(), self._token) if s)

    def __call__(self) -> str:
        """A WebSocket URL with a fresh enough token (asks ``/v1/ws/new`` when needed).

        Raises ``AuthenticationError`` when the REST API refuses the API token (HTTP 401 or
        403), ``ConnectError`` for any other failure."""
        with self._lock:
            if self._url is not None and not self._expiring(time.time()):
                return self._url
        self._fetch("new")
        assert self._url is not None
        return self._url

    def renew(self) -> None:
        """Extend the current token through ``/v1/ws/renew`` (``/v1/ws/new`` if none yet).

        Raises the same errors as calling the provider."""
        self._fetch("renew" if self._token else "new")

    def renew_due(self) -> float | None:
        """Epoch seconds at which :meth:`renew` should run, or ``None`` before the first
        token."""
        with self._lock:
            if self._expires_at is None:
                return None
            return self._expires_at - self.renew_before

    @property
    def expires_at(self) -> datetime | None:
        """When the current token expires (an aware UTC ``datetime``); ``None`` before the
        first token."""
        if self._expires_at is None:
            return None
        return datetime.fromtimestamp(self._expires_at, tz=timezone.utc)

    def _expiring(self, now: float) -> bool:
        return self._expires_at is None or now >= self._expires_at - self.renew_before

    def _fetch(self, what: str) -> None:
        # The request runs in a helper that returns its error: the helper's frame holds the
        # URL with the API token, and must not be in a traceback rendered with its locals.
        error = self._request(what)
        if error is not None:
            raise error

    def _request(self, what: str) -> MmwsError | None:
        query = urllib.parse.urlencode({"t": self._api_token.reveal()})
        url = f"{self.base_url}/v1/ws/{what}/?{query}"
        secrets = self.secrets()
        request = urllib.request.Request(url, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (401, 403):
                return AuthenticationError(
                    f"/v1/ws/{what} refused the API token (HTTP {exc.code})"
                )
            return ConnectError(f"/v1/ws/{what} failed with HTTP {exc.code}", exc.code)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return ConnectError(f"/v1/ws/{what} failed: {redact(str(exc), *secrets)}")
        try:
            result = body["result"][0]
            server = result["server"]
            token = result.get("token")
            expires = datetime.strptime(result["expires_at"], "%Y-%m-%d %H:%M:%S")
        except (KeyError, IndexError, TypeError, ValueError):
            return ConnectError(f"/v1/ws/{what} answered in an unexpected shape")
        with self._lock:
            if isinstance(server, str):
                self._url = server
            if isinstance(token, str):
                self._token = token
            self._expires_at = expires.replace(tzinfo=timezone.utc).timestamp()
            self.info = {k: v for k, v in result.items() if k not in ("token", "server")}
        log.info("feed token from /v1/ws/%s valid until %s", what, self.expires_at)
        return None
