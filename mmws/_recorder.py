"""Writes a recording: the frames a server sent, as JSON lines (gzip for ``.gz``).

The format::

    {"mmws_recording": 1, "protocol": "mm", "started": "2026-11-21T10:30:00Z"}
    {"t": 1763721000.123, "connect": "wss://mmapi.55-tech.com/ws/subscribe"}
    {"t": 1763721000.125, "frame": "{\\"type\\": \\"subscribed\\", ...}"}

Only frames the server sent are written, never the commands we sent, so the subscribe
message with the API key is never on disk; URLs are written redacted, and any secret the
client knows is replaced by ``***`` should a server ever echo it.

This module sits below the clients, which write through it; :mod:`mmws.record` (above
them) adds :func:`~mmws.record.replay`.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from mmws._secret import redact
from mmws.errors import ConfigError

__all__ = ["FORMAT", "Recorder", "open_recording"]

FORMAT = 1


def open_recording(path: str | Path, mode: str) -> IO[str]:
    if str(path).endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


class Recorder:
    """Writes frames as they arrive. Thread-safe; pass it as ``record=`` to a client, or
    give the client a path and it makes one.

    Opening it creates (or empties) the file and writes the header line; use it as a
    context manager, or call :meth:`close`.

    Args:
        path: The file to write; gzip when the name ends in ``.gz``.
        protocol: ``"mm"`` (the default) or ``"feed"``: the protocol core :func:`replay`
            decodes the frames with.
        secrets: Texts to replace by ``***`` wherever they appear in a frame (a client adds
            its own key or token).

    Attributes:
        path: The file being written, as a ``Path``.
    """

    def __init__(
        self, path: str | Path, protocol: str = "mm", secrets: Sequence[str] = ()
    ) -> None:
        if protocol not in ("mm", "feed"):
            raise ConfigError(f"protocol must be 'mm' or 'feed', got {protocol!r}")
        self.path = Path(path)
        self._secrets = tuple(s for s in secrets if s)
        self._lock = threading.Lock()
        self._file: IO[str] | None = open_recording(path, "w")
        started = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        self._line({"mmws_recording": FORMAT, "protocol": protocol, "started": started})

    def add_secrets(self, *secrets: str) -> None:
        """Also replace these texts by ``***`` in every frame written from now on."""
        self._secrets = tuple({*self._secrets, *(s for s in secrets if s)})

    def connected(self, url: str) -> None:
        """Write that a connection opened; :func:`replay` yields a ``Connected`` for it.

        Args:
            url: The URL connected to; written with the secrets redacted.
        """
        self._line({"t": time.time(), "connect": redact(url, *self._secrets)})

    def frame(self, data: bytes | str, when: float | None = None) -> None:
        """Write one frame the server sent, with the secrets replaced by ``***``.

        Args:
            data: The frame, as ``str`` or UTF-8 ``bytes``.
            when: When it arrived, in epoch seconds (``time.time()``); ``None`` for now.
        """
        text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        self._line({"t": time.time() if when is None else when, "frame": text})

    def close(self) -> None:
        """Flush and close the file. Idempotent; a client closes a recorder it made."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, obj: dict[str, Any]) -> None:
        # ASCII-only JSON: a frame with invalid UTF-8 survives as escaped surrogates.
        line = json.dumps(obj) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
