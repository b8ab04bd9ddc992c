"""An open client that nobody refers to any more (a notebook cell run again, a client made
in a function that returned) is closed when it is garbage-collected, with a
``ResourceWarning``; one that was closed, or never connected, goes quietly."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from clientutil import collect_until, of_type, wait_until

import mmws
from mmws.sim import Simulator

FAST = {"ping_interval": None, "backoff_base": 0.01, "backoff_cap": 0.05}


def _resource_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def _all_ended(threads: set[threading.Thread], timeout: float = 5.0) -> bool:
    """Every thread of ``threads``, and every ``mmws-close`` thread, ends within ``timeout``."""
    closers = {t for t in threading.enumerate() if t.name == "mmws-close"}
    for thread in threads | closers:
        thread.join(timeout)
    return not any(t.is_alive() for t in threads | closers)


def test_a_cell_run_again_closes_the_first_client_with_a_resource_warning() -> None:
    with Simulator(rate=0) as sim:
        before = set(threading.enumerate())
        client = mmws.MMClient(sim.api_key, url=sim.mm_url, **FAST).connect()  # type: ignore[arg-type]
        engine = client._engine
        first_threads = set(threading.enumerate()) - before
        assert {t.name for t in first_threads} >= {"mmws-reader", "mmws-keepalive"}
        with pytest.warns(ResourceWarning) as caught:
            # The cell, run again: the name is bound to the new client, the first one is
            # referred to by nothing any more.
            client = mmws.MMClient(sim.api_key, url=sim.mm_url, **FAST).connect()  # type: ignore[arg-type]
            gc.collect()
        try:
            texts = _resource_warnings(list(caught))
            assert len(texts) == 1
            (where,) = [w.filename for w in caught if w.category is ResourceWarning]
            assert where == __file__  # the line that let go of the first client
            assert texts[0].startswith("unclosed <MMClient url=") and "close()" in texts[0]
            assert sim.api_key not in texts[0]
            assert _all_ended(first_threads)  # the first client's threads, joined
            assert not engine.is_open
            assert engine.health().state == "closed"
            assert sim.wait_for(lambda: len(sim.active_connections) == 1, timeout=5)
            assert client.is_open and mmws.MMClient.open_clients() == [client]
            sim.publish("orders", "INSERT", {"orderId": 7}, require=True)  # the second runs on
            got = collect_until(client, of_type(mmws.OrderEvent))
            assert got[-1].payload.order_id == 7
        finally:
            client.close()


def _mm_lines(sim: Simulator) -> Any:
    return mmws.MMClient(sim.api_key, url=sim.mm_url, lines=2, **FAST)  # type: ignore[arg-type]


def _mm_state(sim: Simulator) -> Any:
    return mmws.MMClient(
        sim.api_key,
        url=sim.mm_url,
        state=True,
        rest_url=sim.rest_url,
        **FAST,  # type: ignore[arg-type]
    )


def _feed(sim: Simulator) -> Any:
    return mmws.FeedClient(url=sim.feed_url, **FAST)  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [_mm_lines, _mm_state, _feed], ids=["lines", "state", "feed"])
@pytest.mark.parametrize("cycle", [False, True], ids=["refcount", "cycle"])
def test_a_client_dropped_while_open_is_closed(
    make: Callable[[Simulator], Any], cycle: bool
) -> None:
    """A client made in a function that returned without closing it; in a reference
    cycle, only the cyclic collector can free it."""
    with Simulator(rate=0) as sim:
        before = set(threading.enumerate())
        held: list[Any] = []

        def start() -> None:
            client = make(sim).connect()
            if cycle:
                client.itself = client
            held.append(client._engine)  # the engine only: the test keeps no handle
            held.append(set(threading.enumerate()) - before)  # its threads, running

        with pytest.warns(ResourceWarning) as caught:
            start()  # it returns: its client is referred to by nothing any more
            gc.collect()
        engine, threads = held
        assert "mmws-reader" in {t.name.partition("-0")[0] for t in threads}  # it was running
        assert len(_resource_warnings(list(caught))) == 1
        assert _all_ended(threads)
        assert not engine.is_open
        assert sim.wait_for(lambda: not sim.active_connections, timeout=5)


def test_a_closed_or_never_connected_client_is_collected_quietly() -> None:
    with Simulator(rate=0) as sim, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        closed = mmws.MMClient(sim.api_key, url=sim.mm_url, **FAST).connect()  # type: ignore[arg-type]
        closed.close()
        never = mmws.FeedClient(url=sim.feed_url)
        refused = mmws.MMClient("not-a-key", url=sim.mm_url, **FAST)  # type: ignore[arg-type]
        with pytest.raises(mmws.ConfigError):
            refused.connect()
        callback = mmws.MMClient(sim.api_key, url=sim.mm_url, on_event=print)  # never connected
        failed = mmws.MMClient("not-a-key", url=sim.mm_url, on_event=print)
        with pytest.raises(mmws.ConfigError):
            failed.connect()
        gone = [weakref.ref(c) for c in (closed, never, refused, callback, failed)]
        del closed, never, refused, callback, failed
        gc.collect()
        assert [ref() for ref in gone] == [None] * 5  # nothing keeps them: no leak
        assert _resource_warnings(caught) == []
        assert not [t for t in threading.enumerate() if t.name == "mmws-close"]


def test_a_client_with_a_callback_runs_on_with_no_reference_until_closed() -> None:
    """``MMClient(key, on_event=f).connect()``, kept nowhere: its events go to ``f``, so it
    is in use; closing it would cut the callback off without a word. Once closed, it can
    go."""
    with Simulator(rate=0) as sim, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seen: list[Any] = []
        handles: list[weakref.ref[Any]] = []

        def start() -> Any:
            client = mmws.MMClient(sim.api_key, url=sim.mm_url, on_event=seen.append, **FAST)  # type: ignore[arg-type]
            handles.append(weakref.ref(client.connect()))
            return client._engine

        engine = start()
        gc.collect()
        assert handles[0]() is not None and engine.is_open
        sim.publish("orders", "INSERT", {"orderId": 1}, require=True)
        wait_until(lambda: any(isinstance(e, mmws.OrderEvent) for e in seen), 5)
        engine.close()
        gc.collect()
        assert handles[0]() is None  # closed: nothing keeps the handle any more
        assert _resource_warnings(caught) == []


def test_a_loop_over_a_client_it_made_keeps_it() -> None:
    """``for event in MMClient(key).connect():``: the loop holds nothing but the iterator."""
    with Simulator(rate=0) as sim, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got: list[Any] = []
        for event in mmws.MMClient(sim.api_key, url=sim.mm_url, **FAST).connect():  # type: ignore[arg-type]
            gc.collect()
            assert _resource_warnings(caught) == []  # the loop keeps its client
            got.append(event)
            if isinstance(event, mmws.Subscribed):
                sim.publish("orders", "INSERT", {"orderId": 3}, require=True)
            if isinstance(event, mmws.OrderEvent):
                break
        assert got[-1].payload.order_id == 3
        gc.collect()
        assert len(_resource_warnings(caught)) == 1  # the loop ended: nothing keeps it now
        assert mmws.MMClient.open_clients() == []
        assert _all_ended({t for t in threading.enumerate() if t.name.startswith("mmws-reader")})


def test_a_client_collected_inside_threadings_own_lock_does_not_deadlock() -> None:
    """A collection can run anywhere, even while ``threading`` holds the lock that
    ``Thread.start()`` takes (inside ``threading.enumerate()``). The finalizer starts the
    closing thread there: it must return, and the client must close. In a child process,
    so that a deadlock fails the test instead of hanging the suite."""
    code = textwrap.dedent(
        """
        import gc, threading, warnings
        import mmws
        from mmws.sim import Simulator

        warnings.simplefilter("ignore", ResourceWarning)
        with Simulator(rate=0) as sim:
            client = mmws.MMClient(sim.api_key, url=sim.mm_url, ping_interval=None).connect()
            engine = client._engine
            with threading._active_limbo_lock:  # as inside threading.enumerate()
                del client  # the finalizer runs here, under that lock
                gc.collect()
            gone = sim.wait_for(lambda: not sim.active_connections, timeout=10)
            for thread in threading.enumerate():
                if thread.name.startswith("mmws-") and not thread.name.startswith("mmws-sim"):
                    thread.join(5)
            print(gone, engine.health().state)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "closed"]
