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
    """A ``"teamA;teamB"`` statistic, e.g. possession ``"55;45"`` -> ``StatPair(55, 45)``.

    Attributes:
        team_a: The first team's value (before the ``;``).
        team_b: The second team's value.
    """

    team_a: float
    team_b: float


@attrs.frozen(slots=True)
class Odds:
    """An odds string: ``"2.10;3.40;3.50"`` (1x2: home, draw, away) or ``"1.90;1.90|2.5"``
    (a line market: two prices and the line or handicap). ``line`` is ``None`` for 1x2.

    Attributes:
        prices: The decimal prices in the wire's order: home, draw, away for 1x2; the two
            sides (e.g. over, under) for a line market.
        line: The line or handicap (after the ``|``); ``None`` for 1x2.
    """

    prices: tuple[float, ...]
    line: float | None = None


def _number(part: str, text: str) -> float:
    try:
        return float(part)
    except ValueError:
        raise ValueError(f"not a number: {part!r} in {text!r}") from None


def parse_pair(text: str) -> StatPair:
    """``"55;45"`` -> ``StatPair(55.0, 45.0)``. ``ValueError`` names the bad text.

    Args:
        text: A ``"teamA;teamB"`` string of two numbers.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a 'a;b' string, got {type(text).__name__}")
    parts = text.split(";")
    if len(parts) != 2:
        raise ValueError(f"expected two values separated by ';', got {text!r}")
    return StatPair(_number(parts[0], text), _number(parts[1], text))


def parse_odds(text: str) -> Odds:
    """``"1.90;1.90|2.5"`` -> ``Odds((1.9, 1.9), 2.5)``; ``"2.10;3.40;3.50"`` ->
    ``Odds((2.1, 3.4, 3.5))``. Signed deltas (``"-0.05;+0.10"``) parse too.

    Args:
        text: An odds string: prices separated by ``;``, then optionally ``|`` and the line.

    Raises:
        ValueError: The text is not an odds string; the message names it.
    """
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

    Attributes:
        channel: The channel it came on: ``MAIN``, ``STATS``, ``ODDS``, ``STATS_REALTIME``,
            ``ODDS_REALTIME`` or ``MAIN_REALTIME``.
        event_type: What happened, e.g. ``"goal"`` or ``"stats_update"``: the frame's
            ``eventType``, or its ``type`` in the envelope without one.
        match_id: The match's id (an opaque string); ``None`` when the frame names none.
        league_id: The league's id (an opaque string); ``None`` when the frame names none.
        ts: The server's timestamp (an aware UTC ``datetime``); ``None`` if missing or
            unreadable (``raw`` keeps it).
        data: The payload, read-only, with the wire's keys; empty if the frame has none.
        scope: The frame's ``scope`` (``"match"``, ``"league"`` or ``"all"``); ``None`` for
            the envelope without one.
        event_id: The server's ``eventId``, if the frame has one.
        raw: The whole frame, read-only, with the wire's keys. Not in the repr.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
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
    """MAIN / MAIN_REALTIME: match_start, goal, halftime, second_half_start, match_end.

    Attributes:
        channel: ``MAIN`` or ``MAIN_REALTIME``.
        event_type: ``"match_start"``, ``"goal"``, ``"halftime"``,
            ``"second_half_start"`` or ``"match_end"``.
        match_id: The match's id (an opaque string); ``None`` when the frame names none.
        league_id: The league's id (an opaque string); ``None`` when the frame names none.
        ts: The server's timestamp (an aware UTC ``datetime``); ``None`` if missing or
            unreadable (``raw`` keeps it).
        data: The payload, read-only, with the wire's keys; empty if the frame has none.
        scope: The frame's ``scope`` (``"match"``, ``"league"`` or ``"all"``); ``None`` for
            the envelope without one.
        event_id: The server's ``eventId``, if the frame has one.
        raw: The whole frame, read-only, with the wire's keys. Not in the repr.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
    """


@attrs.frozen(slots=True)
class StatsUpdate(FeedEvent):
    """STATS ``stats_update``: ``stats`` gives the ``"a;b"`` values as :class:`StatPair`.

    Attributes:
        channel: ``STATS``.
        event_type: ``"stats_update"``.
        match_id: The match's id (an opaque string); ``None`` when the frame names none.
        league_id: The league's id (an opaque string); ``None`` when the frame names none.
        ts: The server's timestamp (an aware UTC ``datetime``); ``None`` if missing or
            unreadable (``raw`` keeps it).
        data: The statistics, by name, as the wire's ``"a;b"`` strings (see
            :attr:`stats`).
        scope: The frame's ``scope`` (``"match"``, ``"league"`` or ``"all"``); ``None`` for
            the envelope without one.
        event_id: The server's ``eventId``, if the frame has one.
        raw: The whole frame, read-only, with the wire's keys. Not in the repr.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
    """

    @property
    def stats(self) -> Mapping[str, Any]:
        """``data`` with each ``"a;b"`` value as a :class:`StatPair` (``timer``,
        ``extraTimer``, ``status`` and any value that does not parse stay as they are)."""
        return _parse_all(self.data, parse_pair, _STATS_NOT_PAIRS)


@attrs.frozen(slots=True)
class OddsUpdate(FeedEvent):
    """ODDS ``odds_update``: ``odds`` gives every market as :class:`Odds`.

    Attributes:
        channel: ``ODDS``.
        event_type: ``"odds_update"``.
        match_id: The match's id (an opaque string); ``None`` when the frame names none.
        league_id: The league's id (an opaque string); ``None`` when the frame names none.
        ts: The server's timestamp (an aware UTC ``datetime``); ``None`` if missing or
            unreadable (``raw`` keeps it).
        data: The markets, by name, as the wire's odds strings (see :attr:`odds`).
        scope: The frame's ``scope`` (``"match"``, ``"league"`` or ``"all"``); ``None`` for
            the envelope without one.
        event_id: The server's ``eventId``, if the frame has one.
        raw: The whole frame, read-only, with the wire's keys. Not in the repr.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
    """

    @property
    def odds(self) -> Mapping[str, Any]:
        """``data`` with each market as :class:`Odds` (a value that does not parse stays the
        raw string)."""
        return _parse_all(self.data, parse_odds, frozenset())


@attrs.frozen(slots=True)
class StatsRealtimeUpdate(FeedEvent):
    """STATS_REALTIME ``stats_update_realtime``: ``data["changedStats"]`` lists changes.

    Attributes:
        channel: ``STATS_REALTIME``.
        event_type: ``"stats_update_realtime"``.
        match_id: The match's id (an opaque string); ``None`` when the frame names none.
        league_id: The league's id (an opaque string); ``None`` when the frame names none.
        ts: The server's timestamp (an aware UTC ``datetime``); ``None`` if missing or
            unreadable (``raw`` keeps it).
        data: The payload with the wire's keys; ``data["changedStats"]`` lists the
            changed statistics (see :attr:`stats`).
        scope: The frame's ``scope`` (``"match"``, ``"league"`` or ``"all"``); ``None`` for
            the envelope without one.
        event_id: The server's ``eventId``, if the frame has one.
        raw: The whole frame, read-only, with the wire's keys. Not in the repr.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
    """

    @property
    def stats(self) -> Mapping[str, Any]:
        """The changed statistics, by name, each as a :class:`StatPair` (or the raw string
        when it does not parse)."""
        return _parse_changes(self.data, "changedStats", "stat", parse_pair)


@attrs.frozen(slots=True)
class OddsRealtimeUpdate(FeedEvent):
    """ODDS_REALTIME ``odds_update_realtime`` [ASSUMPTION: ``data["changedOdds"]``].

    Attributes:
        channel: ``ODDS_REALTIME``.
        event_type: ``"odds_update_realtime"``.
        match_id: The match's id (an opaque string); ``None`` when the frame names none.
        league_id: The league's id (an opaque string); ``None`` when the frame names none.
        ts: The server's timestamp (an aware UTC ``datetime``); ``None`` if missing or
            unreadable (``raw`` keeps it).
        data: The payload with the wire's keys; ``data["changedOdds"]`` lists the
            changed markets (see :attr:`odds`).
        scope: The frame's ``scope`` (``"match"``, ``"league"`` or ``"all"``); ``None`` for
            the envelope without one.
        event_id: The server's ``eventId``, if the frame has one.
        raw: The whole frame, read-only, with the wire's keys. Not in the repr.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
    """

    @property
    def odds(self) -> Mapping[str, Any]:
        """The changed markets, by name, each as :class:`Odds` (or the raw string when it
        does not parse)."""
        return _parse_changes(self.data, "changedOdds", "market", parse_odds)


@attrs.frozen(slots=True)
class BatchUpdate(FeedEvent):
    """``batch_update``: the periodic digest sent to ``all`` scopes (layout undocumented).

    Attributes:
        channel: ``STATS`` or ``ODDS`` (the channels that send it, every 30 s).
        event_type: ``"batch_update"``.
        match_id: The match's id (an opaque string); ``None`` when the frame names none.
        league_id: The league's id (an opaque string); ``None`` when the frame names none.
        ts: The server's timestamp (an aware UTC ``datetime``); ``None`` if missing or
            unreadable (``raw`` keeps it).
        data: The digest, read-only, with the wire's keys (its layout is not
            documented).
        scope: The frame's ``scope`` (``"match"``, ``"league"`` or ``"all"``); ``None`` for
            the envelope without one.
        event_id: The server's ``eventId``, if the frame has one.
        raw: The whole frame, read-only, with the wire's keys. Not in the repr.
        received_at: When the frame arrived, in seconds of ``time.monotonic()``; 0.0 for an
            event built in code. Not part of equality.
    """


@attrs.frozen(slots=True)
class FeedSubscribed(Shown):
    """The server confirmed a subscription. ``topic`` is ``CHANNEL:scope[:id]``.

    Attributes:
        channel: The channel, e.g. ``"ODDS"``.
        scope: The scope, written as in :meth:`~mmws.FeedClient.subscribe`, e.g.
            ``"match:12345"`` or ``"all"``.
        topic: ``channel:scope``, e.g. ``"ODDS:match:12345"``.
        message: The server's text, if any.
    """

    channel: str
    scope: str
    topic: str
    message: str = ""


@attrs.frozen(slots=True)
class FeedUnsubscribed(Shown):
    """The server confirmed an unsubscribe.

    Attributes:
        channel: The channel, e.g. ``"ODDS"``.
        scope: The scope, written as in :meth:`~mmws.FeedClient.subscribe`, e.g.
            ``"match:12345"`` or ``"all"``.
        topic: ``channel:scope``, e.g. ``"ODDS:match:12345"``.
        message: The server's text, if any.
    """

    channel: str
    scope: str
    topic: str
    message: str = ""


@attrs.frozen(slots=True)
class FeedError(Shown):
    """An error frame that answered no command of ours (or a resubscription that failed
    after a reconnect). ``code`` is the server's code, kept even when unknown.

    Attributes:
        code: The server's error code (e.g. ``"CHANNEL_NOT_ALLOWED"``); ``None`` if it sent
            none.
        message: The server's error text.
        topic: The topic it concerns (``CHANNEL:scope``), when known.
        error: The matching ``SubscriptionError``; not part of equality.
    """

    code: str | None
    message: str
    topic: str | None = None
    error: Exception | None = attrs.field(default=None, eq=False)


@attrs.frozen(slots=True)
class FeedPong(KeepaliveEvent):
    """The answer to a ping: ``server_ts`` is the server's clock in ms; ``rtt`` in seconds.

    Attributes:
        server_ts: The server's clock when it answered, in milliseconds since the epoch;
            ``None`` if the pong carried no usable time.
        rtt: The round trip of the ping, in seconds; ``None`` when no ping was outstanding.
    """

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
