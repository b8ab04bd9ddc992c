"""``RedisRelay``: one client's events into a Redis stream (see :mod:`mmws.redis`).

A pump thread moves events from the client's queue into a bounded buffer; a publisher
thread writes the buffer in batches, one Lua call each, and retries with backoff while
Redis is unreachable. The client is never blocked."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any, Final

from mmws._backoff import Backoff
from mmws._redisconn import (
    DEFAULT_URL,
    RedisError,
    check_positive,
    check_stream,
    connect_redis,
    redacted_url,
    redis_error,
)
from mmws._relaybuffer import Loss, RelayBuffer
from mmws._relaywire import RelayLoss, encode_entry, encode_snapshot
from mmws._secret import Secret
from mmws.errors import ConfigError, MmwsError
from mmws.mm.client import MMClient
from mmws.mm.events import Resynced
from mmws.mm.state import MMState, StateSnapshot

__all__ = ["RedisRelay"]

log = logging.getLogger("mmws.redis")

_STOP: Final = object()  # put into the client's queue by close(): the pump's last item

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
        self.stream = check_stream(stream)
        check_positive("maxlen", maxlen, integer=True)
        check_positive("buffer", buffer, integer=True)
        check_positive("batch", batch, integer=True)
        check_positive("snapshot_interval", snapshot_interval)
        check_positive("timeout", timeout)
        self._backoff = Backoff(backoff_base, backoff_cap)
        self._url = Secret(url) if isinstance(url, str) else None
        if self._url is None:
            raise ConfigError(f"url must be a string, got {type(url).__name__}")
        self.url = redacted_url(url)
        """The Redis URL, its password hidden."""
        self.maxlen = maxlen
        self._client = client
        try:
            self._state: MMState | None = client.state
        except ConfigError:
            self._state = None  # a client without state=True: no snapshots
        self._snapshot_interval = snapshot_interval
        self._timeout = timeout
        self._redis: Any = connect_redis(self._url, timeout)
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
            except RedisError as exc:
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
        text = redis_error(exc, self.url)
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
