"""A read-only mapping that is cheap to copy with one change: the maps of a state snapshot.

:class:`PersistentMap` spreads its items over a fixed number of small dicts (buckets, by
the key's hash). A new version shares every bucket but the ones that changed, so publishing
a new snapshot after an event costs one small dict copy and one tuple of bucket references,
not a copy of every order. Published buckets are never changed again: a reader on another
thread holds an immutable value and needs no lock.

:class:`MapWriter` is the single writer's side: it changes buckets it copied since the last
:meth:`MapWriter.publish` in place, so several changes between two publications pay for
each bucket's copy once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, Generic, TypeVar, overload

__all__ = ["MapWriter", "PersistentMap"]

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

BUCKETS: Final = 128
_MASK: Final = BUCKETS - 1
_RUN: Final = 5
"""Keys whose hashes differ only in the low 5 bits share a bucket: consecutive ids (new
orders, the recent ones that change) land in one bucket, so a batch of changes copies one
bucket, not one per key."""


class PersistentMap(Mapping[K, V], Generic[K, V]):
    """An immutable mapping (see the module docstring). Compares equal to any mapping with
    the same items, like a ``dict`` does."""

    __slots__ = ("_buckets", "_len")

    _buckets: tuple[dict[K, V], ...]
    _len: int

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        writer: MapWriter[K, V] = MapWriter()
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            writer[key] = value
        buckets, length = writer._buckets_and_len()
        object.__setattr__(self, "_buckets", buckets)
        object.__setattr__(self, "_len", length)

    @classmethod
    def _make(cls, buckets: tuple[dict[K, V], ...], length: int) -> PersistentMap[K, V]:
        new = cls.__new__(cls)
        object.__setattr__(new, "_buckets", buckets)
        object.__setattr__(new, "_len", length)
        return new

    def __getitem__(self, key: K) -> V:
        return self._buckets[hash(key) >> _RUN & _MASK][key]

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V | D, /) -> V | D: ...
    def get(self, key: K, default: Any = None) -> Any:
        return self._buckets[hash(key) >> _RUN & _MASK].get(key, default)

    def __contains__(self, key: object) -> bool:
        try:
            return key in self._buckets[hash(key) >> _RUN & _MASK]
        except TypeError:  # unhashable: not a key
            return False

    def __iter__(self) -> Iterator[K]:
        for bucket in self._buckets:
            yield from bucket

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"PersistentMap({dict(self.items())!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PersistentMap, (dict(self.items()),))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PersistentMap is read-only")


_NO_BUCKETS: tuple[dict[Any, Any], ...] = tuple({} for _ in range(BUCKETS))
EMPTY_MAP: PersistentMap[Any, Any] = PersistentMap._make(_NO_BUCKETS, 0)


class MapWriter(Generic[K, V]):
    """The one writer of a :class:`PersistentMap`: changes in place what it owns, copies a
    shared bucket on its first change, and :meth:`publish` hands out an immutable version."""

    __slots__ = ("_buckets", "_len", "_owned", "_published")

    def __init__(self, start: PersistentMap[K, V] | None = None) -> None:
        base = start if start is not None else EMPTY_MAP
        self._buckets: list[dict[K, V]] = list(base._buckets)
        self._len: int = base._len
        self._owned: set[int] = set()
        self._published: PersistentMap[K, V] | None = base

    def _bucket(self, key: K) -> dict[K, V]:
        index = hash(key) >> _RUN & _MASK
        if index in self._owned:
            return self._buckets[index]
        bucket = self._buckets[index] = dict(self._buckets[index])
        self._owned.add(index)
        self._published = None
        return bucket

    def get(self, key: K, default: V | None = None) -> V | None:
        return self._buckets[hash(key) >> _RUN & _MASK].get(key, default)

    def __contains__(self, key: K) -> bool:
        return key in self._buckets[hash(key) >> _RUN & _MASK]

    def __len__(self) -> int:
        return self._len

    def __setitem__(self, key: K, value: V) -> None:
        bucket = self._bucket(key)
        if key not in bucket:
            self._len += 1
        bucket[key] = value

    def discard(self, key: K) -> None:
        """Remove ``key`` if present."""
        if key in self._buckets[hash(key) >> _RUN & _MASK]:
            del self._bucket(key)[key]
            self._len -= 1

    def values(self) -> Iterator[V]:
        for bucket in self._buckets:
            yield from bucket.values()

    def items(self) -> Iterator[tuple[K, V]]:
        for bucket in self._buckets:
            yield from bucket.items()

    def _buckets_and_len(self) -> tuple[tuple[dict[K, V], ...], int]:
        self._owned = set()
        return tuple(self._buckets), self._len

    def publish(self) -> PersistentMap[K, V]:
        """The current content as an immutable map; nothing changed since the last call
        returns the same object."""
        if self._published is None:
            buckets, length = self._buckets_and_len()
            self._published = PersistentMap._make(buckets, length)
        return self._published
