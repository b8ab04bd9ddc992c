"""Where a client's next connection goes: a fixed URL, or a token provider asked at every
connect and reconnect (and renewed on the keepalive thread before its token expires).

The provider's URL carries a token, so nothing here raises with it in a frame's locals:
each step returns its error instead (see the security guide)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mmws._secret import SecretSet
from mmws.errors import ConfigError, ConnectError, MmwsError

__all__ = ["UrlSource"]

log = logging.getLogger("mmws.client")


class UrlSource:
    """The URL of the next attempt; ``provider`` (optional) may also offer ``secrets()``,
    ``renew_due()`` (epoch seconds) and ``renew()``, as :class:`mmws.RestTokenProvider`
    does."""

    def __init__(self, url: str, provider: Callable[[], str] | None = None) -> None:
        self.url = url
        self.provider = provider
        self._not_before = 0.0  # monotonic: no renewal before this

    def secrets(self) -> tuple[str, ...]:
        found = getattr(self.provider, "secrets", None)
        return tuple(found()) if callable(found) else ()

    def refresh(self) -> MmwsError | None:
        """Ask the provider for a fresh URL (kept in :attr:`url`); return what went wrong.
        Without a provider the URL stays as it is."""
        if self.provider is None:
            return None
        try:
            url = self.provider()
        except MmwsError as exc:
            return exc.with_traceback(None)  # the provider's frames may hold the token
        except Exception as exc:
            # Its text may hold a token: only the type is kept. Retryable: a provider's
            # trouble (a network blip) may pass.
            return ConnectError(f"token_provider failed: {type(exc).__name__}")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            return ConfigError("token_provider must return a ws:// or wss:// URL")
        self.url = url
        return None

    def renew_due(self) -> float | None:
        """When (``time.monotonic()``) :meth:`renew` should next run, or ``None``."""
        due_at: Any = getattr(self.provider, "renew_due", None)
        if not callable(due_at):
            return None
        due = due_at()
        if isinstance(due, bool) or not isinstance(due, int | float):
            return None
        return max(self._not_before, time.monotonic() + (due - time.time()))

    def renew(self) -> str | None:
        """Renew the provider's token (on the keepalive thread); the error text, if any.
        At most one renewal a second, one every 5 s after a failure: never a busy loop."""
        renew: Any = getattr(self.provider, "renew", None)
        if not callable(renew):
            return None
        self._not_before = time.monotonic() + 1.0
        try:
            renew()
        except MmwsError as exc:
            # The next (re)connect asks the provider for a new token anyway.
            self._not_before = time.monotonic() + 5.0
            log.warning("feed token renewal failed: %s", exc)
            return str(exc)
        return None

    def merge_secrets(self, secrets: SecretSet) -> SecretSet:
        """``secrets`` with the provider's own added (its API token, the latest token)."""
        extra = self.secrets()
        return secrets.with_values(*extra) if extra else secrets
