"""What the benchmarks share: a simulator in a child process that sends bursts when asked
(as a real server would be elsewhere: in-process, its sending thread would compete for the
GIL with the client), and scenario broadcasts decoded once by the protocol core."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import mmws
from mmws.mm.protocol import MMProtocol
from mmws.sim import Simulator
from mmws.sim.actions import encode
from mmws.sim.scenario import Scenario

KEY = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"


class BurstServer:
    """A simulator in a child process; ``burst_in_background(n)`` sends ``n`` order
    broadcasts of kind ``event`` (``"UPDATE"`` fills, or ``"INSERT"`` new orders)."""

    def __init__(self, event: str = "UPDATE") -> None:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(child, event), daemon=True
        )
        self._process.start()
        self.mm_url, self.rest_url, self.api_key = self._conn.recv()

    def burst_in_background(self, count: int) -> threading.Thread:
        def run() -> None:
            self._conn.send(count)
            self._conn.recv()

        thread = threading.Thread(target=run, name="bench-burst", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(10)


def _serve(conn: Any, event: str) -> None:
    with Simulator(rate=0, heartbeat_interval=None) as sim:
        conn.send((sim.mm_url, sim.rest_url, sim.api_key))
        while (count := conn.recv()) is not None:
            conn.send(sim.burst(count, event=event))


def scenario_events(seed: int, count: int) -> list[Any]:
    """``count`` scenario broadcasts as the MM protocol core decodes them."""
    proto = MMProtocol()
    proto.subscribe(KEY, list(mmws.CHANNELS))
    proto.receive_text('{"type": "subscribed", "subscriptionId": 1}', 0.0)
    proto.events_received()
    events: list[Any] = []
    for item in Scenario(seed, ["demo"]).take(count):
        proto.receive_text(encode(item.frame()), 0.0)
        events.extend(proto.events_received())
    return events
