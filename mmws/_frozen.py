"""Deep-frozen JSON values, so that a frozen event is immutable all the way down.

Events cross threads and reach every consumer as the same object: a nested dict that one
consumer could change would change it for all. :func:`freeze` turns decoded JSON into
:class:`FrozenMap` (a read-only, hashable dict) and tuples; :func:`thaw` turns it back into
plain dicts and lists for encoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

__all__ = ["EMPTY", "FrozenMap", "freeze", "thaw"]


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


def freeze(value: Any) -> Any:
    """JSON value -> the same value with every dict a :class:`FrozenMap` and every list a
    tuple. Scalars pass through."""
    kind = type(value)
    if kind is dict:
        # scalars are copied without a call: most JSON objects are flat
        return FrozenMap(
            {k: freeze(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
        )
    if kind is list:
        return tuple(freeze(v) if type(v) in _CONTAINERS else v for v in value)
    return value


_CONTAINERS = frozenset({dict, list})


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`, for encoding: mappings -> dicts, tuples -> lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value
