"""Events of the Soccer Football Info feed.

Data events are :class:`FeedEvent` instances (or one of its typed subclasses); replies to our
commands (:class:`FeedSubscribed`, :class:`FeedUnsubscribed`, :class:`FeedError`),
:class:`FeedPong` and the lifecycle events are not.

The provider documents two envelopes (protocols.md B.3) and both decode to the same classes:

- shape 1 (MAIN, MAIN_REALTIME, STATS_REALTIME): ``{"type": "goal", "matchId": ...}``;
- shape 2 (STATS, ODDS): ``{"type": "event", "eventType": "stats_update", "scope": "match",
  "id": ...}``.

Stats travel as ``"teamA;teamB"`` strings and odds as ``"home;draw;away"`` or
``"over;under|line"`` strings; :func:`parse_pair` and :func:`parse_odds` type them, and the
``stats``/``odds`` properties apply them to a whole update (a value that does not parse stays
the raw string: typed where possible, raw where not).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias, Union

import attrs

from mmws._display import Shown
from mmws._frozen import EMPTY, FrozenMap
from mmws.lifecycle import (
    Closed,
    Connected,
    Disconnected,
    KeepaliveEvent,
    MalformedFrame,
    Overflow,
    Reconnecting,
    Stale,
    UnknownMessage,
)

__all__ = [
    "BatchUpdate",
    "FeedError",
    "FeedEvent",
    "FeedPong",
    "FeedStreamEvent",
    "FeedSubscribed",
    "FeedUnsubscribed",
    "MatchEvent",
    "Odds",
    "OddsRealtimeUpdate",
    "OddsUpdate",
    "StatPair",
    "StatsRealtimeUpdate",
    "StatsUpdate",
    "parse_odds",
    "parse_pair",
]

_EMPTY: Mapping[str, Any] = EMPTY


@attrs.frozen(slots=True)
class StatPair:
    """A ``"teamA;teamB"`` statistic, e.g. possession ``"55;45"`` -> ``StatPair(55, 45)``."""

    team_a: float
    team_b: float


@attrs.frozen(slots=True)
class Odds:
    """An odds string: ``"2.10;3.40;3.50"`` (1x2: home, draw, away) or ``"1.90;1.90|2.5"``
    (a line market: two prices and the line or handicap). ``line`` is ``None`` for 1x2."""

    prices: tuple[float, ...]
    line: float | None = None


def _number(part: str, text: str) -> float:
    try:
        return float(part)
    except ValueError:
        raise ValueError(f"not a number: {part!r} in {text!r}") from None


def parse_pair(text: str) -> StatPair:
    """``"55;45"`` -> ``StatPair(55.0, 45.0)``. ``ValueError`` names the bad text."""
    if not isinstance(text, str):
        raise ValueError(f"expected a 'a;b' string, got {type(text).__name__}")
    parts = text.split(";")
    if len(parts) != 2:
        raise ValueError(f"expected two values separated by ';', got {text!r}")
    return StatPair(_number(parts[0], text), _number(parts[1], text))


def parse_odds(text: str) -> Odds:
    """``"1.90;1.90|2.5"`` -> ``Odds((1.9, 1.9), 2.5)``; ``"2.10;3.40;3.50"`` ->
    ``Odds((2.1, 3.4, 3.5))``. Signed deltas (``"-0.05;+0.10"``) parse too."""
    if not isinstance(text, str):
        raise ValueError(f"expected an odds string, got {type(text).__name__}")
    prices_text, bar, line_text = text.partition("|")
    if not prices_text or (bar and not line_text):
        raise ValueError(f"not an odds string: {text!r}")
    prices = tuple(_number(p, text) for p in prices_text.split(";"))
    line = _number(line_text, text) if bar else None
    return Odds(prices, line)


def _parse_all(data: Mapping[str, Any], parse: Any, skip: frozenset[str]) -> Mapping[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in skip or not isinstance(value, str):
            out[key] = value
            continue
        try:
            out[key] = parse(value)
        except ValueError:
            out[key] = value
    return FrozenMap(out)


def _parse_changes(data: Mapping[str, Any], field: str, name: str, parse: Any) -> Mapping[str, Any]:
    """``data[field]`` is a list of ``{name: ..., "value": ...}``: a mapping of name to the
    parsed value (the raw string where it does not parse)."""
    changed = data.get(field)
    if not isinstance(changed, tuple | list):  # decoded JSON arrays are tuples
        return _EMPTY
    values = {
        c[name]: c.get("value")
        for c in changed
        if isinstance(c, Mapping) and isinstance(c.get(name), str)
    }
    return _parse_all(values, parse, frozenset())


_STATS_NOT_PAIRS = frozenset({"timer", "extraTimer", "status"})


@attrs.frozen(slots=True)
class FeedEvent(Shown):
    """A data event of the feed: anything that is not a reply, a pong or a lifecycle event.

    ``match_id`` and ``league_id`` are opaque strings; ``ts`` is the server's timestamp as
    an aware UTC ``datetime`` (``None`` if missing or unreadable: the raw frame keeps it);
    ``data`` is the payload with the wire's keys; ``raw`` the whole frame.
    """

    channel: str
    event_type: str
    match_id: str | None = None
    league_id: str | None = None
    ts: datetime | None = None
    data: Mapping[str, Any] = _EMPTY
    scope: str | None = None
    event_id: str | None = None
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False)
    received_at: float = attrs.field(default=0.0, eq=False, repr=False)


@attrs.frozen(slots=True)
class MatchEvent(FeedEvent):
    """MAIN / MAIN_REALTIME: match_start, goal, halftime, second_half_start, match_end."""


@attrs.frozen(slots=True)
class StatsUpdate(FeedEvent):
    """STATS ``stats_update``: ``stats`` gives the ``"a;b"`` values as :class:`StatPair`."""

    @property
    def stats(self) -> Mapping[str, Any]:
        return _parse_all(self.data, parse_pair, _STATS_NOT_PAIRS)


@attrs.frozen(slots=True)
class OddsUpdate(FeedEvent):
    """ODDS ``odds_update``: ``odds`` gives every market as :class:`Odds`."""

    @property
    def odds(self) -> Mapping[str, Any]:
        return _parse_all(self.data, parse_odds, frozenset())


@attrs.frozen(slots=True)
class StatsRealtimeUpdate(FeedEvent):
    """STATS_REALTIME ``stats_update_realtime``: ``data["changedStats"]`` lists changes."""

    @property
    def stats(self) -> Mapping[str, Any]:
        return _parse_changes(self.data, "changedStats", "stat", parse_pair)


@attrs.frozen(slots=True)
class OddsRealtimeUpdate(FeedEvent):
    """ODDS_REALTIME ``odds_update_realtime`` [ASSUMPTION: ``data["changedOdds"]``]."""

    @property
    def odds(self) -> Mapping[str, Any]:
        return _parse_changes(self.data, "changedOdds", "market", parse_odds)


@attrs.frozen(slots=True)
class BatchUpdate(FeedEvent):
    """``batch_update``: the periodic digest sent to ``all`` scopes (layout undocumented)."""


@attrs.frozen(slots=True)
class FeedSubscribed(Shown):
    """The server confirmed a subscription. ``topic`` is ``CHANNEL:scope[:id]``."""

    channel: str
    scope: str
    topic: str
    message: str = ""


@attrs.frozen(slots=True)
class FeedUnsubscribed(Shown):
    """The server confirmed an unsubscribe."""

    channel: str
    scope: str
    topic: str
    message: str = ""


@attrs.frozen(slots=True)
class FeedError(Shown):
    """An error frame that answered no command of ours (or a resubscription that failed
    after a reconnect). ``code`` is the server's code, kept even when unknown."""

    code: str | None
    message: str
    topic: str | None = None
    error: Exception | None = attrs.field(default=None, eq=False)


@attrs.frozen(slots=True)
class FeedPong(KeepaliveEvent):
    """The answer to a ping: ``server_ts`` is the server's clock in ms; ``rtt`` in seconds."""

    server_ts: int | None
    rtt: float | None


FeedStreamEvent: TypeAlias = Union[  # noqa: UP007 - a runtime alias, readable in the docs
    FeedEvent,
    MatchEvent,
    StatsUpdate,
    OddsUpdate,
    StatsRealtimeUpdate,
    OddsRealtimeUpdate,
    BatchUpdate,
    FeedSubscribed,
    FeedUnsubscribed,
    FeedError,
    FeedPong,
    UnknownMessage,
    Connected,
    Disconnected,
    Reconnecting,
    Stale,
    Overflow,
    MalformedFrame,
    Closed,
]
"""Every event ``FeedClient`` can deliver (``FeedEvent`` keeps meaning a data event)."""
