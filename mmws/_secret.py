"""Secrets that never leave the object: API keys, feed tokens and URLs that carry tokens."""

from __future__ import annotations

import logging
import re
import weakref
from typing import Final

__all__ = [
    "Secret",
    "SecretSet",
    "SecretText",
    "SecretURL",
    "query_secrets",
    "redact",
    "redact_url",
    "register",
]

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


class SecretText(str):
    """A text to send that holds a secret (the subscribe frame with the API key).

    A ``str``, so the Sans-I/O cores still return plain texts, but ``repr()`` and ``str()``
    show ``SecretText(...)``: neither a log line nor a traceback's captured locals show it.
    :meth:`reveal` gives the plain ``str`` for the one call that sends it."""

    __slots__ = ()

    def reveal(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return "SecretText(...)"

    __str__ = __repr__

    def __reduce__(self) -> str:
        raise TypeError("a SecretText cannot be pickled")


class SecretURL(Secret):
    """A URL that may carry a token in its query: shown redacted."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"SecretURL({redact_url(self._value)!r})"

    __str__ = __repr__


def reveal(value: str | Secret) -> str:
    """The plain text of ``value``, for the one call that must put it on the wire."""
    if isinstance(value, Secret | SecretText):
        return value.reveal()
    return value


class SecretSet:
    """The secret values of one client (API key, feed tokens): used to scrub text, never
    shown. Immutable; :meth:`with_values` returns a new set, so readers need no lock."""

    __slots__ = ("__weakref__", "_bytes", "_values")

    def __init__(self, *values: str | Secret) -> None:
        plain: list[str] = []
        for value in values:
            text = reveal(value)
            if isinstance(text, str) and text and text not in plain:
                plain.append(text)
        self._values = tuple(plain)
        self._bytes = tuple(v.encode("utf-8", "surrogatepass") for v in plain)

    def with_values(self, *values: str | Secret) -> SecretSet:
        return SecretSet(*self._values, *values)

    def reveal(self) -> tuple[str, ...]:
        """The plain values, for code that must compare or hand them on (the recorder)."""
        return self._values

    def redact(self, text: str) -> str:
        """``text`` with each secret replaced by ``***`` and URL tokens redacted."""
        return redact(text, *self._values)

    def scrub(self, data: bytes | str) -> bytes | str:
        """A received frame with every secret replaced by ``***`` (a server that echoes
        the key in an error text must not put it into an event or an exception)."""
        if isinstance(data, bytes):
            for secret in self._bytes:
                if secret in data:
                    data = data.replace(secret, b"***")
            return data
        for value in self._values:
            if value in data:
                data = data.replace(value, "***")
        return data

    def found_in(self, text: str) -> bool:
        return any(value in text for value in self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<SecretSet of {len(self._values)}>"

    def __reduce__(self) -> str:
        raise TypeError("a SecretSet cannot be pickled")


def redact_url(url: str) -> str:
    """Replace the value of every ``token=`` style query parameter by ``***``."""
    return _TOKEN_IN_URL.sub(r"\1***", url)


def query_secrets(url: str) -> tuple[str, ...]:
    """Token values in the URL's query, so they are scrubbed from error text too."""
    redacted = redact_url(url)
    if redacted == url:
        return ()
    out = []
    for part in url.partition("?")[2].split("&"):
        name, _, value = part.partition("=")
        if value and name.lower() in ("token", "t", "apikey", "api_key"):
            out.append(value)
    return tuple(out)


def redact(text: str, *secrets: str) -> str:
    """Replace each secret in ``text`` by ``***`` and redact tokens in URLs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return redact_url(text)


# -- websocket-client's own trace ----------------------------------------------------------

_LIVE: weakref.WeakSet[SecretSet] = weakref.WeakSet()
_KEY_FIELD: Final = re.compile(r"""(["']api_?key["']\s*:\s*["'])[^"']*""", re.I)


def register(secrets: SecretSet) -> None:
    """Scrub these secrets from websocket-client's trace for as long as they are in use."""
    if secrets:
        _LIVE.add(secrets)


class _TraceFilter(logging.Filter):
    """Redacts what ``websocket.enableTrace(True)`` prints: the subscribe frame's key, a
    token in a URL, and any secret of a live client. The filter sits on websocket-client's
    logger itself, so it applies whatever handler the user attached."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record we cannot format is not ours to fix
            return True
        clean = redact_url(_KEY_FIELD.sub(r"\1***", text))
        for secrets in list(_LIVE):
            clean = secrets.redact(clean)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


_TRACE_FILTER: Final = _TraceFilter("websocket")
if not any(isinstance(f, _TraceFilter) for f in logging.getLogger("websocket").filters):
    logging.getLogger("websocket").addFilter(_TRACE_FILTER)
