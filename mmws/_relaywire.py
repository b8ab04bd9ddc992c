"""Relay entries: one delivered event as a broker entry, and back. Pure: no I/O, no clock.

An entry is a flat map of short fields (the same in any broker with key/value entries):

======  ==================================================================================
``v``   the entry format, ``"1"``
``k``   ``"frame"``: a broadcast; ``f`` holds the frame as the server sent it, and the
        reading side decodes it again with the MM protocol core (so hosts may run other
        versions of mmws: no pickles). ``"event"``: any other event; ``e`` holds it as
        tagged JSON (:func:`encode_event`)
``n``   the relay's count of entries, from 1 in each run: a reader that sees it jump by
        more than one lost entries (trimmed by ``MAXLEN`` before it read them)
``r``   the relay's run: a random id per start, so a restarted relay's count starts again
``t``   ``received_at`` of the event (the relay host's ``time.monotonic()``)
``l``   the line the event names (``line``), empty when none
``s``   ``"1"``: a state snapshot covering this entry was written with it
======  ==================================================================================

A state snapshot (:func:`encode_snapshot`) is JSON: each order, bet, account, score and the
emergency switch in its wire form, decoded by the same codecs as a live frame.

Decoding never trusts a name from the wire: only the event, model, enum and error classes
of mmws listed here are built; anything else is kept as plain data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Final

import attrs

from mmws import errors, lifecycle
from mmws._codec import ModelCodec, model_codec
from mmws._frozen import FrozenMap, freeze
from mmws.errors import MmwsError, RemoteProtocolError
from mmws.lifecycle import KeepaliveEvent, UnknownMessage
from mmws.mm import events as mm_events
from mmws.mm import models
from mmws.mm.events import Broadcast, EventKind
from mmws.mm.models import Account, Bet, Emergency, Order, Score
from mmws.mm.protocol import MMProtocol
from mmws.mm.state import StateSnapshot, account_key

__all__ = [
    "FORMAT",
    "EntryDecoder",
    "Numbering",
    "RelayLoss",
    "decode_snapshot",
    "encode_entry",
    "encode_snapshot",
]

FORMAT: Final = "1"


@attrs.frozen(slots=True)
class RelayLoss(lifecycle.LifecycleEvent):
    """Events a relay stream does not hold: ``count`` of them (at least), and why.

    ``reason`` is ``"buffer"`` (the relay could not reach the broker and its bounded buffer
    overflowed: those events never reached the stream), ``"trimmed"`` (this reader fell so
    far behind that the stream's ``maxlen`` trimmed entries before it read them) or
    ``"error"`` (the relay failed to write them for a reason other than the broker: a bug,
    logged on the relay's host). A state fed by the stream is out of date from here until
    the next snapshot.

    Attributes:
        count: How many events are missing, at least.
        reason: Why: ``"buffer"``, ``"trimmed"`` or ``"error"``.
    """

    count: int
    reason: str


def _classes(module: Any, base: type) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, base) and not name.startswith("_")
    }


_EVENTS: Final[dict[str, type]] = {
    cls.__name__: cls
    for cls in (*_classes(lifecycle, object).values(), *_classes(mm_events, object).values())
    if attrs.has(cls)
    and cls.__module__ in (lifecycle.__name__, mm_events.__name__)
    and not issubclass(cls, Broadcast)
} | {"RelayLoss": RelayLoss}
_ENUMS: Final[dict[str, type[Enum]]] = {
    **_classes(models, Enum),
    "EventKind": EventKind,
}
_ERRORS: Final[dict[str, type[BaseException]]] = _classes(errors, BaseException)
_CODECS: Final[dict[str, ModelCodec]] = {
    cls.__name__: model_codec(cls) for cls in (Order, Bet, Account, Score, Emergency)
}
_SIMPLE: Final = (str, int, float, bool, type(None))


# -- tagged JSON for the values of an event ---------------------------------------------------


def _dump(value: Any) -> Any:
    """``value`` as JSON data; what JSON cannot say is tagged (``{"$t": [...]}`` ...)."""
    if isinstance(value, Enum):
        return {"$e": [type(value).__name__, _dump(value.value)]}
    if type(value) in _SIMPLE:
        return value
    if isinstance(value, str):  # a subclass of str or of a number: its plain value
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, datetime):
        return {"$d": value.isoformat()}
    if isinstance(value, tuple):
        return {"$t": [_dump(v) for v in value]}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {"$m": [[_dump(k), _dump(v)] for k, v in value.items()]}
    if isinstance(value, BaseException):
        fields = {k: v for k, v in vars(value).items() if type(v) in _SIMPLE}
        return {"$x": [type(value).__name__, str(value), fields]}
    codec = _CODECS.get(type(value).__name__)
    if codec is not None and type(value) is codec.cls:
        return {"$o": [type(value).__name__, codec.unstructure(value)]}
    return {"$r": repr(value)}


def _load(data: Any) -> Any:
    if isinstance(data, list):
        return [_load(v) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        (tag, body), = data.items()  # fmt: skip
        if tag == "$t" and isinstance(body, list):
            return tuple(_load(v) for v in body)
        if tag == "$m" and isinstance(body, list):
            return FrozenMap({_load(k): _load(v) for k, v in body})
        if tag == "$d" and isinstance(body, str):
            return datetime.fromisoformat(body)
        if tag == "$e" and isinstance(body, list) and len(body) == 2:
            return _load_enum(body[0], _load(body[1]))
        if tag == "$x" and isinstance(body, list) and len(body) == 3:
            return _load_error(*body)
        if tag == "$o" and isinstance(body, list) and len(body) == 2:
            codec = _CODECS.get(body[0])
            if codec is not None and isinstance(body[1], dict):
                return codec.structure(body[1])
            return freeze(body[1])
        if tag == "$r":
            return body
    return freeze(data)


def _load_enum(name: Any, value: Any) -> Any:
    cls = _ENUMS.get(name) if isinstance(name, str) else None
    if cls is None:
        return value
    try:
        return cls(value)
    except ValueError:
        return value  # a member this version does not know: its plain value


def _load_error(name: Any, message: Any, fields: Any) -> BaseException:
    """An mmws error as it was raised on the relay's host: same class, message and simple
    attributes. A class this version does not have becomes an ``MmwsError``."""
    text = str(message)
    cls = _ERRORS.get(name) if isinstance(name, str) else None
    if cls is None:
        return MmwsError(f"{name}: {text}")
    error: BaseException = cls.__new__(cls)
    error.args = (text,)
    if isinstance(fields, dict):
        for key, value in fields.items():
            if isinstance(key, str) and type(value) in _SIMPLE:
                setattr(error, key, value)
    return error


def encode_event(event: Any) -> str:
    """Any event but a broadcast, as tagged JSON: ``{"type": name, "fields": {...}}``."""
    fields = {f.name: _dump(getattr(event, f.name)) for f in attrs.fields(type(event))}
    return json.dumps({"type": type(event).__name__, "fields": fields}, separators=(",", ":"))


def decode_event(text: str | bytes) -> Any:
    """The event :func:`encode_event` wrote. One this version does not know, or cannot
    build, comes back as an :class:`~mmws.UnknownMessage` holding the entry's JSON."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"relay entry: the event is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RemoteProtocolError("relay entry: the event is not a JSON object")
    name = data.get("type")
    cls = _EVENTS.get(name) if isinstance(name, str) else None
    fields = data.get("fields")
    if cls is not None and isinstance(fields, dict):
        known = {f.name for f in attrs.fields(cls)}
        try:
            return cls(**{k: _load(v) for k, v in fields.items() if k in known})
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError):
            pass  # fields of another version, or damaged: kept as data below
    return UnknownMessage(freeze(data))


# -- entries -----------------------------------------------------------------------------


def _synthetic_frame(event: Broadcast[Any]) -> str:
    """The wire frame of a broadcast built in code (no ``frame``): same content."""
    codec = _CODECS[type(event.payload).__name__]
    wire_of = {rule.name: rule.wire for rule in codec.rules}
    old = {wire_of.get(k, k): codec_value(v) for k, v in event.old.items()}
    frame = {
        "type": "broadcast",
        "channel": event.channel,
        "event": str(event.event),
        "payload": codec.unstructure(event.payload),
        "old": old,
    }
    return json.dumps(frame, separators=(",", ":"))


def codec_value(value: Any) -> Any:
    """A typed value of an ``old`` map in its wire form."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: codec_value(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [codec_value(v) for v in value]
    return value


def encode_entry(
    event: Any, number: int, run: str, *, snapshot: bool = False
) -> dict[str, str | bytes]:
    """The entry fields for ``event``, the relay's ``number``-th entry of ``run``."""
    line = getattr(event, "line", None)
    entry: dict[str, str | bytes] = {
        "v": FORMAT,
        "n": str(number),
        "r": run,
        "t": repr(float(getattr(event, "received_at", 0.0) or 0.0)),
        "l": "" if line is None else str(line),
    }
    if isinstance(event, Broadcast):
        entry["k"] = "frame"
        entry["f"] = event.frame if event.frame is not None else _synthetic_frame(event)
    else:
        entry["k"] = "event"
        entry["e"] = encode_event(event)
    if snapshot:
        entry["s"] = "1"
    return entry


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@attrs.frozen(slots=True)
class Envelope:
    """What an entry says besides its event."""

    number: int | None
    run: str
    received_at: float
    line: int | None
    snapshot: bool


class EntryDecoder:
    """Entries back into events, with the same protocol core as a live client."""

    def __init__(self) -> None:
        self._protocol = MMProtocol()

    def decode(self, fields: Mapping[Any, Any]) -> tuple[Any, Envelope]:
        """The event of one entry and its envelope; an entry that cannot be decoded is a
        :class:`~mmws.MalformedFrame` (the stream goes on)."""
        get: Callable[..., Any]
        if all(type(k) is bytes for k in fields):  # as redis-py hands them back: no copy
            get = _BytesKeys(fields).get
        else:
            get = {_text(k): v for k, v in fields.items()}.get
        envelope = Envelope(
            _int(get("n")),
            _text(get("r", "")),
            _float(get("t")),
            _int(get("l")),
            _text(get("s", "")) == "1",
        )
        kind = _text(get("k", ""))
        try:
            if _text(get("v", "")) != FORMAT:
                raise RemoteProtocolError(
                    f"relay entry format {_text(get('v', '?'))!r}; this mmws reads {FORMAT!r}"
                )
            body = get("f" if kind == "frame" else "e")
            if isinstance(body, str | bytes) and kind == "frame":
                return self._frame(body, envelope.received_at), envelope
            if isinstance(body, str | bytes) and kind == "event":
                return decode_event(body), envelope
            raise RemoteProtocolError(f"relay entry of unknown kind {kind!r}")
        except RemoteProtocolError as exc:
            return lifecycle.MalformedFrame(exc), envelope
        except Exception as exc:  # anything else a damaged entry causes: the stream goes on
            error = RemoteProtocolError(f"relay entry: {type(exc).__name__}: {exc}"[:300])
            return lifecycle.MalformedFrame(error), envelope

    def _frame(self, frame: str | bytes, received_at: float) -> Any:
        protocol = self._protocol
        protocol.receive_text(frame, received_at)
        found = [e for e in protocol.events_received() if not isinstance(e, KeepaliveEvent)]
        if len(found) != 1:
            raise RemoteProtocolError(f"relay entry: the frame gave {len(found)} events, not 1")
        return found[0]


class _BytesKeys:
    """``get`` by ``str`` name on a mapping with ``bytes`` keys."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[bytes, Any]) -> None:
        self._fields = fields

    def get(self, name: str, default: Any = None) -> Any:
        return self._fields.get(name.encode(), default)


def _int(value: Any) -> int | None:
    try:
        return int(_text(value)) if value not in (None, b"", "") else None
    except ValueError:
        return None


def _float(value: Any) -> float:
    try:
        return float(_text(value)) if value is not None else 0.0
    except ValueError:
        return 0.0


class Numbering:
    """One reader's check of the relay's numbering (entries ``n`` of run ``r``): which
    entries it never saw, and which it saw twice (a batch the relay wrote again after a
    lost answer). For a reader of every entry, not for a consumer group."""

    __slots__ = ("number", "run", "whole")

    def __init__(self, *, whole: bool = False) -> None:
        self.whole = whole  # the whole stream was asked for: its first entries count too
        self.run = ""
        self.number = 0

    def check(self, run: str, number: int) -> int | None:
        """How many entries are missing before this one (0 when it follows on, or starts
        a new run), or ``None`` when it repeats one already read (skip it)."""
        if self.whole and not self.run and number > 1:
            missing = number - 1
        elif run == self.run:
            if number <= self.number:
                return None
            missing = number - self.number - 1
        else:
            missing = 0
        self.run, self.number = run, number
        return missing


# -- state snapshots ----------------------------------------------------------------------


def encode_snapshot(snap: StateSnapshot) -> str:
    """The state as JSON: every entity in its wire form."""

    def wire(cls_name: str, items: Iterable[Any]) -> list[dict[str, Any]]:
        codec = _CODECS[cls_name]
        return [codec.unstructure(item) for item in items]

    data = {
        "format": FORMAT,
        "orders": wire("Order", snap.orders.values()),
        "bets": wire("Bet", snap.bets.values()),
        "accounts": wire("Account", snap.accounts.values()),
        "scores": wire("Score", snap.scores.values()),
        "emergency": None if snap.emergency is None else _CODECS["Emergency"].unstructure(
            snap.emergency
        ),
        "synced": snap.synced,
    }
    return json.dumps(data, separators=(",", ":"))


def decode_snapshot(text: str | bytes) -> StateSnapshot:
    """The :class:`~mmws.StateSnapshot` :func:`encode_snapshot` wrote; ``RemoteProtocolError``
    names what is wrong with a damaged one."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a state snapshot of this format")

        def read(name: str, cls_name: str) -> list[Any]:
            items = data.get(name)
            if not isinstance(items, list):
                raise ValueError(f"{name!r} is not a list")
            return [_CODECS[cls_name].structure(item) for item in items]

        orders = {o.order_id: o for o in read("orders", "Order")}
        bets = {b.bet_id: b for b in read("bets", "Bet")}
        accounts = {
            key: a for a in read("accounts", "Account") if (key := account_key(a)) is not None
        }
        scores = {s.fixture_id: s for s in read("scores", "Score")}
        raw = data.get("emergency")
        emergency = None if raw is None else _CODECS["Emergency"].structure(raw)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RemoteProtocolError(f"relay state snapshot: {exc}") from None
    return StateSnapshot.of(orders, bets, accounts, scores, emergency, data.get("synced") is True)

