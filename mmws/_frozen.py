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
    "FrozenOnRead",
    "Unfrozen",
    "freeze",
    "freeze_members",
    "freeze_on_read",
    "slot_setter",
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


class Unfrozen:
    """A decoded JSON value not frozen yet, as an attribute holds it until first read (see
    :class:`FrozenOnRead`); ``members``: an object to freeze with :func:`freeze_members`.
    Private: users never see one."""

    __slots__ = ("members", "value")

    def __init__(self, value: Any, members: bool = False) -> None:
        self.value = value
        self.members = members


class FrozenOnRead:
    """Wraps the slot of a free-form attribute (``extra``, ``sent_data`` ...): the first
    read deep-freezes what the decoder stored (an :class:`Unfrozen`) and keeps the result, so
    a 64 KB object costs nothing until someone looks at it, and reads the same as an eagerly
    frozen one from then on (``repr``, ``==``, ``hash``, pickling and ``attrs.evolve`` read
    through it too). Two threads reading at once both freeze; either result is kept, and the
    two are equal."""

    __slots__ = ("slot",)

    def __init__(self, slot: Any) -> None:
        self.slot = slot

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        value = self.slot.__get__(obj, owner)
        if type(value) is Unfrozen:
            value = freeze_members(value.value) if value.members else freeze(value.value)
            self.slot.__set__(obj, value)
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        self.slot.__set__(obj, value)

    def __delete__(self, obj: Any) -> None:
        self.slot.__delete__(obj)


def freeze_on_read(cls: type[Any], *names: str) -> None:
    """Put :class:`FrozenOnRead` on the slots ``names`` of the slotted class ``cls``."""
    for name in names:
        slot = cls.__dict__[name]
        if not isinstance(slot, FrozenOnRead):
            setattr(cls, name, FrozenOnRead(slot))


def slot_setter(cls: type[Any], name: str) -> Any:
    """The setter of the slot ``name`` itself (under a :class:`FrozenOnRead`, if any): for
    code that builds instances and knows what it stores."""
    found = next(k.__dict__[name] for k in cls.__mro__ if name in k.__dict__)
    return (found.slot if isinstance(found, FrozenOnRead) else found).__set__


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
