"""Deep-frozen JSON values, so that a frozen event is immutable all the way down.

Events cross threads and reach every consumer as the same object: a nested dict that one
consumer could change would change it for all. :func:`freeze` turns decoded JSON into
:class:`FrozenMap` (a read-only, hashable dict) and tuples; :func:`thaw` turns it back into
plain dicts and lists for encoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NoReturn

from mmws.errors import RemoteProtocolError

__all__ = ["EMPTY", "MAX_DEPTH", "FrozenMap", "freeze", "thaw"]

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
