"""A consumer blocked in ``get()`` sleeps until something happens (no polling), and still
wakes at once for an event, for ``close()`` from another thread and for Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest
from clientutil import collect_until, ctrl_c_works

import mmws
from mmws.sim import Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(rate=0, heartbeat_interval=None) as server:
        yield server


def test_an_event_wakes_a_get_that_waits_without_a_timeout(sim: Simulator) -> None:
    with mmws.MMClient(sim.api_key, url=sim.mm_url, channels=["orders"]) as client:
        collect_until(client, lambda e: isinstance(e, mmws.Subscribed))
        got: list[object] = []
        consumer = threading.Thread(target=lambda: got.append(client.get()), daemon=True)
        consumer.start()
        sim.publish("orders", "INSERT", {"orderId": 5, "orderStatus": "PLACED"})
        consumer.join(10)
        assert not consumer.is_alive()
        assert isinstance(got[0], mmws.OrderEvent) and got[0].payload.order_id == 5


def test_close_from_another_thread_ends_a_get_that_waits_without_a_timeout(
    sim: Simulator,
) -> None:
    client = mmws.MMClient(sim.api_key, url=sim.mm_url, channels=["orders"])
    client.connect()
    collect_until(client, lambda e: isinstance(e, mmws.Subscribed))
    outcome: list[BaseException] = []

    def consume() -> None:
        try:
            while True:
                client.get()
        except BaseException as exc:
            outcome.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    client.close()
    consumer.join(10)
    assert not consumer.is_alive()
    assert isinstance(outcome[0], mmws.ClientClosed)


CHILD = textwrap.dedent(
    """
    import sys, mmws
    client = mmws.MMClient(sys.argv[1], url=sys.argv[2], channels=["orders"])
    client.connect()
    try:  # the Ctrl-C may come while "waiting" is still being printed
        print("waiting", flush=True)
        while True:
            client.get()
    except KeyboardInterrupt:
        client.close()
        print("interrupted", flush=True)
    """
)


def test_ctrl_c_interrupts_a_get_that_waits_without_a_timeout(sim: Simulator) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, sim.api_key, sim.mm_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_works,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "waiting\n"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert out == "interrupted\n", err
    assert child.returncode == 0 and err == ""
