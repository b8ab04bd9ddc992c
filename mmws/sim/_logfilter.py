"""Keeps every secret of every live simulator out of the logs (house rule 9)."""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from websockets.frames import Frame, Opcode

from mmws._secret import redact_url

if TYPE_CHECKING:
    from mmws.sim._state import SimState

logger = logging.getLogger("mmws.sim")

__all__ = ["MIN_SECRET", "WS_LOGGER", "register"]


class _RedactSecrets(logging.Filter):
    """websockets logs request lines, headers and frames at DEBUG: hide ``token=``/``t=``
    values, the value of every ``apiKey``/``api_key`` field and ``X-API-Key`` header and,
    verbatim, every secret a live simulator knows (its API keys, feed API tokens and issued
    feed tokens), so no secret reaches a log (house rule 9).

    A frame is redacted from its full payload before websockets shortens it for the log
    (first and last characters only), so a key at the end of a long frame is hidden too. A
    fragment of a message (continuation, or not final) may hold part of a secret that no
    pattern recognises: its whole payload is masked."""

    _KEY = re.compile(r"""(["']api_?key["']\s*:\s*["'])([^"']*)""", re.I)
    _HEADER = re.compile(r"(x-api-key\s*:\s*)(\S*)", re.I)  # a REST request's header line

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _log_secrets()
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, Frame) for a in args):
            record.args = tuple(
                self._frame(a, secrets) if isinstance(a, Frame) else a for a in args
            )
        text = record.getMessage()
        clean = redact_url(self.mask(text, secrets))
        if clean != text:
            record.msg, record.args = clean, ()
        return True

    @classmethod
    def mask(cls, text: str, secrets: Iterable[str]) -> str:
        """``text`` with every ``apiKey`` value and every secret replaced by as many ``*``."""
        text = cls._KEY.sub(lambda m: m.group(1) + "*" * len(m.group(2)), text)
        text = cls._HEADER.sub(lambda m: m.group(1) + "*" * len(m.group(2)), text)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, "*" * len(secret))
        return text

    @classmethod
    def _frame(cls, frame: Frame, secrets: Iterable[str]) -> Frame:
        if frame.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            return frame
        data = bytes(frame.data)
        if frame.opcode is Opcode.CONT or not frame.fin:
            return dataclasses.replace(frame, data=b"*" * len(data))
        text = data.decode("utf-8", "surrogateescape")
        clean = redact_url(cls.mask(text, secrets))
        if clean == text:
            return frame
        return dataclasses.replace(frame, data=clean.encode("utf-8", "surrogateescape"))


_SIMULATORS: Final[weakref.WeakSet[SimState]] = weakref.WeakSet()
_SIMULATORS_LOCK: Final = threading.Lock()
MIN_SECRET: Final = 4  # shorter "secrets" (test values) would mask ordinary words


def _log_secrets() -> list[str]:
    """Every secret of every live simulator, longest first (for the log filter)."""
    with _SIMULATORS_LOCK:
        sims = list(_SIMULATORS)
    found: set[str] = set()
    for sim in sims:
        found.update(sim._secrets)
    return sorted(found, key=len, reverse=True)


WS_LOGGER: Final = logging.getLogger("mmws.sim.websockets")
WS_LOGGER.addFilter(_RedactSecrets())


def register(sim: SimState) -> None:
    """Hide ``sim``'s secrets (its ``_secrets``) from the logs for as long as it lives."""
    with _SIMULATORS_LOCK:
        _SIMULATORS.add(sim)
