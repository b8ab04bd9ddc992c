"""The simulator's one timer thread: heartbeats, delayed pongs, token expiry, batch updates."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["_Timer"]

logger = logging.getLogger("mmws.sim")


class _Timer:
    """One thread running callbacks at given monotonic times."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Callable[[], object]]] = []
        self._seq = itertools.count()
        self._stopped = False
        self.thread = threading.Thread(target=self._run, name="mmws-sim-timer", daemon=True)
        self.thread.start()

    def call_later(self, delay: float, fn: Callable[[], object]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn))
            self._cond.notify()

    def call_every(self, interval: float, fn: Callable[[], object]) -> None:
        def tick() -> None:
            self.call_later(interval, tick)
            fn()

        self.call_later(interval, tick)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, fn = heapq.heappop(self._heap)
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            try:
                fn()
            except Exception:  # a callback must never kill the timer
                logger.exception("simulator timer callback failed")


# -- listener --------------------------------------------------------------------------------
