"""Deep-frozen JSON values, so that a frozen event is immutable all the way down.

Events cross threads and reach every consumer as the same object: a nested dict that one
consumer could change would change it for all. :func:`freeze` turns decoded JSON into
:class:`FrozenMap` (a read-only, hashable dict) and tuples; :func:`thaw` turns it back into
plain dicts and lists for encoding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, NoReturn

from mmws.errors import RemoteProtocolError

__all__ = [
    "EMPTY",
    "MAX_DEPTH",
    "FrozenMap",
    "LazyFrozenMap",
    "freeze",
    "freeze_members",
    "thaw",
    "within_depth",
]

MAX_DEPTH: Final = 100
"""How deep JSON objects and arrays may nest in a frame. No real payload comes near it; a
deeper one is refused (``RemoteProtocolError``) instead of costing a Python stack frame per
level, so a hostile frame can never reach the interpreter's recursion limit."""


class FrozenMap(dict[str, Any]):
    """A read-only ``dict``: every mutating method raises ``TypeError``; hashable when its
    values are (deep-frozen values always are).

    A ``dict`` subclass rather than a wrapper, because reading it runs at C speed on the
    hot path and ``json.dumps`` accepts it as it is. ``copy()`` returns a mutable ``dict``.
    """

    __slots__ = ("_hash",)

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this mapping is read-only (events are frozen); copy it with dict()")

    __setitem__ = _read_only
    __delitem__ = _read_only
    __ior__ = _read_only
    clear = _read_only
    pop = _read_only
    popitem = _read_only
    setdefault = _read_only
    update = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        try:
            return self._hash
        except AttributeError:
            self._hash: int = hash(frozenset(self.items()))
            return self._hash

    def copy(self) -> dict[str, Any]:
        return dict(self)

    def __repr__(self) -> str:
        return f"FrozenMap({dict.__repr__(self)})"

    def __reduce__(self) -> tuple[type[FrozenMap], tuple[dict[str, Any]]]:
        return (FrozenMap, (dict(self),))


EMPTY = FrozenMap()


def freeze(value: Any, _depth: int = 0) -> Any:
    """JSON value -> the same value with every dict a :class:`FrozenMap` and every list a
    tuple. Scalars pass through. Raises ``RemoteProtocolError`` when containers nest deeper
    than :data:`MAX_DEPTH`."""
    kind = type(value)
    if kind is dict:
        if _depth >= MAX_DEPTH:
            raise _too_deep()
        depth = _depth + 1
        # scalars are copied without a call: most JSON objects are flat
        return FrozenMap(
            {k: freeze(v, depth) if type(v) in _CONTAINERS else v for k, v in value.items()}
        )
    if kind is list:
        if _depth >= MAX_DEPTH:
            raise _too_deep()
        depth = _depth + 1
        return tuple(freeze(v, depth) if type(v) in _CONTAINERS else v for v in value)
    return value


def _too_deep() -> RemoteProtocolError:
    return RemoteProtocolError(f"JSON nested deeper than {MAX_DEPTH} levels")


_CONTAINERS = frozenset({dict, list})


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`, for encoding: mappings -> dicts, tuples -> lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


# -- freezing on first read --------------------------------------------------------------------


def freeze_members(value: dict[str, Any]) -> FrozenMap:
    """An object of JSON values (``extra``: the keys we do not know) -> a :class:`FrozenMap`
    of each value frozen on its own (each may nest :data:`MAX_DEPTH` deep, like any other
    free-form value)."""
    return FrozenMap({k: freeze(v) if type(v) in _CONTAINERS else v for k, v in value.items()})


class LazyFrozenMap(FrozenMap):
    """A :class:`FrozenMap` made from a parsed JSON object whose values are frozen when first
    read, each on its own, and kept: a 64 KB ``sentData`` costs nothing until someone looks
    into it. Reading a key freezes that value; anything that sees every value (``items()``,
    ``values()``, ``==``, ``hash``, ``repr``, ``dict(m)``, ``{**m}``, ``|``, pickling,
    ``json.dumps``) freezes them all first. It reads, compares, hashes and pickles like the
    eagerly frozen map (pickling gives a plain :class:`FrozenMap`). Two threads reading one
    value at once both freeze it; either result is kept, and the two are equal.

    Only for a frame whose nesting was checked (:func:`within_depth`), so that freezing a
    value later can never fail. Private: the decoder makes them, users only read them."""

    __slots__ = ("_pending",)

    def __init__(self, raw: dict[str, Any]) -> None:
        dict.__init__(self, raw)
        self._pending = True

    def _settle(self) -> None:
        if self._pending:
            for key, value in dict.items(self):
                if type(value) in _CONTAINERS:
                    dict.__setitem__(self, key, freeze(value))
            self._pending = False

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        if type(value) in _CONTAINERS:
            value = freeze(value)
            dict.__setitem__(self, key, value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if dict.__contains__(self, key) else default

    def __iter__(self) -> Any:
        # Not a plain dict's iterator, so that dict(m) and {**m} read through __getitem__
        # instead of copying the stored values as they are.
        return dict.__iter__(self)

    def items(self) -> Any:
        self._settle()
        return dict.items(self)

    def values(self) -> Any:
        self._settle()
        return dict.values(self)

    def __eq__(self, other: object) -> bool:
        self._settle()
        if isinstance(other, LazyFrozenMap):
            other._settle()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:  # type: ignore[override]
        self._settle()
        return FrozenMap.__hash__(self)

    def __repr__(self) -> str:
        self._settle()
        return FrozenMap.__repr__(self)

    def __or__(self, other: Any) -> Any:
        self._settle()
        return dict.__or__(self, other)

    def __ror__(self, other: Any) -> Any:
        self._settle()
        return dict.__ror__(self, other)

    def __reduce__(self) -> tuple[type[FrozenMap], tuple[dict[str, Any]]]:
        self._settle()
        return (FrozenMap, (dict(dict.items(self)),))


_NOT_BRACKETS_OR_QUOTES: Final = bytes(i for i in range(256) if i not in b'{}[]"\\')
_AS_PARENS: Final = bytes.maketrans(b"{}[]", b"()()")
_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"')


def within_depth(text: str | bytes, levels: int) -> bool:
    """True when the JSON ``text`` nests objects and arrays at most ``levels`` deep (text
    that is not JSON may get either answer: the parser refuses it anyway). Without a Python
    step per container: a frame with at most ``levels`` brackets in all is within at once;
    otherwise the brackets outside strings are kept (C passes over the bytes) and the
    innermost pairs are removed, one level per pass."""
    raw = text.encode("utf-8", "surrogatepass") if type(text) is str else text
    assert type(raw) is bytes
    if raw.count(b"{") + raw.count(b"[") <= levels:
        return True
    shape = raw.translate(_AS_PARENS, _NOT_BRACKETS_OR_QUOTES)
    # the common case: no string holds a bracket, a quote or a backslash, so each string
    # is now an empty pair of quotes
    outside = shape.replace(b'""', b"")
    if b'"' in outside or b"\\" in outside:
        outside = _STRING.sub(b"", raw).translate(_AS_PARENS, _NOT_BRACKETS_OR_QUOTES)
    for _ in range(levels):
        if not outside:
            return True
        inner = outside.replace(b"()", b"")
        if len(inner) == len(outside):
            return True  # unbalanced: not JSON, the parser will say so
        outside = inner
    return not outside
