"""``RedisSource``: the events of a relayed stream, read back (see :mod:`mmws.redis`).

An independent reader checks the relay's numbering; a consumer in a group acknowledges,
keeps what it holds from being claimed, and claims what a stopped consumer held. With
``state=True`` it starts from the relay's state snapshot and follows the stream."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

from mmws._backoff import Backoff
from mmws._delivery import EventQueue
from mmws._redisconn import (
    DEFAULT_URL,
    ENTRY_ID,
    RedisError,
    ResponseError,
    as_text,
    check_positive,
    check_stream,
    connect_redis,
    entry_fields,
    id_key,
    redacted_url,
    redis_error,
    reply_entries,
    saved_id,
)
from mmws._relaywire import EntryDecoder, Numbering, RelayLoss, decode_snapshot
from mmws._secret import Secret
from mmws.errors import ConfigError, ConnectError, MmwsError, RemoteProtocolError
from mmws.lifecycle import Disconnected
from mmws.mm.events import GapDetected, Resynced
from mmws.mm.state import MMState

__all__ = ["Entry", "RedisSource"]

log = logging.getLogger("mmws.redis")

_KEEP: Final = 1024  # entries remembered after delivery, for entry() without a group


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
        self.stream = check_stream(stream)
        if group is not None and (not isinstance(group, str) or not group):
            raise ConfigError(f"group must be a non-empty string or None, got {group!r}")
        if consumer is not None and (not isinstance(consumer, str) or not consumer):
            raise ConfigError(f"consumer must be a non-empty string or None, got {consumer!r}")
        if consumer is not None and group is None:
            raise ConfigError("consumer names a consumer of a group: give group= too")
        if not isinstance(start, str) or not (start in ("$", "0") or ENTRY_ID.fullmatch(start)):
            raise ConfigError(f"start must be '$', '0' or a stream id like '1700000000000-0', "
                              f"got {start!r}")  # fmt: skip
        if state and group is not None:
            raise ConfigError("state=True needs every entry: it cannot be used with a group")
        if state and start != "$":
            raise ConfigError("state=True starts from the relay's snapshot: leave start out")
        check_positive("claim_idle", claim_idle)
        check_positive("maxsize", maxsize, integer=True)
        check_positive("count", count, integer=True)
        check_positive("block", block)
        check_positive("timeout", timeout)
        if not block < timeout:
            raise ConfigError(f"block ({block}) must be shorter than timeout ({timeout})")
        self.url = redacted_url(url)
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
        self._redis: Any = connect_redis(Secret(url), timeout)
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
            self._reader = connect_redis(Secret(url), timeout, single=True)  # connects now
        except RedisError as exc:
            self._redis.close()
            raise ConnectError(f"cannot reach Redis: {redis_error(exc, self.url)}") from None
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
        except RedisError as exc:
            raise ConnectError(f"acknowledge failed: {redis_error(exc, self.url)}") from None
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
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            return "0"  # first this consumer's own pending entries, then new ones
        if self.state is not None:
            saved = r.hgetall(f"{self.stream}:state")
            if saved_id(saved) is not None and self._load(saved):
                run, number = as_text(saved.get(b"run", b"")), as_text(saved.get(b"n", b""))
                if run and number.isdigit():  # reading starts after the snapshot's entry
                    self._numbering.run, self._numbering.number = run, int(number)
                return as_text(saved[b"id"])
            self._need_snapshot = True
            self._numbering.whole = True
            return "0-0"
        if start == "$":
            last = r.xrevrange(self.stream, count=1)
            if last:
                self._resume_at(last[0][1])
            return as_text(last[0][0]) if last else "0-0"
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
        _, envelope = self._decoder.decode(entry_fields(fields))
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
                if not isinstance(exc, RedisError):
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
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc) and self.group:
            # Redis restarted empty: the group is gone; read the new stream from its start
            try:
                self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
                return
            except RedisError as again:
                exc = again
        text = redis_error(exc, self.url)
        if self.last_error is None:
            log.warning("source %s: %s; retrying with backoff", self.url, text)
        self.last_error = text
        self._stop.wait(self._backoff.next_delay())

    def _read_independent(self) -> list[Any]:
        reply = self._reader.xread(
            {self.stream: self._position}, count=self._count, block=self._block_ms
        )
        events: list[Any] = []
        for entry_id, fields in reply_entries(reply):
            self._position = as_text(entry_id)
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
        for entry_id, fields in reply_entries(reply):
            last = as_text(entry_id)
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
            cursor = as_text(reply[0])
            for entry_id, fields in reply[1] or ():
                text = as_text(entry_id)
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
        event, envelope = self._decoder.decode(entry_fields(fields))
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
            at = saved_id(saved)
            if at is not None and at >= id_key(entry_id):
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
