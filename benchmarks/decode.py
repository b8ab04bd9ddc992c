"""Decode cost of one MM frame: ``json.loads`` alone against the full typed decode.

Run ``python benchmarks/decode.py``. For each frame (the seed's order fill, a bet INSERT and a
score UPDATE) it times, in alternating rounds so that both see the same machine state:

(a) ``json.loads(frame)``;
(b) ``MMProtocol.receive_text(frame, now)`` + ``events_received()``, giving the typed event.

It prints the median over rounds of the per-frame time in microseconds and the ratio b/a
(target: the full decode within 3x of ``json.loads``).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mmws import BetEvent, MMProtocol, OrderEvent, ScoreEvent

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
TARGET_RATIO = 3.0


def compact(name: str) -> str:
    """The seed fixture as a server would send it: one line, no indentation."""
    return json.dumps(json.loads((DATA / f"{name}.json").read_text(encoding="utf-8")))


SCORE_UPDATE = compact("seed_score_update")
FRAMES: list[tuple[str, str, type]] = [
    ("order fill (UPDATE + old)", compact("seed_order_fill"), OrderEvent),
    ("bet INSERT", compact("seed_bet_placed"), BetEvent),
    ("score UPDATE", SCORE_UPDATE, ScoreEvent),
]


def time_per_call(fn: Callable[[], object], number: int) -> float:
    """Seconds per call of ``fn`` over ``number`` calls (garbage collection paused)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    finally:
        if gc_was_enabled:
            gc.enable()


def bench(frame: str, expected: type, rounds: int, number: int) -> tuple[float, float]:
    """Median microseconds per frame for (json.loads, full decode), measured interleaved."""
    proto = MMProtocol()
    receive, drain, loads = proto.receive_text, proto.events_received, json.loads

    def parse_only() -> object:
        return loads(frame)

    def full_decode() -> object:
        receive(frame, 1.0)
        return drain()

    receive(frame, 1.0)
    events = drain()
    assert len(events) == 1 and type(events[0]) is expected, events
    for fn in (parse_only, full_decode):  # warm up
        time_per_call(fn, number // 10 or 1)

    loads_times: list[float] = []
    decode_times: list[float] = []
    for i in range(rounds):
        # alternate which one goes first, so neither always follows the other
        order = [(parse_only, loads_times), (full_decode, decode_times)]
        if i % 2:
            order.reverse()
        for fn, sink in order:
            sink.append(time_per_call(fn, number))
    return statistics.median(loads_times) * 1e6, statistics.median(decode_times) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds (default 15)")
    parser.add_argument("--number", type=int, default=20_000, help="frames per round")
    args = parser.parse_args(argv)

    print(f"Python {sys.version.split()[0]}, {args.rounds} rounds x {args.number} frames, median")
    print(f"{'frame':<28}{'json.loads':>14}{'full decode':>14}{'ratio':>8}")
    worst = 0.0
    for label, frame, expected in FRAMES:
        loads_us, decode_us = bench(frame, expected, args.rounds, args.number)
        ratio = decode_us / loads_us
        worst = max(worst, ratio)
        print(f"{label:<28}{loads_us:>11.2f} us{decode_us:>11.2f} us{ratio:>7.2f}x")
    verdict = "within" if worst <= TARGET_RATIO else "OVER"
    print(f"worst ratio {worst:.2f}x: {verdict} the {TARGET_RATIO:g}x target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
