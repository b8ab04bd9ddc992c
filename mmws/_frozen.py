"""Deep-frozen JSON values, so that a frozen event is immutable all the way down.

Events cross threads and reach every consumer as the same object: a nested dict that one
consumer could change would change it for all. :func:`freeze` turns decoded JSON into
:class:`FrozenMap` (a read-only, hashable mapping) and tuples; :func:`thaw` turns it back
into plain dicts and lists for encoding.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["EMPTY", "FrozenMap", "freeze", "thaw"]


class FrozenMap(Mapping[str, Any]):
    """A read-only mapping that compares equal to any mapping with the same items and is
    hashable when its values are (deep-frozen values always are)."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data) if data else {}
        self._hash: int | None = None

    @classmethod
    def _adopt(cls, data: dict[str, Any]) -> FrozenMap:
        """Wrap ``data`` without copying; the caller gives up every other reference."""
        self = cls.__new__(cls)
        self._data = data
        self._hash = None
        return self

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenMap], tuple[dict[str, Any]]]:
        return (FrozenMap, (self._data,))


EMPTY = FrozenMap()


def freeze(value: Any) -> Any:
    """JSON value -> the same value with every dict a :class:`FrozenMap` and every list a
    tuple. Scalars pass through."""
    kind = type(value)
    if kind is dict:
        # scalars are copied without a call: most JSON objects are flat
        return FrozenMap._adopt(
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
