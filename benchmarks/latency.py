"""Arrival-to-``get()`` latency of ``MMClient`` at a steady 2,000 events/s.

Run: ``python benchmarks/latency.py [--rate 2000] [--seconds 5]``. Each event carries
``received_at``, the ``time.monotonic()`` reading taken right after its frame was read from
the socket; the consumer subtracts it from ``time.monotonic()`` when ``get()`` returns. The
simulator runs in a child process, as a real server would be elsewhere: in-process, its
sending threads would compete with the client for the GIL. For scale, the same run measures
a bare ``queue.Queue`` hand-off between two threads at the same rate (the floor of any
threaded design) and prints both.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import statistics
import threading
import time
from typing import Any

import mmws
from mmws.sim import Simulator


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def serve(conn: Any) -> None:
    """The child process: a simulator that bursts on request."""
    with Simulator(rate=0, heartbeat_interval=None) as sim:
        conn.send((sim.mm_url, sim.api_key))
        while True:
            request = conn.recv()
            if request is None:
                return
            count, rate = request
            conn.send(sim.burst(count, rate=rate))


def measure_mmws(conn: Any, url: str, key: str, rate: float, count: int) -> list[float]:
    latencies: list[float] = []
    with mmws.MMClient(key, channels=["orders"], url=url) as client:
        conn.send((count, rate))
        while len(latencies) < count:
            event = client.get(10.0)
            if type(event) is mmws.OrderEvent:
                latencies.append(time.monotonic() - event.received_at)
        conn.recv()
    return latencies


def measure_queue(rate: float, count: int) -> list[float]:
    handoff: queue.Queue[float] = queue.Queue()

    def produce() -> None:
        interval = 1.0 / rate
        next_at = time.monotonic()
        for _ in range(count):
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            handoff.put(time.monotonic())

    producer = threading.Thread(target=produce)
    producer.start()
    latencies = []
    for _ in range(count):
        sent = handoff.get()
        latencies.append(time.monotonic() - sent)
    producer.join()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(child,))
    server.start()
    try:
        url, key = parent.recv()
        measure_mmws(parent, url, key, args.rate, min(count, 1000))  # warm-up
        ours = measure_mmws(parent, url, key, args.rate, count)
    finally:
        parent.send(None)
        server.join(10)
    base = measure_queue(args.rate, count)
    for name, values in (("mmws get()", ours), ("queue.Queue hand-off", base)):
        print(
            f"{name:>22}: p50 {_percentile(values, 0.50) * 1e6:7.0f} us, "
            f"p99 {_percentile(values, 0.99) * 1e6:7.0f} us, "
            f"mean {statistics.fmean(values) * 1e6:7.0f} us over {len(values)} events"
        )
    p99 = _percentile(ours, 0.99) * 1e6
    print(f"mmws p99 / queue.Queue p99 = {p99 / (_percentile(base, 0.99) * 1e6):.2f}x; "
          f"target p99 < 250 us: {'met' if p99 < 250 else 'NOT met'}")


if __name__ == "__main__":
    main()
