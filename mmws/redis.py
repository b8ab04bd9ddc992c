"""Relay one client's typed stream to many processes and hosts through Redis Streams.

Needs the optional extra ``mmws[redis]`` (the ``redis`` package)::

    relay = mmws.RedisRelay(client, url="redis://127.0.0.1:6379/0", stream="mmws:mm")
    relay.start()                      # the relay is now the client's consumer
    ...
    src = mmws.RedisSource("redis://127.0.0.1:6379/0", stream="mmws:mm")
    event = src.get(timeout=1.0)       # the same typed events, decoded by the same core

:class:`RedisRelay` publishes every event the client delivers, lifecycle events included,
as one stream entry each: the raw wire frame of a broadcast, or the event as tagged JSON,
plus an envelope (see :mod:`mmws._relaywire`). It never blocks the client: a pump thread
takes events from the client's queue into a bounded buffer, a publisher thread writes the
buffer to Redis in batches and retries with backoff while Redis is unreachable. When the
buffer overflows, the events that did not fit are counted and the stream gets a
:class:`RelayLoss` in their place.

:class:`RedisSource` reads the stream: with an independent cursor (every reader sees every
entry) or in a consumer group (entries shared, acknowledged, an unacknowledged entry of a
dead consumer claimed by a live one). With ``state=True`` it starts from the relay's last
state snapshot and keeps ``src.state`` equal to the relay's.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import attrs

try:
    import redis as _redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError(
        'mmws.redis needs the redis package: the extra "redis" of mmws (in a checkout of '
        "mmws: python -m pip install '.[redis]')"
    ) from exc

from mmws._backoff import Backoff
from mmws._delivery import EventQueue
from mmws._relaybuffer import Loss, RelayBuffer
from mmws._relaywire import (
    EntryDecoder,
    Numbering,
    RelayLoss,
    decode_snapshot,
    encode_entry,
    encode_snapshot,
)
from mmws._secret import Secret
from mmws.errors import ConfigError, ConnectError, MmwsError, RemoteProtocolError
from mmws.lifecycle import Disconnected
from mmws.mm.client import MMClient
from mmws.mm.events import GapDetected, Resynced
from mmws.mm.state import MMState, StateSnapshot

__all__ = ["Entry", "RedisRelay", "RedisSource", "RelayLoss"]

log = logging.getLogger("mmws.redis")

DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"
_STOP: Final = object()  # put into the client's queue by close(): the pump's last item
_ID: Final = re.compile(r"\d{1,20}(-\d{1,20})?")
_KEEP: Final = 1024  # entries remembered after delivery, for entry() without a group

# One atomic step per batch: the entries, and the state snapshot stamped with the id of
# the entry it covers (readers never see one without the other).
_PUBLISH: Final = """
local ids = {}
local i = 3
for e = 1, tonumber(ARGV[2]) do
  local n = tonumber(ARGV[i]); i = i + 1
  local args = {KEYS[1], 'MAXLEN', '~', ARGV[1], '*'}
  for j = 0, n - 1 do args[#args + 1] = ARGV[i + j] end
  i = i + n
  ids[e] = redis.call('XADD', unpack(args))
end
if ARGV[i] then
  redis.call('HSET', KEYS[2], 'id', ids[tonumber(ARGV[i])], 'state', ARGV[i + 1],
             'run', ARGV[i + 2], 'n', ARGV[i + 3])
end
return ids
"""


def _shown(url: str) -> str:
    """The URL without its password: ``redis://user:***@host``, ``?password=***``."""
    scheme, sep, rest = url.partition("//")
    head, question, query = rest.partition("?")
    at = head.rfind("@")  # a password may hold a raw '@' or '/'
    if sep and at >= 0 and ":" in head[:at]:
        head = head[:at].partition(":")[0] + ":***" + head[at:]
    rest = head + question + query
    return re.sub(r"(?i)((?:^|[?&;])password=)[^&;#]*", r"\1***", scheme + sep + rest)


def _passwords(url: str) -> list[str]:
    """The passwords in ``url`` (its user part, a ``password=`` in its query)."""
    found = re.findall(r"(?i)(?:^|[?&;])password=([^&;#]+)", url.partition("?")[2])
    head = url.partition("//")[2].partition("?")[0]
    user = head[: head.rfind("@")] if "@" in head else ""
    if ":" in user:
        found.append(user.partition(":")[2])
    return sorted((p for p in found if p), key=len, reverse=True)


def _connect(url: Secret, timeout: float, single: bool = False) -> Any:  # loose types
    try:
        pool = _redis.ConnectionPool.from_url(
            url.reveal(),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # mmws retries itself, with its own backoff
        )
    except ValueError as exc:
        detail = str(exc)
        for secret in _passwords(url.reveal()):
            detail = detail.replace(secret, "***")  # a parse error may quote a piece of it
        raise ConfigError(f"not a Redis URL: {_shown(url.reveal())!r} ({detail})") from None
    return _redis.Redis(connection_pool=pool, single_connection_client=single)


def _check_positive(name: str, value: Any, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {what}, got {value!r}")


def _check_stream(stream: Any) -> str:
    if not isinstance(stream, str) or not stream:
        raise ConfigError(f"stream must be a non-empty string, got {stream!r}")
    return stream


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _saved_id(saved: Mapping[bytes, bytes]) -> tuple[int, int] | None:
    """The stream id a saved snapshot covers; None when there is none, or it is damaged."""
    try:
        return _id_key(saved[b"id"]) if saved else None
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def _redis_error(exc: BaseException, url: str) -> str:
    return f"{type(exc).__name__}: {exc} ({url})"


# -- the relay ----------------------------------------------------------------------------


class RedisRelay:
    """Publish every event of ``client`` into the Redis stream ``stream``.

    The relay becomes the client's consumer: do not also call ``client.get()``. Each event
    is one entry; the stream is trimmed to about ``maxlen`` entries (``XADD MAXLEN ~``).
    With ``MMClient(..., state=True)`` the relay also writes a state snapshot (the hash
    ``"{stream}:state"``) with the first entry, with every ``Resynced`` and
    :class:`RelayLoss`, and every ``snapshot_interval`` seconds while the state changes.

    While Redis is unreachable the relay holds up to ``buffer`` events and retries with
    backoff (``backoff_base`` to ``backoff_cap`` seconds); what does not fit is counted in
    :attr:`dropped` and announced in the stream by a :class:`RelayLoss`. ``batch`` events go
    in one round trip at most; ``timeout`` bounds each one.

    ``start()`` starts it (or use it as a context manager); ``close()`` publishes what the
    client queued before the call, waits up to ``timeout`` seconds for Redis to take it, and
    stops. It does not close the client.

    Args:
        client: The ``MMClient`` to relay, made without ``on_event=``; connect it yourself.
        url: The Redis URL, e.g. ``redis://:password@host:6379/0`` (default
            ``redis://127.0.0.1:6379/0``); the password is never shown.
        stream: The Redis stream's key (default ``"mmws:mm"``); the state snapshot goes to
            ``"{stream}:state"``.
        maxlen: About how many entries the stream keeps; older ones are trimmed (default
            1000000).
        buffer: How many events the relay holds while Redis is unreachable (default
            100000); more are dropped and announced by a ``RelayLoss``.
        batch: The most events written in one round trip (default 500).
        snapshot_interval: Seconds between state snapshots while the state changes (default
            5; only with ``state=True`` on the client).
        backoff_base: Seconds; the first retry after a Redis error waits at most this long,
            and the limit doubles with each retry (default 0.1).
        backoff_cap: The longest wait between retries, in seconds (default 5).
        timeout: Seconds each Redis command (and connecting) may take (default 5); also
            how long :meth:`close` waits by default.
    """

    def __init__(
        self,
        client: MMClient,
        url: str = DEFAULT_URL,
        stream: str = "mmws:mm",
        maxlen: int = 1_000_000,
        *,
        buffer: int = 100_000,
        batch: int = 500,
        snapshot_interval: float = 5.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
        timeout: float = 5.0,
    ) -> None:
        if not isinstance(client, MMClient):
            raise ConfigError(f"RedisRelay relays an MMClient, got {type(client).__name__}")
        if client._engine._on_event is not None:
            raise ConfigError(
                "this client delivers to on_event: the relay must be its only consumer"
            )
        self.stream = _check_stream(stream)
        _check_positive("maxlen", maxlen, integer=True)
        _check_positive("buffer", buffer, integer=True)
        _check_positive("batch", batch, integer=True)
        _check_positive("snapshot_interval", snapshot_interval)
        _check_positive("timeout", timeout)
        self._backoff = Backoff(backoff_base, backoff_cap)
        self._url = Secret(url) if isinstance(url, str) else None
        if self._url is None:
            raise ConfigError(f"url must be a string, got {type(url).__name__}")
        self.url = _shown(url)
        """The Redis URL, its password hidden."""
        self.maxlen = maxlen
        self._client = client
        try:
            self._state: MMState | None = client.state
        except ConfigError:
            self._state = None  # a client without state=True: no snapshots
        self._snapshot_interval = snapshot_interval
        self._timeout = timeout
        self._redis: Any = _connect(self._url, timeout)
        self._script = self._redis.register_script(_PUBLISH)
        self._run = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._buffer = RelayBuffer(buffer, batch)  # under self._lock
        self._stopping = False
        self._closed = False
        self._abandon = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_snapshot: StateSnapshot | None = None
        self._last_snapshot_at = -1e18
        self._number = 0
        self.published = 0
        """Events written to the stream."""
        self.last_id: str | None = None
        """The stream id of the last entry written."""
        self.last_error: str | None = None
        """The last Redis error, if any (the URL's password hidden)."""

    # -- public ------------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Events taken from the client and not yet written (at most ``buffer``)."""
        with self._lock:
            return self._buffer.held + self._buffer.inflight

    @property
    def dropped(self) -> int:
        """Events that never reached the stream (the buffer was full, or Redis was still
        unreachable when ``close()`` gave up)."""
        return self._buffer.dropped

    def start(self) -> RedisRelay:
        """Start relaying (the pump and publisher threads).

        Returns:
            The relay itself. Starting it twice raises ``ConfigError``.
        """
        if self._threads or self._closed:
            raise ConfigError(f"this relay was {'closed' if self._closed else 'started'} already")
        for name, target in (("pump", self._pump), ("publish", self._publish_loop)):
            thread = threading.Thread(target=target, name=f"mmws-relay-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def close(self, timeout: float | None = None) -> None:
        """Publish what the client queued before this call and stop (within ``timeout``
        seconds, the relay's ``timeout`` by default). Events Redis did not take by then
        are counted in :attr:`dropped` and logged.

        Args:
            timeout: Seconds to wait, at most, for Redis to take what is left; ``None`` uses
                the relay's ``timeout``.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        if self._threads:
            pump, publisher = self._threads
            self._client.queue.put_control(_STOP)
            pump.join(max(0.0, deadline - time.monotonic()))
            with self._lock:
                self._stopping = True
                self._ready.notify_all()
            publisher.join(max(0.0, deadline - time.monotonic()))
            if publisher.is_alive() or pump.is_alive():
                self._abandon.set()
                with self._lock:
                    self._ready.notify_all()
                publisher.join(1.0)
        self._redis.close()

    def __enter__(self) -> RedisRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<RedisRelay {self.stream!r} on {self.url} published={self.published} "
            f"buffered={self.buffered} dropped={self.dropped}>"
        )

    # -- the pump: the client's queue -> the buffer (never waits for Redis) ----------------

    def _pump(self) -> None:
        get = self._client.queue.get
        while True:
            try:
                event = get()
            except MmwsError:
                break  # the client closed and its last event (Closed) was taken
            if event is _STOP:
                break
            if self._abandon.is_set():  # close() ran out of time: the rest stays queued
                with self._lock:
                    self._buffer.dropped += 1  # this one was taken: counted, not lost quietly
                break
            snapshot = self._snapshot_for(event) if self._state is not None else None
            with self._lock:
                self._buffer.offer(event, snapshot)  # full: counted into a loss marker
                self._ready.notify()

    def _snapshot_for(self, event: Any) -> StateSnapshot | None:
        """The state to write with ``event``, if it is time for one. The client applied
        ``event`` before queueing it, so the state includes it (and maybe newer ones)."""
        assert self._state is not None
        snapshot = self._state.snapshot()
        now = time.monotonic()
        due = (
            type(event) is Resynced
            or self._last_snapshot is None
            or (
                now - self._last_snapshot_at >= self._snapshot_interval
                and snapshot is not self._last_snapshot
            )
        )
        if not due:
            return None
        self._last_snapshot, self._last_snapshot_at = snapshot, now
        return snapshot

    # -- the publisher: the buffer -> Redis, in order, retried -----------------------------

    def _publish_loop(self) -> None:
        batch: list[Any] | None = None
        items: list[Any] = []
        while True:
            if batch is None:
                with self._lock:
                    while not self._buffer and not self._stopping and not self._abandon.is_set():
                        self._ready.wait()
                    if not self._buffer:
                        return
                    items = self._buffer.take()
                try:
                    batch = self._encode(items)
                except Exception:  # a bug, not Redis: never a silent stop, never a silent loss
                    log.exception("relay to %s: a batch could not be encoded", self.url)
                    self._lost(items)
                    continue
            if self._abandon.is_set():
                self._give_up()
                return
            try:
                ids = self._script(keys=[self.stream, f"{self.stream}:state"], args=batch[0])
            except _redis.RedisError as exc:
                self._failed(exc)
                continue
            except Exception:  # not Redis's doing: a retry would fail the same way
                log.exception("relay to %s: a batch of %d events failed", self.url, batch[1])
                self._number -= batch[2]  # the stream never got these numbers
                self._lost(items)
                batch = None
                self._abandon.wait(self._backoff.next_delay())  # no busy loop on a bug
                continue
            with self._lock:
                self.published += self._buffer.written()
            self.last_id = ids[-1].decode() if isinstance(ids[-1], bytes) else str(ids[-1])
            self._backoff.reset()
            if self.last_error is not None:
                log.warning("relay to %s: Redis takes entries again", self.url)
                self.last_error = None
            batch = None

    def _lost(self, items: list[Any]) -> None:
        """The batch in hand can never be written: counted, and told in the stream."""
        with self._lock:
            self._buffer.lost(items)

    def _encode(self, items: Iterable[Any]) -> list[Any]:
        """The script's arguments for ``items``, how many events and entries they hold."""
        entries: list[dict[str, str | bytes]] = []
        snapshot: StateSnapshot | None = None
        at = 0
        events = 0
        number = self._number
        for item in items:
            if isinstance(item, Loss):
                event: Any = RelayLoss(item.count, item.reason)
                snap = self._state.snapshot() if self._state is not None else None
                log.error("relay to %s: %d events lost (%s)", self.url, item.count, item.reason)
            else:
                event, snap = item
                events += 1
            number += 1
            entries.append(encode_entry(event, number, self._run, snapshot=snap is not None))
            if snap is not None:
                snapshot, at = snap, len(entries)
        args: list[Any] = [self.maxlen, len(entries)]
        for fields in entries:
            args.append(2 * len(fields))
            for key, value in fields.items():
                args.extend((key, value))
        if snapshot is not None:
            covered = number - len(entries) + at  # the relay's number of entry ``at``
            args.extend((at, encode_snapshot(snapshot), self._run, covered))
        self._number = number
        return [args, events, len(entries)]

    def _failed(self, exc: BaseException) -> None:
        text = _redis_error(exc, self.url)
        if self.last_error is None:
            log.warning("relay to %s: %s; retrying with backoff", self.url, text)
        self.last_error = text
        self._abandon.wait(self._backoff.next_delay())

    def _give_up(self) -> None:
        with self._lock:
            lost = self._buffer.give_up()
        if lost:
            log.error(
                "relay to %s closed while Redis was unreachable: %d events not published",
                self.url, lost,
            )  # fmt: skip


# -- the source ---------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Entry:
    """Where an event came from: its stream ``id``, whether it was ``redelivered`` (read
    before by a consumer of the group that did not acknowledge it), the relay's ``number``
    and ``run`` and the ``line`` it names.

    Attributes:
        id: The entry's stream id, e.g. ``"1700000000000-0"``; pass it as ``start`` to read
            on from there.
        redelivered: ``True`` when a consumer of the group read it before and did not
            acknowledge it.
        number: The relay's count of its entries, from 1 in each run; a jump by more than
            one means entries were lost. ``None`` if the entry has none.
        run: A random id of the relay's run, new at each start of a relay.
        line: The line the event names (``line`` of a line's event); ``None`` when none.
    """

    id: str
    redelivered: bool = False
    number: int | None = None
    run: str = ""
    line: int | None = None


class RedisSource:
    """Read a relay's stream: the same typed events, decoded by the same protocol core.

    ``group=None``: an independent cursor; every reader sees every entry, from ``start``:
    ``"$"`` (what is added from now on), ``"0"`` (the whole stream) or an entry id. A reader
    that falls more than the stream's ``maxlen`` behind gets a :class:`RelayLoss` for what
    was trimmed before it could read it.

    ``group="risk"``: the entries are shared among the group's consumers (created at
    ``start`` if the group is new). Each is delivered at least once: :meth:`ack` it when
    done; an entry left unacknowledged for ``claim_idle`` seconds by a consumer that stopped
    is claimed by a live one and delivered again, marked ``entry(event).redelivered``.

    ``state=True`` (independent cursor only): start from the relay's last state snapshot,
    and keep :attr:`state` equal to the relay's as the stream goes on.

    Events are read ahead by a thread into a queue of ``maxsize``; ``get()`` takes them.
    Idle, the thread wakes every ``block`` seconds. ``close()`` ends it at once.

    Args:
        url: The Redis URL (default ``redis://127.0.0.1:6379/0``); the password is never
            shown.
        stream: The relay's stream key (default ``"mmws:mm"``).
        group: A consumer group's name, to share the entries among its consumers; ``None``
            (the default) reads with an independent cursor.
        consumer: This reader's name in ``group``; default: made up from the host name and
            the process id. Only with ``group``.
        start: Where to start: ``"$"`` (the default, what is added from now on), ``"0"``
            (the whole stream) or an entry id such as ``"1700000000000-0"``.
        state: Keep :attr:`state`, the relay's state cache, starting from its last snapshot
            (default ``False``; independent cursor and ``start="$"`` only).
        claim_idle: With ``group``: seconds after which an entry another consumer left
            unacknowledged is claimed and delivered again (default 30).
        maxsize: How many events are read ahead into the queue (default 10000).
        count: The most entries read from Redis at once (default 500).
        block: Seconds an idle read waits for new entries (default 1; less than
            ``timeout``).
        backoff_base: Seconds; the first retry after a Redis error waits at most this long,
            and the limit doubles with each retry (default 0.1).
        backoff_cap: The longest wait between retries, in seconds (default 5).
        timeout: Seconds each Redis command (and connecting) may take (default 5).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        stream: str = "mmws:mm",
        group: str | None = None,
        consumer: str | None = None,
        start: str = "$",
        *,
        state: bool = False,
        claim_idle: float = 30.0,
        maxsize: int = 10_000,
        count: int = 500,
        block: float = 1.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
        timeout: float = 5.0,
    ) -> None:
        if not isinstance(url, str):
            raise ConfigError(f"url must be a string, got {type(url).__name__}")
        self.stream = _check_stream(stream)
        if group is not None and (not isinstance(group, str) or not group):
            raise ConfigError(f"group must be a non-empty string or None, got {group!r}")
        if consumer is not None and (not isinstance(consumer, str) or not consumer):
            raise ConfigError(f"consumer must be a non-empty string or None, got {consumer!r}")
        if consumer is not None and group is None:
            raise ConfigError("consumer names a consumer of a group: give group= too")
        if not isinstance(start, str) or not (start in ("$", "0") or _ID.fullmatch(start)):
            raise ConfigError(f"start must be '$', '0' or a stream id like '1700000000000-0', "
                              f"got {start!r}")  # fmt: skip
        if state and group is not None:
            raise ConfigError("state=True needs every entry: it cannot be used with a group")
        if state and start != "$":
            raise ConfigError("state=True starts from the relay's snapshot: leave start out")
        _check_positive("claim_idle", claim_idle)
        _check_positive("maxsize", maxsize, integer=True)
        _check_positive("count", count, integer=True)
        _check_positive("block", block)
        _check_positive("timeout", timeout)
        if not block < timeout:
            raise ConfigError(f"block ({block}) must be shorter than timeout ({timeout})")
        self.url = _shown(url)
        """The Redis URL, its password hidden."""
        self.group = group
        self.consumer = consumer or (
            f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}" if group else None
        )
        """This reader's name in the group (made up from host and process when not given)."""
        self._backoff = Backoff(backoff_base, backoff_cap)
        self._claim_idle = claim_idle
        self._count = count
        self._block_ms = max(1, int(block * 1000))
        self._redis: Any = _connect(Secret(url), timeout)
        # The blocking reads go through a connection of their own, which close() can cut
        # under a blocked read without touching what another thread uses (made below).
        self._reader: Any = None
        self._queue = EventQueue(maxsize)
        self._decoder = EntryDecoder()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outstanding: OrderedDict[int, tuple[Any, Entry]] = OrderedDict()
        self._queued: set[str] = set()  # group: ids read and not yet acknowledged
        self._numbering = Numbering(whole=start == "0")  # whole: a trimmed start is lost too
        self._lost_at_start = False
        self._need_snapshot = False
        self.state: MMState | None = MMState(verify=False) if state else None
        """With ``state=True``: the relay's state, as of the last event taken from the
        stream (it includes every event ``get()`` returned so far)."""
        self.last_id: str | None = None
        """The stream id of the last event ``get()`` returned: pass it as ``start`` to
        resume there later."""
        self.last_error: str | None = None
        try:
            self._position = self._begin(start)
            self._reader = _connect(Secret(url), timeout, single=True)  # connects now
        except _redis.RedisError as exc:
            self._redis.close()
            raise ConnectError(f"cannot reach Redis: {_redis_error(exc, self.url)}") from None
        self._thread = threading.Thread(target=self._read_loop, name="mmws-source", daemon=True)
        self._thread.start()
        self._toucher: threading.Thread | None = None
        if group is not None:
            self._toucher = threading.Thread(
                target=self._keep_alive, name="mmws-source-touch", daemon=True
            )
            self._toucher.start()

    # -- public ------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> Any:
        """The next event, waiting up to ``timeout`` seconds (forever if ``None``). Raises
        ``queue.Empty`` on timeout; after :meth:`close`, once drained, ``ClientClosed``.

        Args:
            timeout: Seconds to wait for an event; ``None`` (the default) waits forever.

        Returns:
            The next event, typed as the relayed client delivered it.
        """
        event = self._queue.get(True, timeout)
        with self._lock:
            found = self._outstanding.get(id(event))
            if found is not None:
                self.last_id = found[1].id
        return event

    def __iter__(self) -> Iterator[Any]:
        """Every event, blocking; ends after :meth:`close`."""
        while True:
            try:
                yield self.get()
            except MmwsError:
                return

    def entry(self, event: Any) -> Entry:
        """Where ``event`` came from (an event this source delivered: with a group, until
        it is acknowledged; without, one of the last ones).

        Args:
            event: An event :meth:`get` returned (the same object).

        Returns:
            Its :class:`~mmws.redis.Entry`; ``ConfigError`` if the source no longer holds it.
        """
        with self._lock:
            found = self._outstanding.get(id(event))
        if found is None or found[0] is not event:
            raise ConfigError("not an event this source holds (acknowledged already?)")
        return found[1]

    def ack(self, *events: Any) -> None:
        """Acknowledge ``events`` (with a group): they will not be delivered again.

        Args:
            events: Events :meth:`get` returned and not acknowledged yet.
        """
        if self.group is None:
            raise ConfigError("ack() acknowledges entries of a group: create with group=")
        ids = [self.entry(event).id for event in events]
        if not ids:
            return
        try:
            self._redis.xack(self.stream, self.group, *ids)
        except _redis.RedisError as exc:
            raise ConnectError(f"acknowledge failed: {_redis_error(exc, self.url)}") from None
        with self._lock:
            for event in events:
                self._outstanding.pop(id(event), None)
            self._queued.difference_update(ids)

    def close(self, timeout: float = 5.0) -> None:
        """Stop reading; ``get()`` still returns what was read, then raises
        ``ClientClosed``. Unacknowledged entries of a group stay pending for others.

        Args:
            timeout: Seconds to wait, at most, for the reader thread to end (default 5).
        """
        self._stop.set()
        self._queue.close()
        deadline = time.monotonic() + timeout
        while True:
            # Shutting the reader's socket down wakes a blocked read at once; again if the
            # reader began a read just after the stop was set. Only the reader thread
            # closes it (redis-py's connections are not made to be closed from two threads).
            sock = getattr(getattr(self._reader, "connection", None), "_sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # closed by the reader meanwhile
            self._thread.join(min(0.05, max(0.0, deadline - time.monotonic())))
            if not self._thread.is_alive() or time.monotonic() >= deadline:
                break
        if self._toucher is not None:
            self._toucher.join(max(0.0, deadline - time.monotonic()))
        self._reader.close()
        self._redis.close()

    def __enter__(self) -> RedisSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        who = f" group={self.group!r} consumer={self.consumer!r}" if self.group else ""
        return f"<RedisSource {self.stream!r} on {self.url}{who} last_id={self.last_id}>"

    # -- the reader thread -----------------------------------------------------------------

    def _begin(self, start: str) -> str:
        """Where reading starts (Redis is asked now, so ``"$"`` means "from this call")."""
        r = self._redis
        if self.group is not None:
            try:
                r.xgroup_create(self.stream, self.group, id=start, mkstream=True)
            except _redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            return "0"  # first this consumer's own pending entries, then new ones
        if self.state is not None:
            saved = r.hgetall(f"{self.stream}:state")
            if _saved_id(saved) is not None and self._load(saved):
                run, number = _text(saved.get(b"run", b"")), _text(saved.get(b"n", b""))
                if run and number.isdigit():  # reading starts after the snapshot's entry
                    self._numbering.run, self._numbering.number = run, int(number)
                return _text(saved[b"id"])
            self._need_snapshot = True
            self._numbering.whole = True
            return "0-0"
        if start == "$":
            last = r.xrevrange(self.stream, count=1)
            if last:
                self._resume_at(last[0][1])
            return _text(last[0][0]) if last else "0-0"
        if start == "0":
            return "0-0"
        found = r.xrange(self.stream, min=start, max=start)
        if found:
            self._resume_at(found[0][1])  # the relay's number there: losses after it show
        elif r.xrange(self.stream, max=start, count=1) == [] and r.xlen(self.stream):
            # the entry and everything before it were trimmed: entries after it may be too
            self._lost_at_start = True
        return start

    def _resume_at(self, fields: Any) -> None:
        """Reading goes on after the entry of ``fields``: continue the relay's numbering."""
        _, envelope = self._decoder.decode(_fields(fields))
        if envelope.number is not None:
            self._numbering.run, self._numbering.number = envelope.run, envelope.number

    def _read_loop(self) -> None:
        claim_at = time.monotonic() + self._claim_idle / 2
        while not self._stop.is_set():
            try:
                if self.group is None:
                    events = self._read_independent()
                else:
                    events = self._read_group()
                    if time.monotonic() >= claim_at:
                        events.extend(self._claim())
                        claim_at = time.monotonic() + self._claim_idle / 2
            except Exception as exc:
                if self._stop.is_set():
                    return  # close() cut the connection under a blocked read
                if not isinstance(exc, _redis.RedisError):
                    # Never a silent stop: get() raises this once the queue is drained.
                    log.exception("mmws-source failed")
                    self._queue.close(MmwsError(f"internal error in mmws-source: {exc!r}"))
                    return
                self._failed(exc)
                continue
            if self.last_error is not None:
                log.warning("source %s: Redis answers again", self.url)
                self.last_error = None
            self._backoff.reset()
            if events and not self._queue.put_many(events):
                return

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, _redis.ResponseError) and "NOGROUP" in str(exc) and self.group:
            # Redis restarted empty: the group is gone; read the new stream from its start
            try:
                self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
                return
            except _redis.RedisError as again:
                exc = again
        text = _redis_error(exc, self.url)
        if self.last_error is None:
            log.warning("source %s: %s; retrying with backoff", self.url, text)
        self.last_error = text
        self._stop.wait(self._backoff.next_delay())

    def _read_independent(self) -> list[Any]:
        reply = self._reader.xread(
            {self.stream: self._position}, count=self._count, block=self._block_ms
        )
        events: list[Any] = []
        for entry_id, fields in _entries(reply):
            self._position = _text(entry_id)
            if self._lost_at_start:  # how many is unknown: the entry to count from is gone
                self._lost_at_start = False
                events.append(RelayLoss(1, "trimmed"))
                self._follow(events[-1], self._position, False)
            events.extend(self._take(self._position, fields, False))
        return events

    def _read_group(self) -> list[Any]:
        pending = self._position == "0"
        reply = self._reader.xreadgroup(
            self.group, self.consumer, {self.stream: self._position},
            count=self._count, block=None if pending else self._block_ms,
        )  # fmt: skip
        events: list[Any] = []
        last = ">"  # no more pending entries of this consumer: read new ones
        for entry_id, fields in _entries(reply):
            last = _text(entry_id)
            if fields:  # a pending entry trimmed since comes without fields
                events.extend(self._take(last, fields, pending))
            elif pending:
                self._redis.xack(self.stream, self.group, entry_id)
        if pending:
            self._position = last
        return events

    def _keep_alive(self) -> None:
        """(Thread ``mmws-source-touch``, with a group.) Every ``claim_idle / 3`` seconds,
        reset the idle time of the entries this consumer holds (read ahead into its queue,
        or delivered and not acknowledged): the entries of a live consumer are never
        claimed, however far behind it is; only those of one that stopped. A thread of its
        own, since the reader waits while the queue is full, and ``get()`` must never wait
        for Redis."""
        while not self._stop.wait(self._claim_idle / 3):
            try:
                self._touch()
            except Exception:  # Redis away (the reader reports it), or closing
                continue

    def _touch(self) -> None:
        with self._lock:
            held = list(self._queued)
        for start in range(0, len(held), 1000):
            self._redis.xclaim(
                self.stream, self.group, self.consumer, 0, held[start : start + 1000],
                justid=True,
            )  # fmt: skip

    def _claim(self) -> list[Any]:
        """Entries a consumer of the group left unacknowledged for ``claim_idle``."""
        events: list[Any] = []
        cursor = "0-0"
        while True:
            reply = self._redis.xautoclaim(
                self.stream, self.group, self.consumer,
                min_idle_time=int(self._claim_idle * 1000), start_id=cursor, count=self._count,
            )  # fmt: skip
            cursor = _text(reply[0])
            for entry_id, fields in reply[1] or ():
                text = _text(entry_id)
                with self._lock:
                    mine = text in self._queued
                if fields and not mine:
                    events.extend(self._take(text, fields, True))
            if cursor == "0-0" or not reply[1]:
                return events

    def _take(self, entry_id: str, fields: Mapping[Any, Any], redelivered: bool) -> list[Any]:
        """The events of one entry: the event itself, after a :class:`RelayLoss` for the
        entries a gap in the relay's numbering shows were trimmed (independent cursor);
        a repeat of an entry already read is skipped."""
        event, envelope = self._decoder.decode(_fields(fields))
        out: list[Any] = []
        if self.group is None and envelope.number is not None:
            missing = self._numbering.check(envelope.run, envelope.number)
            if missing is None:
                return out  # the relay wrote it twice (a batch retried after a lost answer)
            if missing:
                out.append(RelayLoss(missing, "trimmed"))
                self._follow(out[-1], entry_id, envelope.snapshot)
        self._follow(event, entry_id, envelope.snapshot)
        info = Entry(entry_id, redelivered, envelope.number, envelope.run, envelope.line)
        with self._lock:
            self._outstanding[id(event)] = (event, info)
            if self.group is not None:
                self._queued.add(entry_id)
            else:
                while len(self._outstanding) > _KEEP + self._queue.maxsize:
                    self._outstanding.popitem(last=False)
        out.append(event)
        return out

    def _follow(self, event: Any, entry_id: str, snapshot: bool) -> None:
        """Keep :attr:`state` with the stream (before the event is queued)."""
        state = self.state
        if state is None:
            return
        kind = type(event)
        if kind in (Disconnected, GapDetected, RelayLoss) and getattr(event, "line", None) is None:
            state.mark_unsynced()
            self._need_snapshot = True
        elif kind is Resynced:
            self._need_snapshot = True
        else:
            state.apply(event)
            state.publish()
        if self._need_snapshot and (snapshot or kind is RelayLoss):
            saved = self._redis.hgetall(f"{self.stream}:state")
            at = _saved_id(saved)
            if at is not None and at >= _id_key(entry_id):
                self._load(saved)

    def _load(self, saved: Mapping[bytes, bytes]) -> bool:
        """Load a snapshot the relay wrote; False (logged, the state left unsynced until
        the next one) when it is damaged."""
        assert self.state is not None
        try:
            snapshot = decode_snapshot(saved.get(b"state", b""))
        except (RemoteProtocolError, RecursionError) as exc:
            log.warning("source %s: the relay's state snapshot is damaged (%s); waiting "
                        "for the next one", self.url, exc)  # fmt: skip
            self.state.mark_unsynced()
            self._need_snapshot = True
            return False
        self.state.load(snapshot)
        self._need_snapshot = False
        return True


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _entries(reply: Any) -> list[Any]:
    """The ``(id, fields)`` pairs of an XREAD or XREADGROUP reply of one stream, in either
    shape redis-py gives (a list of ``[stream, entries]``, or a dict with RESP3)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (item[1] for item in reply)
    return [tuple(entry) for entries in streams for entry in (entries or ())]


def _fields(fields: Any) -> Mapping[Any, Any]:
    """An entry's fields as a mapping (RESP3 may give a flat list)."""
    if isinstance(fields, Mapping):
        return fields
    items = list(fields or ())
    return dict(zip(items[::2], items[1::2], strict=False))

