"""Hot standby (``MMClient(lines=2)``): what arbitration costs, and what it buys.

Run: ``python benchmarks/lines.py [--events N] [--rounds R]``.

1. **Arbitration cost** (no sockets): 100 000 decoded scenario broadcasts, each offered by
   two lines to :class:`mmws.mm._arbiter.Arbiter` (the hash of the event plus the counting);
   microseconds per copy.
2. **Latency with a slow line**: the simulator delays line A's frames by 20 ms. Broadcasts
   are published one at a time (200/s) and timed from ``publish()`` to ``get()``; printed:
   p50 and p99 for ``lines=1`` (only line A) and ``lines=2`` (A and a healthy B), same run.
3. **Throughput**: ``lines=1`` and ``lines=2`` read the same burst of order fills (with two
   lines every frame arrives twice) from a simulator in a child process; events/s per round
   and the median of the per-round ratios lines=2 / lines=1.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _burst import BurstServer, scenario_events

import mmws
from mmws.mm._arbiter import Arbiter
from mmws.sim import Simulator


def arbitration_cost(count: int) -> None:
    events = scenario_events(5, count)
    best = float("inf")
    for _ in range(3):
        arbiter = Arbiter(2)
        accept = arbiter.accept
        start = time.perf_counter()
        for index, event in enumerate(events):
            now = index * 1e-4
            accept(0, hash(event), now)
            accept(1, hash(event), now + 5e-5)
        best = min(best, (time.perf_counter() - start) / (2 * len(events)))
    print(f"arbitration: {best * 1e6:.2f} us per copy (hash + count), {len(events):,} events")


def latency(samples: int) -> None:
    with Simulator(rate=0, heartbeat_interval=None) as sim:
        results = {}
        for lines in (1, 2):
            client = mmws.MMClient(sim.api_key, url=sim.mm_url, lines=lines, ping_interval=None)
            client.connect()
            try:
                deadline = time.monotonic() + 10
                while len(sim.mm_connections()) < lines and time.monotonic() < deadline:
                    time.sleep(0.01)
                slow = sim.mm_connections()[0]  # line A: the connection made first
                sim.delay_connection(slow.id, 0.020)
                waits = []
                for index in range(samples):
                    sent = time.perf_counter()
                    sim.publish("scores", "UPDATE", {"fixtureId": f"id{index}"})
                    while not isinstance(client.get(timeout=5), mmws.ScoreEvent):
                        pass
                    waits.append(time.perf_counter() - sent)
                    time.sleep(0.005)
                waits.sort()
                results[lines] = (waits[len(waits) // 2], waits[int(len(waits) * 0.99)])
            finally:
                client.close()
        for lines, (p50, p99) in results.items():
            print(f"latency, line A delayed 20 ms, lines={lines}: "
                  f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")


def throughput(server: BurstServer, count: int, lines: int) -> float:
    client = mmws.MMClient(server.api_key, channels=["orders"], url=server.mm_url,
                           lines=lines, ping_interval=None)  # fmt: skip
    client.connect()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            h.state == "connected" for h in client.health().lines
        ):
            time.sleep(0.01)
        start = time.perf_counter()
        burst = server.burst_in_background(count)
        seen = 0
        get = client.get
        while seen < count:
            if type(get(30.0)) is mmws.OrderEvent:
                seen += 1
        elapsed = time.perf_counter() - start
        burst.join()
    finally:
        client.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    arbitration_cost(100_000)
    latency(200)
    server = BurstServer()
    ratios = []
    rates: dict[int, list[float]] = {1: [], 2: []}
    try:
        throughput(server, 1_000, 1)
        throughput(server, 1_000, 2)
        for round_no in range(args.rounds):
            order = (1, 2) if round_no % 2 == 0 else (2, 1)
            got = {lines: throughput(server, args.events, lines) for lines in order}
            for lines, rate in got.items():
                rates[lines].append(rate)
            ratios.append(got[2] / got[1])
            print(f"round {round_no + 1}: lines=1 {got[1]:,.0f}/s, lines=2 {got[2]:,.0f}/s, "
                  f"ratio {ratios[-1]:.2f}")
    finally:
        server.close()
    for lines, values in rates.items():
        print(f"lines={lines}: {statistics.median(values):>10,.0f} events/s (median)")
    print(f"lines=2 / lines=1 = {statistics.median(ratios):.2f}x (median of paired rounds)")


if __name__ == "__main__":
    main()
