"""What the user holds: a client's public face, apart from the machinery its threads run.

A client is two objects. The :class:`~mmws._client.StreamClient` (the engine) owns the
session, the queue and the threads; its threads hold it, so it lives while they run. The
:class:`ClientHandle` (``MMClient``, ``FeedClient``) is what the user's code holds. Nothing
of the engine refers back to it, so when the user's last reference goes (a notebook cell
run again, a client made in a function that returned), the handle is garbage-collected
while the engine still runs. Its finalizer then logs, emits a ``ResourceWarning`` and closes
the engine, on a thread of its own: a finalizer can run on any thread, one of the engine's
own threads holding its lock included, and ``close()`` takes that lock and joins threads.

Two things keep a handle: an iterator over it (``for event in MMClient(key).connect():``
holds nothing else), and an ``on_event`` callback, whose engine refers to its handle from
``connect()`` until it is closed. Such a client is in use, though no name may refer to it;
closing it would stop a consumer without a word.

At interpreter exit the finalizers do not run (``atexit=False``): the threads are daemons,
and the process is ending anyway.
"""

from __future__ import annotations

import logging
import threading
import warnings
import weakref
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mmws._session import Health

if TYPE_CHECKING:
    from mmws._client import StreamClient
    from mmws._delivery import EventQueue

__all__ = ["ClientHandle"]

log = logging.getLogger("mmws.client")

E = TypeVar("E")
H = TypeVar("H", bound="ClientHandle[Any]")


def _collected(engine: StreamClient[Any], name: str) -> None:
    """The finalizer of a handle: the engine it leaves behind is closed if it still runs."""
    if not engine.is_open:
        return
    shown = repr(engine)
    try:
        threading.Thread(
            target=engine.close, name="mmws-close", daemon=True
        ).start()  # fmt: skip
    except RuntimeError:  # pragma: no cover - no new thread at interpreter shutdown
        # The process is ending; the engine's daemon threads end with it.
        return
    log.warning(
        "an open %s was garbage-collected: closing it (%s). Close clients with close() or "
        "'with', or keep a reference while they run",
        name,
        shown,
    )
    warnings.warn(
        f"unclosed {shown}: garbage-collected while open, now closed. Close it with close() or "
        "'with', or keep a reference to it while it runs",
        ResourceWarning,
        stacklevel=3,  # past weakref.finalize: the line that let go of the client, mostly
    )


class ClientHandle(Generic[E]):
    """The methods :class:`mmws.MMClient` and :class:`mmws.FeedClient` share. Not for
    direct use.

    ``E`` is the union of every event the client can deliver (``mmws.MMStreamEvent`` or
    ``mmws.FeedStreamEvent``): :meth:`get`, iteration and ``on_event`` are typed with it."""

    _engine: StreamClient[E]
    _queue: EventQueue

    def _adopt(self, engine: StreamClient[E]) -> None:
        """Hold ``engine``; close it, with a ``ResourceWarning``, if this handle is
        garbage-collected while it still runs."""
        self._engine = engine
        self._queue = engine._queue  # get() without a hop through the engine
        finalizer = weakref.finalize(self, _collected, engine, type(self).__name__)
        finalizer.atexit = False

    def connect(self: H) -> H:
        """Open the connection and block until the server confirms the subscription.

        Returns:
            The client itself.
        """
        self._engine.connect()
        self._pin()
        return self

    def _pin(self) -> None:
        """After a connect: a client with ``on_event`` delivers to its callback, so it is in
        use though nothing may refer to it. Its engine keeps this handle until it is closed:
        never closed under a live callback (a stream that would silently go quiet)."""
        if self._engine._on_event is not None:
            self._engine.pin(self)

    @property
    def queue(self) -> EventQueue:
        """The client's event queue, for its ``get``, ``get_nowait``, ``qsize`` and ``empty``
        (``qsize()`` is what ``health().queue_depth`` reports)."""
        return self._queue

    def get(self, timeout: float | None = None) -> E:
        """The next event, waiting up to ``timeout`` seconds (forever if ``None``).

        Raises ``queue.Empty`` on timeout, like ``queue.Queue``. Once the client is closed
        and every event was taken, raises the fatal error that closed it, or
        ``ClientClosed``.

        Args:
            timeout: Seconds to wait for an event; ``None`` (the default) waits forever.

        Returns:
            mmws.MMStreamEvent | mmws.FeedStreamEvent: The next event: an ``MMStreamEvent``
            from an ``MMClient``, a ``FeedStreamEvent`` from a ``FeedClient``.
        """
        return self._queue.get(True, timeout)  # type: ignore[no-any-return]

    def get_nowait(self) -> E:
        """The next event if one is queued, else ``queue.Empty`` at once.

        Returns:
            mmws.MMStreamEvent | mmws.FeedStreamEvent: The next event, as :meth:`get`.
        """
        return self._queue.get(False)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[E]:
        """Every event, blocking; ends after the final ``Closed`` event.

        Returns:
            Iterator[mmws.MMStreamEvent | mmws.FeedStreamEvent]: The events, in order, as
            :meth:`get` returns them.
        """
        # A generator of this handle: iterating keeps the client, so that
        # ``for event in MMClient(key).connect():`` does not lose it to the collector.
        yield from self._engine.events()

    @property
    def is_open(self) -> bool:
        """``True`` while the client is connected (or connecting, or reconnecting) and not
        closed."""
        return self._engine.is_open

    def health(self) -> Health:
        """A snapshot of the connection: state, times, counters, queue depth, last error.

        Returns:
            A :class:`~mmws.Health`, safe to log (no secret is in it).
        """
        return self._engine.health()

    def ping(self, timeout: float | None = None) -> float:
        """Send a ping and wait for the pong; the round trip in seconds.

        Args:
            timeout: Seconds to wait for the pong; ``None`` uses the client's
                ``pong_timeout``. A pong that does not come in time raises
                ``TransportTimeout``.

        Returns:
            The round trip, in seconds.
        """
        return self._engine.ping(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop: unsubscribe (best effort), close the socket and join every thread.

        Idempotent. Returns within ``timeout`` seconds even when the server is stalled.
        Events already queued stay readable; then ``get()`` raises ``ClientClosed``.

        Args:
            timeout: Seconds to wait, at most, for the goodbye, the sockets and the threads
                (default 5).
        """
        self._engine.close(timeout)

    def __enter__(self: H) -> H:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never raises, even on a half-made client: a traceback rendered with its locals
        # (an error tracker) calls it on a client whose __init__ refused an argument.
        engine = getattr(self, "_engine", None)
        return repr(engine) if engine is not None else f"<{type(self).__name__} state=new>"
