"""One event, one line: the formatting the ``mmws`` command prints, as plain functions.

:func:`format_event` gives a readable line (optionally coloured), :func:`event_to_json` a
line of JSON. Each event type has one entry in a dispatch table (a subclass uses its
nearest base's), so a new event type is one new entry, not another branch of a ladder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

import attrs

from mmws._display import register
from mmws.feed.events import (
    BatchUpdate,
    FeedError,
    FeedEvent,
    FeedPong,
    FeedSubscribed,
    FeedUnsubscribed,
    MatchEvent,
    Odds,
    OddsRealtimeUpdate,
    OddsUpdate,
    StatPair,
    StatsRealtimeUpdate,
    StatsUpdate,
)
from mmws.lifecycle import (
    Closed,
    Connected,
    Disconnected,
    MalformedFrame,
    Overflow,
    Reconnecting,
    Stale,
    UnknownMessage,
)
from mmws.mm.events import (
    AccountEvent,
    BetEvent,
    Broadcast,
    EmergencyEvent,
    GapDetected,
    Heartbeat,
    OrderEvent,
    Pong,
    Resynced,
    ResyncFailed,
    ScoreEvent,
    ServerErrorEvent,
    Subscribed,
    Unsubscribed,
)

__all__ = ["event_to_json", "format_event", "to_dict", "to_records"]

_RESET = "\033[0m"
_DIM = "2"
_LIFECYCLE = "33"  # yellow
_ALERT = "1;31"  # bold red
_CHANNEL_COLORS: Mapping[str, str] = {
    "orders": "36",
    "bets": "35",
    "accounts": "34",
    "scores": "32",
    "emergency": "1;31",
}
_FEED_COLOR = "33"
_BLANK_TIME = " " * 12


def _paint(text: str, sgr: str, color: bool) -> str:
    return f"\033[{sgr}m{text}{_RESET}" if color else text


def _num(value: Any) -> str:
    """``100.0`` stays ``100.0`` and ``0.45`` stays ``0.45``: the wire's own spelling."""
    if value is None:
        return "?"
    return repr(value) if isinstance(value, float) else str(value)


def _text(value: Any) -> str:
    return "?" if value is None else str(value)


def _money(value: Any) -> str:
    """A stake or a balance: ``49992.41`` -> ``49,992.41``, ``500.0`` -> ``500.00``.

    At least two decimals, more when the value has them (``0.123456`` keeps all six):
    grouping and padding, never rounding."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    places = 2
    if isinstance(value, float):
        exponent = Decimal(repr(value)).as_tuple().exponent
        places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{value:,.{places}f}"


def _flag(value: Any) -> str:
    return "?" if value is None else ("ON" if value else "OFF")


def _changed(
    event: Broadcast[Any], name: str, current: Any, show: Callable[[Any], str] = _text
) -> str:
    """``OLD->NEW`` when the broadcast's ``old`` names the field, else the current value."""
    if name in event.old:
        return f"{show(event.old[name])}->{show(current)}"
    return show(current)


def _field(
    event: Broadcast[Any],
    label: str,
    name: str,
    current: Any,
    show: Callable[[Any], str] = _text,
    *,
    shown: bool | None = None,
) -> list[str]:
    """``[label VALUE]`` (or ``[label OLD->NEW]``) when the value is known or changed; ``[]``
    otherwise. ``shown`` overrides "known" for values that are only noise when unchanged."""
    if name not in event.old and not (current is not None if shown is None else shown):
        return []
    return [f"{label} {_changed(event, name, current, show)}"]


def _short(value: str, keep: int = 6) -> str:
    """``0x1234567890abcdef`` -> ``0x1234..cdef``: wallet addresses are long."""
    return value if len(value) <= keep + 6 else f"{value[:keep]}..{value[-4:]}"


def _settled(value: Any) -> bool:
    """A settlement worth a mention without ``old``: anything but unknown or undecided."""
    return value is not None and str(value).upper() != "UNDECIDED"


def _order(event: OrderEvent) -> list[str]:
    order, old = event.payload, event.old
    matched = order.matched_stake
    return [
        f"#{order.order_id}",
        *_field(event, "status", "order_status", order.order_status),
        # The matched status mostly repeats the order status: shown when only it changed.
        *([] if "order_status" in old else
          _field(event, "matching", "matched_status", order.matched_status, shown=False)),
        *_field(event, "settlement", "settlement_status", order.settlement_status,
                shown=_settled(order.settlement_status)),
        *_field(event, "stake", "order_stake", order.order_stake, _money),
        *_field(event, "matched", "matched_stake", matched, _money,
                shown=isinstance(matched, int | float) and matched > 0),
        *_field(event, "@", "order_cents", order.order_cents, _num),
        *_field(event, "on", "exchange", order.exchange, shown=bool(order.exchange)),
    ]  # fmt: skip


def _bet(event: BetEvent) -> list[str]:
    bet = event.payload
    return [
        f"#{bet.bet_id}",
        *_field(event, "order", "order_id", bet.order_id, lambda v: f"#{_text(v)}"),
        *_field(event, "status", "bet_status", bet.bet_status),
        *_field(event, "settlement", "settlement_status", bet.settlement_status,
                shown=_settled(bet.settlement_status)),
        *_field(event, "stake", "placed_stake", bet.placed_stake, _money),
        *_field(event, "@", "placed_price", bet.placed_price, _num),
        *_field(event, "on", "bookmaker", bet.bookmaker, shown=bool(bet.bookmaker)),
    ]  # fmt: skip


def _account(event: AccountEvent) -> list[str]:
    account = event.payload
    return [
        f"user {_short(account.username or '?')}",
        f"on {account.exchange or '?'}",
        *_field(event, "balance", "balance", account.balance, _money),
        *_field(event, "active", "active", account.active, shown=account.active is False),
    ]


def _score(event: ScoreEvent) -> list[str]:
    score = event.payload
    parts = [f"fixture {score.fixture_id}"]
    scores = score.scores or {}
    if "home" in scores or "away" in scores:
        parts.append(f"score {_text(scores.get('home'))}-{_text(scores.get('away'))}")
    if score.current_minute is not None:
        parts.append(f"minute {score.current_minute}")
    if score.current_period:
        parts.append(f"period {score.current_period}")
    return parts


def _emergency(event: EmergencyEvent) -> list[str]:
    flag = event.payload.emergency
    parts = [f"flag {_changed(event, 'emergency', flag, _flag)}"]
    if event.payload.reason:
        parts.append(f"reason {event.payload.reason}")
    return parts


_MM_DETAILS: Mapping[type, Callable[[Any], list[str]]] = {
    OrderEvent: _order,
    BetEvent: _bet,
    AccountEvent: _account,
    ScoreEvent: _score,
    EmergencyEvent: _emergency,
}


def _pairs(items: Mapping[str, Any], limit: int = 3) -> list[str]:
    shown = [f"{key} {value}" for key, value in list(items.items())[:limit]]
    if len(items) > limit:
        shown.append(f"+{len(items) - limit} more")
    return shown


def _match_details(event: FeedEvent) -> list[str]:
    if event.event_type != "match_start":
        return _feed_state(event)
    home, away = event.data.get("teamA"), event.data.get("teamB")
    if isinstance(home, Mapping) and isinstance(away, Mapping):
        return [f"{home.get('name', '?')} v {away.get('name', '?')}"]
    return []


def _realtime_stats(event: StatsRealtimeUpdate) -> list[str]:
    return _pairs({k: _raw(v) for k, v in event.stats.items()})


def _realtime_odds(event: OddsRealtimeUpdate) -> list[str]:
    return _pairs({k: _raw(v) for k, v in event.odds.items()})


def _batch(event: BatchUpdate) -> list[str]:
    matches = event.data.get("matches")
    return [f"matches {len(matches)}"] if isinstance(matches, tuple | list) else []


def _odds(event: OddsUpdate) -> list[str]:
    return [f"1x2 {event.data['live1x2']}"] if "live1x2" in event.data else []


def _feed_state(event: FeedEvent) -> list[str]:
    data, parts = event.data, []
    if data.get("timer") is not None:
        parts.append(f"minute {data['timer']}")
    if data.get("score") is not None:
        parts.append(f"score {data['score']}")
    if isinstance(event, StatsUpdate) and data.get("possession") is not None:
        parts.append(f"possession {data['possession']}")
    return parts


_FEED_DETAILS: Mapping[type, Callable[[Any], list[str]]] = {
    MatchEvent: _match_details,
    StatsRealtimeUpdate: _realtime_stats,
    OddsRealtimeUpdate: _realtime_odds,
    BatchUpdate: _batch,
    OddsUpdate: _odds,
    StatsUpdate: _feed_state,
    FeedEvent: _feed_state,
}


def _feed(event: FeedEvent) -> list[str]:
    parts = [event.channel, event.event_type]
    if event.match_id:
        parts.append(f"match {event.match_id}")
    elif event.league_id:
        parts.append(f"league {event.league_id}")
    return parts + _dispatch(_FEED_DETAILS, event, _feed_state)(event)


def _raw(value: Any) -> str:
    """A parsed stat or odds value back in its wire form (``55;45``, ``1.9;1.9|2.5``)."""
    if isinstance(value, Odds):
        text = ";".join(_num(p) for p in value.prices)
        return text if value.line is None else f"{text}|{_num(value.line)}"
    if isinstance(value, StatPair):
        return f"{value.team_a:g};{value.team_b:g}"
    return str(value)


def _connected(event: Connected) -> tuple[str, bool]:
    again = f" (attempt {event.attempt})" if event.attempt else ""
    return f"connected {event.url}{again}", False


def _subscribed(event: Subscribed) -> tuple[str, bool]:
    channels = ",".join(map(str, event.channels))  # whatever the server sent
    missing = f" (missing {','.join(event.missing)})" if event.missing else ""
    return f"subscribed #{_text(event.subscription_id)} {channels}{missing}", bool(missing)


def _disconnected(event: Disconnected) -> tuple[str, bool]:
    then = "reconnecting" if event.will_reconnect else "not reconnecting"
    return f"disconnected: {event.reason}; {then}", not event.will_reconnect


def _closed(event: Closed) -> tuple[str, bool]:
    if event.error is not None:
        return f"closed: {event.error}", True
    return "closed", False


def _server_error(event: ServerErrorEvent | FeedError) -> tuple[str, bool]:
    code = f" {event.code}" if event.code else ""
    return f"server error{code}: {event.message}", True


def _pong(event: Pong | FeedPong) -> tuple[str, bool]:
    rtt = "" if event.rtt is None else f" rtt {event.rtt * 1000:.1f} ms"
    return f"pong{rtt}", False


# One entry per event type: the text of a lifecycle or control event, and whether it is an
# alert. A subclass finds its nearest base here (see _dispatch).
_LIFECYCLE_TEXT: Mapping[type, Callable[[Any], tuple[str, bool]]] = {
    Connected: _connected,
    Subscribed: _subscribed,
    FeedSubscribed: lambda e: (f"subscribed {e.topic}", False),
    FeedUnsubscribed: lambda e: (f"unsubscribed {e.topic}", False),
    Unsubscribed: lambda e: ("unsubscribed", False),
    Disconnected: _disconnected,
    Reconnecting: lambda e: (f"reconnecting: attempt {e.attempt} in {e.delay:.2f} s", False),
    Stale: lambda e: (
        f"stale: server silent for {e.silent_for:.1f} s; replacing the connection", True
    ),
    Overflow: lambda e: (
        f"overflow: {e.dropped} older {e.channel} events coalesced away", True
    ),
    MalformedFrame: lambda e: (f"malformed frame skipped: {e.error}", True),
    Closed: _closed,
    ServerErrorEvent: _server_error,
    FeedError: _server_error,
    Pong: _pong,
    FeedPong: _pong,
    Heartbeat: lambda e: ("heartbeat", False),
    UnknownMessage: lambda e: (f"unknown message type {e.type!r}", True),
    GapDetected: lambda e: (
        f"gap: {e.channel} {_text(e.key)} {e.field or 'entity'}: "
        f"cached {_text(e.expected)}, broadcast said {_text(e.got)}; resyncing",
        True,
    ),
    Resynced: lambda e: (
        f"resynced ({e.reason}): {e.orders} orders, {e.bets} bets, {e.accounts} accounts "
        f"in {e.duration * 1000:.0f} ms",
        False,
    ),
    ResyncFailed: lambda e: (
        f"resync failed: {e.error}; {'retrying' if e.will_retry else 'not retrying'}",
        True,
    ),
}

F = TypeVar("F")


def _dispatch(table: Mapping[type, F], event: Any, default: F) -> F:
    """The entry for the event's class, or for its nearest base class in ``table``."""
    for cls in type(event).__mro__:
        entry = table.get(cls)
        if entry is not None:
            return entry
    return default


def format_event(event: Any, at: float | None = None, *, color: bool = False) -> str:
    """One event as one readable line, for example::

        10:30:05.123 orders UPDATE #123 status PLACED->FILLED matched 100.00 @ 0.45 on polymarket
        10:30:05.124 -- subscribed #1 orders,bets

    ``at`` (seconds since the epoch) adds the local time of day in front; without it the
    line starts with the channel. Data lines name the channel and the event, then each
    field with a short label (``status``, ``stake``, ``matched``, ``@`` for a price, ``on``
    for the exchange or bookmaker, ``balance``...); stakes and balances have two decimals
    and thousands separators, prices the wire's spelling, and ``OLD->NEW`` marks a field
    the broadcast's ``old`` names. Lifecycle and control events start with ``--`` (``!!``
    for the ones that need attention). ``color=True`` adds ANSI colours. Control characters
    in the server's text are shown escaped (``\\n``, ``\\x1b``), so the line stays one line
    and cannot drive the terminal. Any event type gives a line, unknown ones their ``repr``.

    Args:
        event: Any event (or any object: an unknown one gives its ``repr``).
        at: When it arrived, in seconds since the epoch (``time.time()``); shown as the
            local time of day. ``None`` (the default) leaves the time out.
        color: Add ANSI colours, for a terminal (default ``False``).
    """
    head = ""
    if at is not None:
        clock = datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]
        head = _paint(clock, _DIM, color) + " "
    details = _dispatch(_MM_DETAILS, event, None)
    if details is not None:
        channel = _oneline(str(event.channel))
        body = _oneline(f"{event.event} " + " ".join(details(event)))
        return f"{head}{_paint(channel, _CHANNEL_COLORS.get(channel, ''), color)} {body}"
    if isinstance(event, FeedEvent):
        channel, *rest = (_oneline(str(part)) for part in _feed(event))
        return f"{head}{_paint(channel, _FEED_COLOR, color)} {' '.join(rest)}"
    describe = _dispatch(_LIFECYCLE_TEXT, event, None)
    if describe is None:
        return f"{head}-- {_oneline(repr(event))}"
    text, alert = describe(event)
    if alert:
        return head + _paint(f"!! {_oneline(text)}", _ALERT, color)
    return head + _paint(f"-- {_oneline(text)}", _LIFECYCLE, color)


# C0 and C1 control characters, DEL and the Unicode line breaks, as Python writes them in a
# repr: a newline in a server's text would break the line, an ESC would reach the terminal.
_CONTROLS: Mapping[int, str] = {
    code: repr(chr(code))[1:-1] for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


def _oneline(text: str) -> str:
    return text.translate(_CONTROLS)


def _jsonable(value: Any, full: bool = False) -> Any:
    """``value`` as JSON data: models and events as dicts, enums as their values, datetimes
    as ISO strings, exceptions as their message, frozen maps as dicts. ``full`` keeps every
    field (``None`` and ``received_at`` included, for stable keys); else the JSON lines'
    short form. The raw ``frame`` is never included."""
    if attrs.has(type(value)):
        out: dict[str, Any] = {}
        for field in attrs.fields(type(value)):
            name = field.name
            if name == "frame":
                continue
            item = getattr(value, name)
            if not full and (
                name == "received_at"
                or (name == "raw" and not field.repr)
                or item is None
                or (name == "extra" and not item)
            ):
                continue
            out[name] = _jsonable(item, full)
        return out
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, full) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, full) for v in value]
    if isinstance(value, BaseException):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan", "inf": JSON has no literal for them
    return value


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def event_to_json(event: Any, at: float | None = None) -> str:
    """One event as one line of JSON: ``type`` (the class name), ``time`` (ISO UTC, when
    ``at`` is given), ``channel`` for data events, then the event's fields. Fields that are
    ``None`` are left out, datetimes are ISO strings, enums their wire values.

    Args:
        event: Any event.
        at: When it arrived, in seconds since the epoch; ``None`` (the default) leaves
            ``time`` out.
    """
    out: dict[str, Any] = {"type": type(event).__name__}
    if at is not None:
        out["time"] = _iso(at)
    channel = getattr(event, "channel", None)
    if isinstance(channel, str):
        out["channel"] = channel
    body = _jsonable(event)
    if isinstance(body, dict):
        out.update(body)
    return json.dumps(out, ensure_ascii=False, allow_nan=False)


# -- for people and for pandas: str(), the pretty block, to_dict, to_records ---------------


def to_dict(event: Any) -> dict[str, Any]:
    """One event as a plain, JSON-safe dict: ``type`` (the class name), ``channel`` for
    data events, then every field by its snake_case name (``None`` included, so each type
    always has the same keys). Models become nested dicts, enums their wire values,
    datetimes ISO strings (UTC ``Z``), exceptions their message. The raw ``frame`` is left
    out. ``json.dumps(to_dict(event))`` always works.

    Args:
        event: Any mmws event (``TypeError`` for anything else).
    """
    if not attrs.has(type(event)):
        raise TypeError(f"not an mmws event: {type(event).__name__}")
    out: dict[str, Any] = {"type": type(event).__name__}
    channel = getattr(event, "channel", None)
    if isinstance(channel, str):
        out["channel"] = channel
    body = _jsonable(event, full=True)
    out.update(body)
    return out


def _cell(value: Any) -> Any:
    """A value for one column: scalars as they are, anything nested as JSON text."""
    plain = _jsonable(value, full=True)
    if isinstance(plain, dict | list):
        return json.dumps(plain, ensure_ascii=False, sort_keys=True) if plain else None
    return plain


def _record(event: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"type": type(event).__name__}
    if isinstance(event, Broadcast):
        row["channel"] = event.channel
        row["event"] = _jsonable(event.event, full=True)
        row["received_at"] = event.received_at
        payload = event.payload
        names = [f.name for f in attrs.fields(type(payload))]
        for name in names:
            row[name] = _cell(getattr(payload, name))
        for name in names:
            if name != "extra":
                row[f"old_{name}"] = _cell(event.old.get(name))
        return row
    for field in attrs.fields(type(event)):
        if field.name != "frame":
            row[field.name] = _cell(getattr(event, field.name))
    return row


def to_records(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Flat rows, one per event, for ``pandas.DataFrame(to_records(events))`` or a CSV
    writer. Every row has ``type``; a data event's row also has ``channel``, ``event`` and
    ``received_at``, then each field of its payload as a column (an ``Order``'s
    ``order_id``, ``order_status`` ...) and ``old_<field>`` for each of them (``None`` when
    the field did not change). Any other event's row has its own fields. The columns of one
    event type are always the same; values are scalars (a nested map, ``extra`` for one,
    is JSON text).

    Args:
        events: mmws events, of one type or mixed: a list, a generator, a client (its
            iteration blocks until it closes) or :func:`mmws.replay`.
    """
    return [_record(event) for event in events]


def _block(event: Any) -> str:
    """The readable multi-line form (IPython, Jupyter): the event's line, then one field
    per line, changed fields with their old value."""
    lines = [format_event(event)]
    if isinstance(event, Broadcast):
        payload = event.payload
        fields = [(f.name, getattr(payload, f.name)) for f in attrs.fields(type(payload))]
        shown = [(n, v) for n, v in fields if v is not None and not (n == "extra" and not v)]
        width = max((len(n) for n, _ in shown), default=0)
        for name, value in shown:
            was = f"   (was {_text(event.old[name])})" if name in event.old else ""
            lines.append(f"  {name:<{width}}  {_text(value)}{was}")
        return "\n".join(lines)
    fields = [(f.name, getattr(event, f.name)) for f in attrs.fields(type(event))]
    shown = [(n, v) for n, v in fields if v is not None and n != "frame"]
    width = max((len(n) for n, _ in shown), default=0)
    for name, value in shown:
        lines.append(f"  {name:<{width}}  {_text(value)}")
    return "\n".join(lines)


register(format_event, _block)
