"""What the state cache costs: per event on the reader thread, and in throughput.

Run: ``python benchmarks/state.py [--events N] [--rounds R]``.

1. **Apply cost** (no sockets): 100 000 scenario broadcasts, decoded once by the protocol
   core, are applied to an :class:`mmws.MMState`, with a snapshot published after every
   event (the worst case: one frame per read) and once per 32 events (frames that arrive
   together, as under load). Printed in microseconds per event.
2. **Throughput**: ``MMClient(state=False)`` and ``MMClient(state=True)`` read the same burst
   of order INSERTs (each a new order, so the state grows to N orders) from a simulator in a
   child process, taking typed events with ``get()``. Each round runs both, alternating
   which goes first; printed: events/s per round, the median of each, and the median of the
   per-round ratios state=True / state=False (the aim is >= 0.9x).
"""

from __future__ import annotations

import argparse
import statistics
import time

from _burst import BurstServer, scenario_events

import mmws


def apply_cost(count: int) -> None:
    events = scenario_events(7, count)
    for label, every in (("publish per event", 1), ("publish per 32 events", 32)):
        timings = []
        for _ in range(3):
            state = mmws.MMState()
            apply, publish = state.apply, state.publish
            start = time.perf_counter()
            for index, event in enumerate(events):
                apply(event)
                if index % every == 0:
                    publish()
            publish()
            timings.append((time.perf_counter() - start) / len(events))
        print(f"apply, {label:<22} {min(timings) * 1e6:6.2f} us/event "
              f"({len(state.orders):,} orders, {len(state.bets):,} bets at the end)")


def run(server: BurstServer, count: int, state: bool) -> float:
    client = mmws.MMClient(
        server.api_key, channels=["orders"], url=server.mm_url, maxsize=10_000,
        ping_interval=None, state=state, audit_interval=None,
    )  # fmt: skip
    client.connect()
    try:
        start = time.perf_counter()
        burst = server.burst_in_background(count)
        seen = 0
        get = client.get
        while seen < count:
            if type(get(30.0)) is mmws.OrderEvent:
                seen += 1
        elapsed = time.perf_counter() - start
        burst.join()
        if state:
            assert len(client.state.orders) >= count and client.state.gaps == 0
    finally:
        client.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    apply_cost(100_000)
    server = BurstServer(event="INSERT")
    rates: dict[bool, list[float]] = {False: [], True: []}
    ratios = []
    try:
        run(server, 2_000, False)  # warm-up
        run(server, 2_000, True)
        for round_no in range(args.rounds):
            order = (False, True) if round_no % 2 == 0 else (True, False)
            got = {flag: run(server, args.events, flag) for flag in order}
            for flag, rate in got.items():
                rates[flag].append(rate)
            ratios.append(got[True] / got[False])
            print(f"round {round_no + 1}: state=False {got[False]:,.0f}/s, "
                  f"state=True {got[True]:,.0f}/s, ratio {ratios[-1]:.2f}")
    finally:
        server.close()
    print()
    for flag, values in rates.items():
        print(f"state={flag!s:<5}: {statistics.median(values):>10,.0f} events/s (median)")
    print(f"state=True / state=False = {statistics.median(ratios):.2f}x "
          "(median of paired rounds; aim >= 0.9x)")


if __name__ == "__main__":
    main()
