"""What a server session asks the simulator to do (both endpoints), and how every frame is
written. The sessions (:mod:`mmws.sim.mm`, :mod:`mmws.sim.feed`) decide; the server's
threads carry the actions out."""

from __future__ import annotations

import json
from typing import Any

import attrs

__all__ = ["Action", "Close", "Pong", "Send", "encode"]


def encode(obj: Any) -> str:
    """Compact JSON, the way every simulator frame is written."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@attrs.frozen
class Send:
    """Send ``text`` to this connection (after what is already queued)."""

    text: str


@attrs.frozen
class Pong:
    """Answer a ping; the server adds the pong delay and, for the feed, ``ts``."""


@attrs.frozen
class Close:
    """Close this connection with ``code`` and ``reason`` after what is already queued."""

    code: int
    reason: str


Action = Send | Pong | Close
