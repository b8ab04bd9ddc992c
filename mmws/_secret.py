"""Secrets that never leave the object: API keys, feed tokens and URLs that carry tokens."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["Secret", "redact", "redact_url"]

# (?!\*\*\*): a value already redacted is left alone, so redacting twice changes nothing
_TOKEN_IN_URL: Final = re.compile(
    r"((?:^|[?&])(?:token|t|apiKey|api_key)=)(?!\*\*\*)[^&#\s]*", re.I
)


class Secret:
    """A string that shows only its last four characters in ``repr`` and ``str``.

    Call :meth:`reveal` at the one place the real value must go on the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def hint(self) -> str:
        """``'…abcd'``: enough to tell two keys apart in a log, not enough to use one."""
        return "…" + self._value[-4:] if len(self._value) >= 12 else "…"

    def __repr__(self) -> str:
        return f"Secret({self.hint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")


def redact_url(url: str) -> str:
    """Replace the value of every ``token=`` style query parameter by ``***``."""
    return _TOKEN_IN_URL.sub(r"\1***", url)


def redact(text: str, *secrets: str) -> str:
    """Replace each secret in ``text`` by ``***`` and redact tokens in URLs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return redact_url(text)
