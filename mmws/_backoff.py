"""Reconnect policy: full-jitter exponential backoff and the retry/fatal classification.

Pure: the random source is injectable and no clock is read, so tests need no sleeping.
"""

from __future__ import annotations

import random
from enum import Enum

from mmws.errors import (
    AuthenticationError,
    CertificateError,
    ConfigError,
    ConnectError,
    ConnectionLimitError,
    LocalProtocolError,
    MmwsError,
)

__all__ = ["Backoff", "Decision", "classify"]


class Decision(str, Enum):
    RETRY = "retry"  # network trouble, 1001/1006/1011, 3xx/429/503 at the handshake
    LIMIT = "limit"  # too many connections for the key: wait long
    FATAL = "fatal"  # a rejected key, a bad URL, an untrusted certificate: retrying cannot help


# HTTP statuses at the upgrade that a retry can fix; any other 4xx is fatal.
_RETRY_STATUSES = frozenset({408, 425, 429})


def classify(error: BaseException) -> Decision:
    """How the reconnect loop treats ``error``."""
    if isinstance(error, AuthenticationError | CertificateError | ConfigError | LocalProtocolError):
        return Decision.FATAL
    if isinstance(error, ConnectionLimitError):
        return Decision.LIMIT
    if isinstance(error, ConnectError) and error.status is not None:
        # A 3xx is never followed (the key must not go where the user did not send it),
        # but it may be a load balancer's passing state: retry with backoff, loudly.
        if error.status in _RETRY_STATUSES or error.status >= 500 or 300 <= error.status < 400:
            return Decision.RETRY
        return Decision.FATAL
    if isinstance(error, MmwsError):
        return Decision.RETRY
    return Decision.FATAL  # not ours: a bug, do not loop on it


class Backoff:
    """Full jitter: attempt ``n`` (from 1) waits ``uniform(0, min(cap, base * 2**(n-1)))``.

    A connection limit waits ``uniform(cap / 2, cap)``: the slot frees only when another
    connection of the same key closes, which a quick retry cannot speed up.
    """

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        if not base > 0:
            raise ConfigError(f"backoff_base must be > 0, got {base!r}")
        if not cap >= base:
            raise ConfigError(f"backoff_cap must be >= backoff_base, got {cap!r}")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng if rng is not None else random.Random()

    def next_delay(self, decision: Decision = Decision.RETRY) -> float:
        self.attempt += 1
        if decision is Decision.LIMIT:
            return self._rng.uniform(self.cap / 2, self.cap)
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt - 1, 62))
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
