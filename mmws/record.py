"""Record a live stream to a file and replay it later through the same protocol core.

A recording is JSON lines (gzip when the file name ends in ``.gz``), written by
:class:`Recorder` (see :mod:`mmws._recorder` for the format); only frames the server sent
are written, so the subscribe message with the API key is never on disk.

:func:`replay` yields the events the live client would have delivered (keepalive events
hidden, malformed frames as ``MalformedFrame``), decoded by the same code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmws._recorder import FORMAT, Recorder, open_recording
from mmws.errors import ConfigError, RemoteProtocolError
from mmws.feed.protocol import FeedProtocol
from mmws.lifecycle import Connected, KeepaliveEvent, MalformedFrame
from mmws.mm.protocol import MMProtocol

__all__ = ["Recorder", "replay"]

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


def replay(
    path: str | Path, speed: float | None = None, *, deliver_keepalive: bool = False
) -> Iterator[Any]:
    """Yield the events of a recording, decoded by the same protocol core as a live client.

    ``speed=None`` replays as fast as possible; ``speed=1.0`` keeps the recorded pacing,
    ``2.0`` twice as fast. Each recorded connection starts with a ``Connected`` event.

    Args:
        path: The recording, as written by ``record=`` or a :class:`Recorder` (``.gz``
            files are read as gzip).
        speed: ``None`` (the default) for as fast as possible, else a factor of the recorded
            pacing: 1.0 in real time, 2.0 twice as fast.
        deliver_keepalive: Also yield the ``Pong``/``Heartbeat``/``FeedPong`` events, as a
            client with ``deliver_keepalive=True`` would (default ``False``).

    Raises:
        ConfigError: The file is not an mmws recording, or a line of it is damaged.
    """
    if speed is not None and not speed > 0:
        raise ConfigError(f"speed must be a positive number or None, got {speed!r}")
    with open_recording(path, "r") as lines:
        try:
            header = json.loads(next(lines, "{}") or "{}")
        except (ValueError, UnicodeDecodeError, OSError):
            header = {}
        if not isinstance(header, dict) or header.get("mmws_recording") != FORMAT:
            raise ConfigError(f"{path} is not an mmws recording")
        kind = header.get("protocol")

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
                if deliver_keepalive or not isinstance(event, KeepaliveEvent):
                    yield event
