"""Typed events per second through ``MMClient.get()`` against two websocket-client baselines.

Run: ``python benchmarks/throughput.py [--events N] [--rounds R]``. The simulator's burst mode
sends pre-encoded order-fill frames as fast as the socket takes them; in each round the three
consumers run one after another (interleaved, so machine noise hits all three alike):

- ``mmws``: ``MMClient.get()`` returning typed ``OrderEvent`` objects;
- ``recv+loads``: websocket-client ``create_connection(skip_utf8_validation=True)``,
  ``recv()`` + ``json.loads`` in a loop (the floor: no typing, no queue, no threads);
- ``WebSocketApp``: websocket-client's ``WebSocketApp`` with default options and
  ``json.loads`` in ``on_message`` (what most scripts do today).

The simulator runs in a child process, as a real server would be elsewhere: in-process,
its sending thread would compete for the GIL with the consumers (more with mmws's reader
and consumer threads than with the single-threaded baseline).

Printed: the best events/s of each over the rounds, and mmws's ratio to each baseline.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable

import websocket
from _burst import BurstServer as Server

import mmws


def _subscribe_text(key: str) -> str:
    return json.dumps({"type": "subscribe", "apiKey": key, "channels": ["orders"]})


def run_mmws(server: Server, count: int) -> float:
    client = mmws.MMClient(server.api_key, channels=["orders"], url=server.mm_url,
                           maxsize=10_000, ping_interval=None)
    client.connect()
    try:
        start = time.perf_counter()
        burst = server.burst_in_background(count)
        seen = 0
        get = client.get
        while seen < count:
            if type(get(10.0)) is mmws.OrderEvent:
                seen += 1
        elapsed = time.perf_counter() - start
        burst.join()
    finally:
        client.close()
    return count / elapsed


def run_recv_loads(server: Server, count: int) -> float:
    ws = websocket.create_connection(server.mm_url, skip_utf8_validation=True, timeout=10)
    try:
        ws.send(_subscribe_text(server.api_key))
        while json.loads(ws.recv()).get("type") != "subscribed":
            pass
        start = time.perf_counter()
        burst = server.burst_in_background(count)
        seen = 0
        recv, loads = ws.recv, json.loads
        while seen < count:
            if loads(recv()).get("type") == "broadcast":
                seen += 1
        elapsed = time.perf_counter() - start
        burst.join()
    finally:
        ws.close(timeout=1)
    return count / elapsed


def run_websocketapp(server: Server, count: int) -> float:
    subscribed = threading.Event()
    done = threading.Event()
    seen = 0

    def on_open(app: websocket.WebSocketApp) -> None:
        app.send(_subscribe_text(server.api_key))

    def on_message(app: websocket.WebSocketApp, message: str) -> None:
        nonlocal seen
        kind = json.loads(message).get("type")
        if kind == "subscribed":
            subscribed.set()
        elif kind == "broadcast":
            seen += 1
            if seen >= count:
                done.set()

    app = websocket.WebSocketApp(server.mm_url, on_open=on_open, on_message=on_message)
    runner = threading.Thread(target=app.run_forever, name="bench-wsapp", daemon=True)
    runner.start()
    try:
        if not subscribed.wait(10):
            raise RuntimeError("WebSocketApp never subscribed")
        start = time.perf_counter()
        burst = server.burst_in_background(count)
        if not done.wait(120):
            raise RuntimeError(f"WebSocketApp saw {seen} of {count} events")
        elapsed = time.perf_counter() - start
        burst.join()
    finally:
        app.close()
        runner.join(5)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runs: dict[str, Callable[[Server, int], float]] = {
        "mmws": run_mmws,
        "recv+loads": run_recv_loads,
        "WebSocketApp": run_websocketapp,
    }
    best = dict.fromkeys(runs, 0.0)
    server = Server()
    try:
        for run in runs.values():  # warm-up, not counted
            run(server, min(2_000, args.events))
        for round_no in range(1, args.rounds + 1):
            line = []
            for name, run in runs.items():
                rate = run(server, args.events)
                best[name] = max(best[name], rate)
                line.append(f"{name} {rate:,.0f}/s")
            print(f"round {round_no}: " + ", ".join(line))
    finally:
        server.close()
    print()
    for name, rate in best.items():
        print(f"{name:>14}: {rate:>10,.0f} events/s (best of {args.rounds})")
    print(f"mmws / recv+loads   = {best['mmws'] / best['recv+loads']:.2f}x  (target >= 0.8x)")
    print(f"mmws / WebSocketApp = {best['mmws'] / best['WebSocketApp']:.2f}x  (target >= 4x)")


if __name__ == "__main__":
    main()
