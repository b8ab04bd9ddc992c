"""Events/s through Redis (RedisRelay -> redis-server -> RedisSource) vs a direct MMClient.

End to end as a consumer in another process sees them, and the relay's own publish rate,
side by side with a direct client in one interleaved run; and the added latency.

Run by hand (never part of the tests; it asserts nothing about timings)::

    python benchmarks/relay.py                   # 5 rounds of 20,000 events, ~45 s on 2 cores
    python benchmarks/relay.py --rounds 3 --events 10000
    python benchmarks/relay.py --quick           # tiny counts, 1 round: a smoke test (< 30 s)

Processes, all on 127.0.0.1:

- the simulator (:class:`mmws.sim.Simulator`) in a ``spawn`` child process (a real server is
  elsewhere too; in-process its threads would compete for the GIL). At start it encodes
  ``--events`` (or the latency run's count, if more) scenario broadcasts
  (:class:`~mmws.sim.scenario.Scenario`, a seeded mix of orders, bets, accounts, scores and
  emergencies) and, asked through a pipe, queues the first ``count`` of them with
  ``send_raw`` to the MM connection, so every measurement reads the very same events and
  the simulator's own generation (~15,000 events/s for ``sim.step``) does not cap the
  rates. ``--step`` uses ``sim.step(count)`` instead (fresh scenario events each time,
  generated while sent);
- redis-server (:class:`mmws.testing.RedisServer`), a fresh stream per measurement, deleted
  after it;
- each consumer in its own child process (this script with ``--consumer``): a
  ``RedisSource(start="0")`` (an independent cursor) taking events with ``get()``; it prints
  ``subscribed`` when the relayed ``Subscribed`` arrives and, at the end, its count and
  times as one JSON line. A consumer elsewhere is how the relay is used, and it does not
  share the relaying process's GIL.

Peers, each on a fresh MM connection per measurement (connecting is not timed):

- ``direct``: ``MMClient(..., ping_interval=None, maxsize=100_000)``, ``get()`` in a loop;
- ``relayed``: the same client, its events published by ``RedisRelay`` (its defaults:
  batches of up to 500 entries, one Lua call each) in this process, read by 1 consumer;
- ``relayed x3``: the same with 3 consumers, each reading the whole stream (fan-out).

Numbers printed:

- **throughput**: events/s = (N - 1) / (time from the first to the N-th broadcast event as
  the reader's ``get()`` returns it); relayed: as the consumer sees it (with 3 consumers:
  the slowest one, and all deliveries together over the span from the first consumer's
  first event to the last one's last). **Relay publish rate**: ``relay.published`` sampled
  every millisecond, its rise from the first sample past the lifecycle entries to the
  sample holding all N, over that time. After an uncounted warm-up round, every round runs
  each peer one after another (the starting peer rotates), so noise hits all alike. Per
  peer: median and (min-max) over rounds; ratios: median and (min-max) of per-round pairs.
- **latency**: the simulator sends the events paced at ``--rate``/s for ``--seconds``;
  latency = ``time.monotonic()`` when ``get()`` returned minus the event's ``received_at``
  (the ``time.monotonic()`` at which the *relaying* client read the frame; the relay
  carries it in the entry, and one host has one monotonic clock, so the consumer process
  can subtract it). ``direct`` is the same measure inside the client: read -> ``get()``.

The first line says whether redis-py found ``hiredis`` (its C parser and packer): without
it, redis-py encodes commands and parses replies in Python, a large part of both the
relay's and each consumer's time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import secrets
import select
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import redis
from redis.utils import HIREDIS_AVAILABLE as HIREDIS

import mmws

TIMEOUT = 15.0  # seconds any single wait may take before a measurement counts as failed
SEED = 7
PEERS = ("direct", "relayed", "relayed x3")


# -- the simulator, in a child process -------------------------------------------------------


class SimServer:
    """A simulator in a ``spawn`` child; ``start(count, rate)`` has it send the first
    ``count`` of its pre-encoded scenario frames (paced at ``rate``/s, or at once),
    ``finish()`` waits until they are queued."""

    def __init__(self, frames: int, step: bool) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(child, frames, step), daemon=True, name="bench-sim"
        )
        self._process.start()
        child.close()
        if not self._conn.poll(60.0):
            self.close()
            raise RuntimeError("the simulator child did not start")
        self.mm_url, self.api_key, self.mix = self._conn.recv()
        self.pid = self._process.pid
        self._pending = False

    def start(self, count: int, rate: float | None = None) -> None:
        self._conn.send((count, rate))
        self._pending = True

    def finish(self, timeout: float = TIMEOUT) -> None:
        if not self._pending:
            return
        self._pending = False
        if not self._conn.poll(timeout):
            raise TimeoutError("the simulator did not finish sending")
        self._conn.recv()

    def settle(self) -> None:
        """``finish()`` for a cleanup: a simulator that is gone is no error here."""
        try:
            self.finish()
        except (TimeoutError, EOFError, OSError):
            pass

    def alive(self) -> bool:
        return self._process.is_alive()

    def close(self) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass  # the child is gone already (Ctrl-C reached it too)
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._conn.close()


def _serve(conn: Any, count: int, step: bool) -> None:
    from mmws.sim import Simulator
    from mmws.sim.actions import encode
    from mmws.sim.scenario import Scenario

    try:
        with Simulator(rate=0, heartbeat_interval=None, max_send_queue=200_000) as sim:
            client = sim.api_keys[sim.api_key]
            events = Scenario(SEED, [client]).take(count)
            frames = [encode(event.frame()) for event in events]
            mix = Counter(event.channel for event in events)
            conn.send((sim.mm_url, sim.api_key, dict(mix)))
            send = sim.send_raw
            while (asked := conn.recv()) is not None:
                n, rate = asked
                if rate is None and step:
                    sim.step(n)
                elif rate is None:
                    for frame in frames[:n]:
                        send(frame, "mm")
                else:
                    begin = time.perf_counter()
                    for index, frame in enumerate(frames[:n]):
                        delay = begin + index / rate - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)  # pacing, not synchronisation
                        send(frame, "mm")
                conn.send(n)
    except (KeyboardInterrupt, EOFError):
        pass  # Ctrl-C (the terminal sends it to every process) or the parent went away


# -- the consumer, in a child process (this script with --consumer) --------------------------


def consumer_main(url: str, stream: str, count: int, latency: bool) -> None:
    """Read ``count`` broadcasts from ``stream``; print ``subscribed`` when the relayed
    ``Subscribed`` arrives, then one JSON line: times (monotonic), losses, latencies."""
    source = mmws.RedisSource(url, stream=stream, start="0")
    try:
        get, broadcast, now = source.get, mmws.Broadcast, time.monotonic
        seen = losses = malformed = 0
        first = last = 0.0
        waits: list[float] = []
        while seen < count:
            event = get(TIMEOUT)
            at = now()
            if isinstance(event, broadcast):
                if not seen:
                    first = at
                seen += 1
                last = at
                if latency:
                    waits.append(at - event.received_at)
            elif type(event) is mmws.Subscribed:
                print("subscribed", flush=True)
            elif type(event).__name__ == "RelayLoss":
                losses += event.count
            elif type(event) is mmws.MalformedFrame:
                malformed += 1
        out: dict[str, Any] = {
            "count": seen, "first": first, "last": last, "losses": losses,
            "malformed": malformed,
        }  # fmt: skip
        if latency:
            out["latency"] = _latency_summary(waits)
        print(json.dumps(out), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        source.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _latency_summary(waits: list[float]) -> dict[str, float]:
    if not waits:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"p50": _percentile(waits, 0.5), "p99": _percentile(waits, 0.99), "max": max(waits)}


class Consumer:
    """One consumer child process, stopped by its own handle."""

    def __init__(self, url: str, stream: str, count: int, latency: bool = False) -> None:
        args = [sys.executable, os.path.abspath(__file__), "--consumer", url, stream, str(count)]
        if latency:
            args.append("--latency")
        # A session of its own: Ctrl-C reaches only this script, which then stops the child
        # by its handle (else a child still importing mmws prints a traceback).
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, text=True, start_new_session=True
        )

    def line(self, deadline: float) -> str:
        """The child's next line on stdout, waiting until ``deadline`` (monotonic)."""
        out = self.process.stdout
        assert out is not None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("a consumer did not answer in time")
            ready, _, _ = select.select([out], [], [], left)
            if ready:
                text = out.readline()
                if not text:
                    code = self.process.wait(5)
                    raise RuntimeError(f"a consumer ended (exit code {code}) before answering")
                return text.strip()

    def result(self, deadline: float) -> dict[str, Any]:
        while True:
            text = self.line(deadline)
            if text.startswith("{"):
                return dict(json.loads(text))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


# -- the measurements --------------------------------------------------------------------------


class Rig:
    """What every measurement uses: the simulator, redis-server and a Redis connection."""

    def __init__(self, sim: SimServer, server: Any) -> None:
        self.sim, self.server, self.url = sim, server, server.url
        self.admin = redis.Redis.from_url(server.url)

    def alive(self) -> bool:
        process = self.server.process
        return self.sim.alive() and process is not None and process.poll() is None

    def drop(self, stream: str) -> None:
        """Delete a measurement's stream (and the relay's state hash beside it)."""
        try:
            self.admin.delete(stream, f"{stream}:state")
        except redis.RedisError:
            pass  # redis-server is gone: nothing to clean up

    def close(self) -> None:
        self.admin.close()


def _failed(what: str, exc: Exception, rig: Rig) -> None:
    """Report a failed measurement, unless the run itself should stop: Ctrl-C that a
    cleanup turned into another error, or a simulator or redis-server that is gone."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, KeyboardInterrupt):
            raise KeyboardInterrupt from exc
        cause = cause.__context__
    if not rig.alive():
        raise RuntimeError("the simulator or redis-server has gone: stopping") from exc
    print(f"  ! {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def _client(sim: SimServer) -> mmws.MMClient:
    return mmws.MMClient(sim.api_key, url=sim.mm_url, ping_interval=None, maxsize=100_000)


def _until_subscribed(client: mmws.MMClient) -> None:
    while type(client.get(TIMEOUT)) is not mmws.Subscribed:
        pass


def run_direct(rig: Rig, count: int) -> dict[str, float]:
    sim = rig.sim
    client = _client(sim)
    try:
        client.connect()
        _until_subscribed(client)
        get, broadcast, now = client.get, mmws.Broadcast, time.monotonic
        seen = 0
        first = last = 0.0
        sim.start(count)
        while seen < count:
            if isinstance(get(TIMEOUT), broadcast):
                last = now()
                if not seen:
                    first = last
                seen += 1
        sim.finish()
    finally:
        client.close()
        sim.settle()
    return {"rate": (count - 1) / (last - first)}


def run_relayed(rig: Rig, count: int, consumers: int) -> dict[str, float]:
    """End to end through Redis to ``consumers`` child processes; also the relay's rate."""
    sim = rig.sim
    stream = f"bench-relay:{secrets.token_hex(6)}"
    children: list[Consumer] = []
    try:
        children = [Consumer(rig.url, stream, count) for _ in range(consumers)]
        client = _client(sim)
        relay = mmws.RedisRelay(client, url=rig.url, stream=stream)
        try:
            relay.start()
            client.connect()
            deadline = time.monotonic() + 30.0  # includes the children's start-up
            for child in children:
                if child.line(deadline) != "subscribed":
                    raise RuntimeError("a consumer did not see Subscribed first")
            base = relay.published  # Connected, Subscribed: in the stream, seen by all
            target = base + count
            sim.start(count)
            first_at = last_at = 0.0
            first_n = last_n = 0
            deadline = time.monotonic() + TIMEOUT
            while True:
                published, at = relay.published, time.monotonic()
                if not first_n and published > base:
                    first_at, first_n = at, published
                if published >= target:
                    last_at, last_n = at, published
                    break
                if at > deadline:
                    raise TimeoutError(f"the relay published {published - base} of {count}")
                time.sleep(0.001)  # sampling a counter: nothing to wait on
            deadline = time.monotonic() + TIMEOUT
            results = [child.result(deadline) for child in children]
            sim.finish()
        finally:
            relay.close()
            client.close()
            sim.settle()
    finally:
        for child in children:
            child.stop()
        rig.drop(stream)
    for got in results:
        if got["count"] != count or got["losses"] or got["malformed"]:
            raise RuntimeError(f"a consumer saw {got}")
    if relay.dropped:
        raise RuntimeError(f"the relay dropped {relay.dropped} events")
    rates = [(count - 1) / (got["last"] - got["first"]) for got in results]
    span = max(got["last"] for got in results) - min(got["first"] for got in results)
    publish = (last_n - first_n) / (last_at - first_at) if last_n > first_n else float("nan")
    return {"rate": min(rates), "all": consumers * count / span, "publish": publish}


def _measure(peer: str, rig: Rig, count: int) -> dict[str, float] | None:
    try:
        if peer == "direct":
            return run_direct(rig, count)
        return run_relayed(rig, count, 3 if peer == "relayed x3" else 1)
    except Exception as exc:  # a failed measurement is reported, not fatal
        _failed(f"{peer} ({count:,} events)", exc, rig)
        return None


def _span(values: list[float], fmt: str, unit: str) -> str:
    """``median<unit> (min-max)`` of ``values``, formatted with ``fmt``."""
    if not values:
        return "n/a"
    mid = format(statistics.median(values), fmt) + unit
    if len(values) == 1:
        return mid
    return f"{mid} ({format(min(values), fmt)}-{format(max(values), fmt)})"


Row = dict[str, dict[str, float] | None]


def _values(rows: list[Row], peer: str, key: str) -> list[float]:
    return [r[key] for row in rows if (r := row[peer]) is not None]


def _ratios(rows: list[Row], a: tuple[str, str], b: tuple[str, str]) -> list[float]:
    out = []
    for row in rows:
        top, bottom = row[a[0]], row[b[0]]
        if top is not None and bottom is not None:
            out.append(top[a[1]] / bottom[b[1]])
    return out


def throughput(rig: Rig, args: argparse.Namespace) -> None:
    print("warm-up round (not counted)...", flush=True)
    for peer in PEERS:
        _measure(peer, rig, max(100, args.events // 10))
    rows: list[Row] = []
    for round_no in range(args.rounds):
        shift = round_no % len(PEERS)
        row: Row = {}
        for peer in PEERS[shift:] + PEERS[:shift]:
            row[peer] = _measure(peer, rig, args.events)
        rows.append(row)
        cells = []
        for peer in PEERS:
            got = row[peer]
            if got is None:
                cells.append(f"{peer} fail")
                continue
            text = f"{peer} {got['rate']:,.0f}"
            if "publish" in got:
                text += f" (publish {got['publish']:,.0f})"
            cells.append(text)
        print(f"round {round_no + 1}/{args.rounds}: " + " | ".join(cells), flush=True)

    print(f"\nthroughput, events/s: median (min-max) over {args.rounds} round(s), "
          f"{args.events:,} broadcasts each")  # fmt: skip
    lines = [
        ("direct: MMClient.get()", "direct", "rate"),
        ("relayed, 1 consumer: end to end", "relayed", "rate"),
        ("  relay publish rate (relay.published)", "relayed", "publish"),
        ("relayed, 3 consumers: slowest consumer", "relayed x3", "rate"),
        ("  all 3 consumers together (deliveries)", "relayed x3", "all"),
        ("  relay publish rate (relay.published)", "relayed x3", "publish"),
    ]
    for label, peer, key in lines:
        print(f"  {label:<42} {_span(_values(rows, peer, key), ',.0f', '/s')}")
    print("ratios: median (min-max) of per-round pairs")
    pairs = [
        ("relayed (1 consumer) / direct", ("relayed", "rate"), ("direct", "rate")),
        ("relay publish rate / direct", ("relayed", "publish"), ("direct", "rate")),
        ("relayed x3 (slowest) / direct", ("relayed x3", "rate"), ("direct", "rate")),
        ("relayed x3 (slowest) / relayed x1", ("relayed x3", "rate"), ("relayed", "rate")),
    ]
    for label, a, b in pairs:
        print(f"  {label:<42} {_span(_ratios(rows, a, b), '.2f', 'x')}")


def latency(rig: Rig, args: argparse.Namespace) -> None:
    sim = rig.sim
    count = max(1, int(args.rate * args.seconds))
    print(f"\nlatency, {count:,} events paced at {args.rate:,.0f}/s for {args.seconds:g} s: "
          "received_at (the relaying client's read) -> get() returned")  # fmt: skip

    def show(name: str, summary: dict[str, float]) -> None:
        print(f"  {name:<42} p50 {summary['p50'] * 1e6:7.0f} us, "
              f"p99 {summary['p99'] * 1e6:7.0f} us, max {summary['max'] * 1e6:7.0f} us")

    try:
        client = _client(sim)
        try:
            client.connect()
            _until_subscribed(client)
            waits: list[float] = []
            sim.start(count, args.rate)
            while len(waits) < count:
                event = client.get(TIMEOUT)
                at = time.monotonic()
                if isinstance(event, mmws.Broadcast):
                    waits.append(at - event.received_at)
            sim.finish()
        finally:
            client.close()
            sim.settle()
        show("direct (in the client)", _latency_summary(waits))
    except Exception as exc:
        _failed("latency, direct", exc, rig)

    stream = f"bench-relay:{secrets.token_hex(6)}"
    child: Consumer | None = None
    try:
        child = Consumer(rig.url, stream, count, latency=True)
        client = _client(sim)
        relay = mmws.RedisRelay(client, url=rig.url, stream=stream)
        try:
            relay.start()
            client.connect()
            if child.line(time.monotonic() + 30.0) != "subscribed":
                raise RuntimeError("the consumer did not see Subscribed first")
            sim.start(count, args.rate)
            got = child.result(time.monotonic() + args.seconds + TIMEOUT)
            sim.finish()
        finally:
            relay.close()
            client.close()
            sim.settle()
        show("relayed (-> Redis -> consumer process)", got["latency"])
    except Exception as exc:
        _failed("latency, relayed", exc, rig)
    finally:
        if child is not None:
            child.stop()
        rig.drop(stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds (default 5)")
    parser.add_argument("--events", type=int, default=20_000,
                        help="broadcasts per measurement (default 20,000)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=2_000.0, help="latency: events/s")
    parser.add_argument("--seconds", type=float, default=3.0, help="latency: seconds")
    parser.add_argument("--step", action="store_true",
                        help="throughput with sim.step(n) (live scenario generation, which "
                             "caps the rates) instead of pre-encoded scenario frames")
    parser.add_argument("--quick", action="store_true",
                        help="tiny counts and 1 round: a smoke test of this script")
    parser.add_argument("--consumer", nargs=3, metavar=("URL", "STREAM", "COUNT"),
                        help=argparse.SUPPRESS)  # the child process's own entry
    parser.add_argument("--latency", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consumer:
        url, stream, count = args.consumer
        consumer_main(url, stream, int(count), args.latency)
        return
    if args.quick:
        args.rounds, args.events, args.seconds = 1, 2_000, 0.5

    from mmws.testing import RedisServer

    frames = max(args.events, int(args.rate * args.seconds))
    with RedisServer() as server:
        sim: SimServer | None = None
        rig: Rig | None = None
        try:
            sim = SimServer(frames, args.step)
            rig = Rig(sim, server)
            version = rig.admin.info("server")["redis_version"]
            print(f"relay: Python {platform.python_version()}, mmws {mmws.__version__}, "
                  f"redis-py {redis.__version__} (hiredis {'yes' if HIREDIS else 'no'}), "
                  f"redis-server {version}, "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
            mix = ", ".join(f"{k} {v / frames:.0%}" for k, v in sorted(sim.mix.items()))
            source = "sim.step(n)" if args.step else "pre-encoded scenario frames"
            print(f"simulator: pid {sim.pid} on {sim.mm_url}, {source} (seed {SEED}: {mix})")
            assert server.process is not None
            print(f"redis-server: pid {server.process.pid} on {server.url}; consumers: child "
                  "processes, RedisSource(start='0') each, a fresh stream per measurement",
                  flush=True)  # fmt: skip
            throughput(rig, args)
            latency(rig, args)
        finally:
            if rig is not None:
                rig.close()
            if sim is not None:
                sim.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
