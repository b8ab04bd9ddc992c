"""Record a live stream to a file and replay it later through the same protocol core.

A recording is JSON lines (gzip when the file name ends in ``.gz``)::

    {"mmws_recording": 1, "protocol": "mm", "started": "2026-11-21T10:30:00Z"}
    {"t": 1763721000.123, "connect": "wss://mmapi.55-tech.com/ws/subscribe"}
    {"t": 1763721000.125, "frame": "{\\"type\\": \\"subscribed\\", ...}"}

Only frames the server sent are written, never the commands we sent, so the subscribe
message with the API key is never on disk; URLs are written redacted, and any secret the
client knows is replaced by ``***`` should a server ever echo it.

:func:`replay` yields the events the live client would have delivered (keepalive events
hidden, malformed frames as ``MalformedFrame``), decoded by the same code.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from mmws._secret import redact
from mmws.errors import ConfigError, RemoteProtocolError
from mmws.lifecycle import Connected, MalformedFrame

__all__ = ["Recorder", "replay"]

_FORMAT = 1
_LATEST = 1e11  # epoch seconds (year 5138): a larger "t" is damage, not a time


def _parse_line(line: str) -> dict[str, Any] | None:
    """A recording line as a dict with a finite ``t`` and a ``frame`` string or a
    ``connect`` URL; ``None`` if it is anything else."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    t = record.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t < _LATEST:
        return None  # also NaN and infinities
    record["t"] = float(t)
    if isinstance(record.get("connect"), str) or isinstance(record.get("frame"), str):
        return record
    return None


def _open(path: str | Path, mode: str) -> IO[str]:
    if str(path).endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


class Recorder:
    """Writes frames as they arrive. Thread-safe; pass it as ``record=`` to a client, or
    give the client a path and it makes one."""

    def __init__(
        self, path: str | Path, protocol: str = "mm", secrets: Sequence[str] = ()
    ) -> None:
        if protocol not in ("mm", "feed"):
            raise ConfigError(f"protocol must be 'mm' or 'feed', got {protocol!r}")
        self.path = Path(path)
        self._secrets = tuple(s for s in secrets if s)
        self._lock = threading.Lock()
        self._file: IO[str] | None = _open(path, "w")
        started = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        self._line({"mmws_recording": _FORMAT, "protocol": protocol, "started": started})

    def add_secrets(self, *secrets: str) -> None:
        self._secrets = tuple({*self._secrets, *(s for s in secrets if s)})

    def connected(self, url: str) -> None:
        self._line({"t": time.time(), "connect": redact(url, *self._secrets)})

    def frame(self, data: bytes | str, when: float | None = None) -> None:
        text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        self._line({"t": time.time() if when is None else when, "frame": text})

    def close(self) -> None:
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


def replay(
    path: str | Path, speed: float | None = None, *, deliver_keepalive: bool = False
) -> Iterator[Any]:
    """Yield the events of a recording, decoded by the same protocol core as a live client.

    ``speed=None`` replays as fast as possible; ``speed=1.0`` keeps the recorded pacing,
    ``2.0`` twice as fast. Each recorded connection starts with a ``Connected`` event."""
    from mmws.feed.events import FeedPong
    from mmws.feed.protocol import FeedProtocol
    from mmws.mm.events import Heartbeat, Pong
    from mmws.mm.protocol import MMProtocol

    if speed is not None and not speed > 0:
        raise ConfigError(f"speed must be a positive number or None, got {speed!r}")
    with _open(path, "r") as lines:
        try:
            header = json.loads(next(lines, "{}") or "{}")
        except (ValueError, UnicodeDecodeError, OSError):
            header = {}
        if not isinstance(header, dict) or header.get("mmws_recording") != _FORMAT:
            raise ConfigError(f"{path} is not an mmws recording")
        kind = header.get("protocol")
        hidden: tuple[type, ...] = ()
        if not deliver_keepalive:
            hidden = (FeedPong,) if kind == "feed" else (Pong, Heartbeat)

        def new() -> Any:
            return FeedProtocol() if kind == "feed" else MMProtocol()

        protocol = new()
        first_t: float | None = None
        started = time.monotonic()
        attempt = 0
        numbered = enumerate(lines, start=2)
        while True:
            try:
                number, line = next(numbered)
            except StopIteration:
                return
            except (EOFError, OSError, UnicodeDecodeError) as exc:  # a cut-off .gz file
                raise ConfigError(f"{path}: the recording is cut off or damaged ({exc})") from None
            record = _parse_line(line)
            if record is None:
                raise ConfigError(f"{path}:{number}: not a recording line")
            t = record["t"]
            if speed is not None:
                first_t = t if first_t is None else first_t
                wait = (t - first_t) / speed - (time.monotonic() - started)
                if wait > 0:
                    time.sleep(wait)
            if "connect" in record:
                protocol = new()
                yield Connected(str(record["connect"]), attempt)
                attempt += 1
                continue
            try:
                protocol.receive_text(record["frame"].encode("utf-8", "surrogateescape"), t)
            except RemoteProtocolError as exc:
                events = [*protocol.events_received(), MalformedFrame(exc)]
            else:
                events = protocol.events_received()
            for event in events:
                if not (hidden and isinstance(event, hidden)):
                    yield event
