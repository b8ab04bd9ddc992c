"""Waiting helpers for client integration tests: every wait has a deadline, none sleeps."""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

KEY = "6f1c1c4e-2f62-4a3e-9d7a-0b3f2a1e9c11"
KEY_B = "0b5e7a52-8f0e-4d7c-a1c3-3b9f1d2e4c55"
UNKNOWN_KEY = "11111111-2222-4333-8444-555555555555"


def ctrl_c_works() -> None:
    """``preexec_fn`` for a child that a test stops with Ctrl-C: a suite started in the
    background (``pytest &``) ignores SIGINT, children inherit that, and Python keeps an
    inherited ignore, so the child would never see the Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def collect_until(
    client: Any, predicate: Callable[[Any], bool], timeout: float = 5.0
) -> list[Any]:
    """Events from ``client.get`` up to and including the first one matching ``predicate``.

    Fails the test (AssertionError listing what did arrive) if none matches in time."""
    deadline = time.monotonic() + timeout
    seen: list[Any] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching event within {timeout} s; got {seen!r}")
        try:
            event = client.get(timeout=min(left, 0.2))
        except queue.Empty:
            continue
        seen.append(event)
        if predicate(event):
            return seen


def of_type(*types: type) -> Callable[[Any], bool]:
    return lambda event: isinstance(event, types)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``condition`` (every 5 ms) until true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        pause.wait(0.005)


def types_of(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]
