"""The hot path of ``mmws.MMClient`` side by side with its peers, in one interleaved run.

Run by hand (never part of the tests; it asserts nothing about timings)::

    python benchmarks/hotpath.py                 # 5 rounds, ~2-3 minutes on 2 cores
    python benchmarks/hotpath.py --rounds 3 --events 40000 --big-events 2000
    python benchmarks/hotpath.py --quick         # tiny counts, 1 round: a smoke test

The server is ``_blaster.py``: a stdlib-only raw WebSocket server in a ``spawn`` child
process on 127.0.0.1 (a real server is elsewhere too; in-process its sending thread would
compete for the GIL). Asked through a pipe, it sends ``count`` identical pre-framed frames of
one kind to the connection that subscribed last, as fast as the socket takes them. Kinds:
``order`` (an ``orders`` UPDATE, ~410 B), ``bet`` (a ``bets`` INSERT, ~340 B), ``score`` (a
``scores`` UPDATE, ~260 B) and ``big`` (an ``orders`` UPDATE of ~65 KB whose payload holds a
free-form nested ``sentData``: 390 dicts of nested dicts, lists, numbers and strings).

Peers, each on a fresh connection per measurement (connecting is not timed):

- ``mmws``: ``MMClient(..., ping_interval=None, maxsize=100_000)``, ``get()`` in a loop,
  counting ``mmws.Broadcast`` events (typed, frozen; decoded on mmws's reader thread);
- ``ws-client``: websocket-client ``create_connection(skip_utf8_validation=True)``,
  ``json.loads(ws.recv())`` in a loop (untyped dicts, one thread);
- ``websockets``: the ``websockets`` sync client with its defaults, ``json.loads(ws.recv())``;
- ``floor``: a minimal framer on a raw socket (big ``recv_into`` buffer, ``json.loads`` per
  frame's decoded text): the floor for untyped stdlib JSON in Python.

Numbers printed:

- **throughput**: events/s = count / (time from asking the blaster to start until the
  consumer holds the count-th event). After an uncounted warm-up round, every round runs
  each kind with every peer one after another (the starting peer rotates per round), so
  machine noise hits all alike. Per kind and peer: the median and (min-max) over rounds.
- **ratios** ``mmws/peer``: mmws's events/s over the peer's *in the same round* (paired),
  median and (min-max) of those per-round ratios; the issue's goals are printed beside them.
- **idle**: a client connected with default keepalive settings sits idle for
  ``--idle-seconds`` while the main thread blocks in ``get(timeout=...)`` (websocket-client:
  in ``recv()`` with a socket timeout). Wake-ups/s is the rise in the summed
  ``voluntary_ctxt_switches`` of ``/proc/self/task/*/status`` over that time, less the
  noise of two back-to-back readings and less 1 for the blocking call's own return at its
  timeout, divided by the seconds; the busiest threads are named. CPU % is the
  ``time.process_time()`` rise over the wall time (this process only, not the blaster).
- **latency**: the blaster sends ``order`` frames paced at ``--rate``/s for ``--seconds``,
  each with its ``time.time()`` in ``payload.sentAt`` (mmws keeps it in ``payload.extra``);
  latency = ``time.time()`` when ``get()`` (resp. ``recv()`` + ``json.loads``) returned
  minus ``sentAt``. p50, p99 and max in microseconds, over all events.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable

import websocket
import websockets
from _blaster import KINDS, Blaster, encode_frame, frame_size, read_http_head
from websockets.sync.client import connect as ws_connect

import mmws

KEY = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
CHANNELS = ["orders", "bets", "scores"]
SUBSCRIBE = json.dumps({"type": "subscribe", "apiKey": KEY, "channels": CHANNELS})
TIMEOUT = 10.0  # seconds any single wait may take before a measurement counts as failed

Run = Callable[[Blaster, str, int], float]


# -- peers: each connects, subscribes, then times `count` events of `kind` ---------------------


def _drain(client: mmws.MMClient) -> None:
    """Take the lifecycle events (Connected, Subscribed) queued by ``connect()``."""
    while True:
        try:
            client.get(0)
        except queue.Empty:
            return


def _mm_client(blaster: Blaster) -> mmws.MMClient:
    with warnings.catch_warnings():  # five clients of one key on purpose (the scaling run)
        warnings.simplefilter("ignore", mmws.DuplicateClientWarning)
        client = mmws.MMClient(KEY, channels=CHANNELS, url=blaster.url, ping_interval=None,
                               maxsize=100_000)
    client.connect()
    return client


def run_mmws(blaster: Blaster, kind: str, count: int) -> float:
    client = _mm_client(blaster)
    try:
        _drain(client)
        get, broadcast = client.get, mmws.Broadcast
        seen = 0
        start = time.perf_counter()
        blaster.start(kind, count)
        while seen < count:
            if isinstance(get(TIMEOUT), broadcast):
                seen += 1
        return count / (time.perf_counter() - start)
    finally:
        client.close()
        blaster.finish()


def _ws_client(blaster: Blaster) -> websocket.WebSocket:
    ws = websocket.create_connection(blaster.url, skip_utf8_validation=True, timeout=TIMEOUT)
    ws.send(SUBSCRIBE)
    while json.loads(ws.recv()).get("type") != "subscribed":
        pass
    return ws


def run_ws_client(blaster: Blaster, kind: str, count: int) -> float:
    ws = _ws_client(blaster)
    try:
        recv, loads = ws.recv, json.loads
        seen = 0
        start = time.perf_counter()
        blaster.start(kind, count)
        while seen < count:
            if loads(recv()).get("type") == "broadcast":
                seen += 1
        return count / (time.perf_counter() - start)
    finally:
        ws.close(timeout=1)
        blaster.finish()


def run_websockets(blaster: Blaster, kind: str, count: int) -> float:
    try:
        with ws_connect(blaster.url, open_timeout=TIMEOUT) as ws:
            ws.send(SUBSCRIBE)
            while json.loads(ws.recv(TIMEOUT)).get("type") != "subscribed":
                pass
            recv, loads = ws.recv, json.loads
            seen = 0
            start = time.perf_counter()
            blaster.start(kind, count)
            while seen < count:
                if loads(recv(TIMEOUT)).get("type") == "broadcast":
                    seen += 1
            return count / (time.perf_counter() - start)
    finally:
        blaster.finish()


def _floor_connect(blaster: Blaster) -> tuple[socket.socket, bytes]:
    """A raw socket after the upgrade and the subscription, and the bytes already read."""
    sock = socket.create_connection(("127.0.0.1", blaster.port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{blaster.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    got = read_http_head(sock)
    if got is None or not got[0].startswith(b"HTTP/1.1 101"):
        raise ConnectionError("floor: the upgrade failed")
    buf = got[1]
    sock.sendall(encode_frame(SUBSCRIBE.encode(), mask_key=os.urandom(4)))
    while True:  # the reply is a short unmasked frame
        while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F):
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("floor: closed before the subscription")
            buf += data
        end = 2 + (buf[1] & 0x7F)
        reply, buf = buf[2:end], buf[end:]
        if json.loads(reply).get("type") == "subscribed":
            return sock, buf


def run_floor(blaster: Blaster, kind: str, count: int) -> float:
    sock, buf = _floor_connect(blaster)
    try:
        loads, recv_into = json.loads, sock.recv_into
        space = bytearray(1 << 18)
        view = memoryview(space)
        seen = pos = 0
        start = time.perf_counter()
        blaster.start(kind, count)
        while True:
            n = len(buf)
            while pos + 2 <= n:
                length = buf[pos + 1] & 0x7F
                if length < 126:
                    body = pos + 2
                elif length == 126:
                    body = pos + 4
                    if body > n:
                        break
                    length = int.from_bytes(buf[pos + 2 : body], "big")
                else:
                    body = pos + 10
                    if body > n:
                        break
                    length = int.from_bytes(buf[pos + 2 : body], "big")
                end = body + length
                if end > n:
                    break
                if buf[pos] & 0x0F == 1 and loads(buf[body:end].decode())["type"] == "broadcast":
                    seen += 1
                pos = end
            if seen >= count:
                return count / (time.perf_counter() - start)
            got = recv_into(space)
            if not got:
                raise ConnectionError("floor: the blaster closed the connection")
            buf = buf[pos:] + view[:got]
            pos = 0
    finally:
        try:
            sock.sendall(encode_frame(b"\x03\xe8", 0x8, mask_key=os.urandom(4)))
        except OSError:
            pass
        sock.close()
        blaster.finish()


# -- another version of mmws, in a child process (--before PATH) ------------------------------

_BEFORE_CHILD = """
import sys, queue, threading, mmws
url, key, channels = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
clients = [mmws.MMClient(key, channels=channels, url=url, ping_interval=None, maxsize=100_000)
           for _ in range(int(sys.argv[4]))]
for client in clients:
    client.connect()
    while True:
        try:
            client.get(0)
        except queue.Empty:
            break
print("ready", mmws.__file__, flush=True)
count = int(sys.stdin.readline())

def consume(client):
    get, broadcast, seen = client.get, mmws.Broadcast, 0
    while seen < count:
        if isinstance(get(10.0), broadcast):
            seen += 1

threads = [threading.Thread(target=consume, args=(c,)) for c in clients]
for thread in threads:
    thread.start()
print("go", flush=True)
for thread in threads:
    thread.join()
print("done", flush=True)
for client in clients:
    client.close()
"""


def _before_run(path: str, blaster: Blaster, kind: str, count: int, clients: int) -> float:
    """Events/s (all clients together) of ``clients`` clients of the mmws at ``path``, in a
    child process, each reading ``count`` frames of ``kind`` (one client: the newest
    connection gets them; several: every connection does, at once)."""
    env = {**os.environ, "PYTHONPATH": path}
    child = subprocess.Popen(
        [sys.executable, "-c", _BEFORE_CHILD, blaster.url, KEY, ",".join(CHANNELS),
         str(clients)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        cwd=path,  # python -c puts the working directory first on sys.path
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    try:
        ready = child.stdout.readline().split()
        if not ready or ready[0] != "ready" or not ready[1].startswith(path):
            raise RuntimeError(f"the child did not import mmws from {path}: {ready}")
        child.stdin.write(f"{count}\n")
        child.stdin.flush()
        if child.stdout.readline().strip() != "go":
            raise RuntimeError("the child did not start its consumers")
        start = time.perf_counter()
        blaster.start(kind, count, fanout=clients > 1)
        if child.stdout.readline().strip() != "done":
            raise RuntimeError("the child did not finish")
        return clients * count / (time.perf_counter() - start)
    finally:
        child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        blaster.finish()


def run_before(path: str) -> Run:
    """The mmws peer, but importing mmws from the checkout at ``path`` (say, main before a
    change), in a child process: both versions meet the same blaster in the same run."""

    def run(blaster: Blaster, kind: str, count: int) -> float:
        return _before_run(path, blaster, kind, count, 1)

    return run


PEERS: dict[str, Run] = {
    "mmws": run_mmws,
    "ws-client": run_ws_client,
    "websockets": run_websockets,
    "floor": run_floor,
}

# (kind, peer) -> the goal for mmws/peer on that kind
GOALS: dict[tuple[str, str], float] = {
    ("order", "ws-client"): 1.5,
    ("order", "websockets"): 1.0,
    ("big", "ws-client"): 1.0,
}
IDLE_GOAL = 1.0  # wake-ups/s, "about"
P99_GOAL_US = 150.0


# -- idle ------------------------------------------------------------------------------------


def _switches() -> dict[int, int]:
    """``voluntary_ctxt_switches`` of every thread of this process, by native thread id."""
    out: dict[int, int] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as status:
                text = status.read()
        except OSError:
            continue  # the thread ended meanwhile
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                out[int(tid)] = int(line.split()[1])
    return out


def _idle(block: Callable[[], None], seconds: float) -> tuple[float, float, str]:
    """Wake-ups/s and CPU % while ``block()`` blocks the main thread for ``seconds``, and the
    threads that woke, busiest first."""
    first = _switches()
    noise = sum(n - first.get(tid, 0) for tid, n in _switches().items())
    names = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    before, cpu, wall = _switches(), time.process_time(), time.perf_counter()
    block()
    after = _switches()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    woke = {tid: n - before.get(tid, 0) for tid, n in after.items()}
    if main is not None and main in woke:
        woke[main] -= 1  # the blocking call's own return at its timeout
    total = max(0, sum(woke.values()) - noise)
    busiest = sorted(((n, tid) for tid, n in woke.items() if n > 0), reverse=True)
    detail = ", ".join(f"{names.get(tid, tid)} {n}" for n, tid in busiest[:4]) or "none"
    return total / wall, 100.0 * cpu / wall, detail


def idle_mmws(blaster: Blaster, seconds: float) -> tuple[float, float, str]:
    client = mmws.MMClient(KEY, channels=CHANNELS, url=blaster.url)  # default keepalive
    client.connect()
    try:
        _drain(client)

        def block() -> None:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    client.get(timeout=left)
                except queue.Empty:
                    return

        return _idle(block, seconds)
    finally:
        client.close()


def idle_ws_client(blaster: Blaster, seconds: float) -> tuple[float, float, str]:
    ws = _ws_client(blaster)
    try:
        ws.settimeout(seconds)

        def block() -> None:
            try:
                ws.recv()
            except websocket.WebSocketTimeoutException:
                pass

        return _idle(block, seconds)
    finally:
        ws.close(timeout=1)


# -- latency ---------------------------------------------------------------------------------


def _latency_mmws(blaster: Blaster, rate: float, count: int, arrival: bool) -> list[float]:
    """From the server's send (``sentAt``, wall clock) to ``get()`` returning the event, or
    with ``arrival`` the issue's measure: from the moment the reader had the frame
    (``received_at``, ``time.monotonic()`` right after the socket read)."""
    client = _mm_client(blaster)
    try:
        _drain(client)
        get, broadcast = client.get, mmws.Broadcast
        now = time.monotonic if arrival else time.time
        out: list[float] = []
        blaster.start("order", count, rate)
        while len(out) < count:
            event = get(TIMEOUT)
            at = now()
            if isinstance(event, broadcast):
                out.append(at - (event.received_at if arrival else event.payload.extra["sentAt"]))
        return out
    finally:
        client.close()
        blaster.finish()


def latency_mmws(blaster: Blaster, rate: float, count: int) -> list[float]:
    return _latency_mmws(blaster, rate, count, arrival=False)


def latency_mmws_arrival(blaster: Blaster, rate: float, count: int) -> list[float]:
    return _latency_mmws(blaster, rate, count, arrival=True)


def latency_ws_client(blaster: Blaster, rate: float, count: int) -> list[float]:
    ws = _ws_client(blaster)
    try:
        recv, loads, now = ws.recv, json.loads, time.time
        out: list[float] = []
        blaster.start("order", count, rate)
        while len(out) < count:
            msg = loads(recv())
            at = now()
            if msg.get("type") == "broadcast":
                out.append(at - msg["payload"]["sentAt"])
        return out
    finally:
        ws.close(timeout=1)
        blaster.finish()


# -- the run ---------------------------------------------------------------------------------


def _span(values: list[float], fmt: str, unit: str) -> str:
    """``median<unit> (min-max)`` of ``values``, formatted with ``fmt``."""
    if not values:
        return "n/a"
    mid = format(statistics.median(values), fmt) + unit
    if len(values) == 1:
        return mid
    return f"{mid} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def _ok(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _measure(run: Run, blaster: Blaster, kind: str, count: int) -> float | None:
    try:
        return run(blaster, kind, count)
    except Exception as exc:  # a failed measurement is reported, not fatal
        print(f"  ! {run.__name__}({kind}, {count}) failed: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        return None


def throughput(blaster: Blaster, args: argparse.Namespace) -> None:
    counts = {kind: args.big_events if kind == "big" else args.events for kind in KINDS}
    names = list(PEERS)
    print("warm-up round (not counted)...", flush=True)
    for kind in KINDS:
        for run in PEERS.values():
            _measure(run, blaster, kind, max(1, counts[kind] // 10))
    # rates[kind][peer][round]: events/s, None if that measurement failed
    rates: dict[str, dict[str, list[float | None]]] = {k: {p: [] for p in names} for k in KINDS}
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        line = []
        for kind in KINDS:
            for peer in order:
                rates[kind][peer].append(_measure(PEERS[peer], blaster, kind, counts[kind]))
            cells = [(p, rates[kind][p][-1]) for p in names]
            line.append(f"{kind} " + " ".join(
                f"{p}={'fail' if r is None else format(r, ',.0f')}" for p, r in cells
            ))
        print(f"round {round_no + 1}/{args.rounds}: " + " | ".join(line), flush=True)

    print(f"\nthroughput, events/s: median (min-max) over {args.rounds} round(s)")
    for kind in KINDS:
        cells = [f"{p} {_span(_ok(rates[kind][p]), ',.0f', '/s')}" for p in names]
        size = frame_size(kind)
        print(f"{kind} ({size:,} B x {counts[kind]:,}): " + " | ".join(cells))
        ratios = []
        for peer in names[1:]:
            paired = [
                a / b
                for a, b in zip(rates[kind]["mmws"], rates[kind][peer], strict=True)
                if a is not None and b is not None
            ]
            text = f"mmws/{peer} {_span(paired, '.2f', 'x')}"
            goal = GOALS.get((kind, peer))
            if goal is not None and paired:
                met = "met" if statistics.median(paired) >= goal else "NOT met"
                text += f" [goal >= {goal:.1f}x: {met}]"
            ratios.append(text)
        print("    " + " ; ".join(ratios))


def idle(blaster: Blaster, args: argparse.Namespace) -> None:
    print(f"\nidle for {args.idle_seconds:g} s, default keepalive (wake-ups/s, CPU %):")
    for name, measure in (("mmws", idle_mmws), ("ws-client", idle_ws_client)):
        try:
            wakeups, cpu, detail = measure(blaster, args.idle_seconds)
        except Exception as exc:
            print(f"  {name}: failed: {type(exc).__name__}: {exc}")
            continue
        goal = ""
        if name == "mmws":
            goal = f" [goal <= ~{IDLE_GOAL:g}/s: {'met' if wakeups <= IDLE_GOAL else 'NOT met'}]"
        print(f"  {name:>10}: {wakeups:6.2f} wake-ups/s, CPU {cpu:5.2f} %{goal}"
              f"  (woke: {detail})")


# -- several clients in one process ------------------------------------------------------------


def scale_mmws(blaster: Blaster, count: int, clients: int) -> float:
    """Events/s (all together) of ``clients`` clients in this process, each read by its own
    thread; with several, the blaster sends ``count`` order frames to each at once."""
    made = [_mm_client(blaster) for _ in range(clients)]
    try:
        for client in made:
            _drain(client)

        def consume(client: mmws.MMClient) -> None:
            get, broadcast, seen = client.get, mmws.Broadcast, 0
            while seen < count:
                if isinstance(get(TIMEOUT), broadcast):
                    seen += 1

        threads = [threading.Thread(target=consume, args=(c,)) for c in made]
        for thread in threads:
            thread.start()
        start = time.perf_counter()
        blaster.start("order", count, fanout=clients > 1)
        for thread in threads:
            thread.join()
        return clients * count / (time.perf_counter() - start)
    finally:
        for client in made:
            client.close()
        blaster.finish()


def scale(blaster: Blaster, args: argparse.Namespace) -> None:
    """1 client against 5 in one process: the events/s of all five together over one
    client's, for this mmws and (with --before) the other one."""
    count = max(200, args.events // 5)
    rounds = max(1, min(args.rounds, 3))
    print(f"\n5 clients in one process, order frames, {count:,} each, {rounds} round(s): "
          f"events/s of all together; scaling = 5 clients / 1 client")
    versions: dict[str, Callable[[int], float]] = {
        "mmws": lambda n: scale_mmws(blaster, count, n),
    }
    if args.before:
        path = os.path.abspath(args.before)
        versions["before"] = lambda n: _before_run(path, blaster, "order", count, n)
    for name, measure in versions.items():
        ones: list[float] = []
        fives: list[float] = []
        for _ in range(rounds):
            try:
                ones.append(measure(1))
                fives.append(measure(5))
            except Exception as exc:
                print(f"  {name}: failed: {type(exc).__name__}: {exc}")
                break
        if ones and fives:
            one, five = statistics.median(ones), statistics.median(fives)
            print(f"  {name:>10}: 1 client {one:9,.0f}/s, 5 clients {five:9,.0f}/s, "
                  f"scaling {five / one:.2f}x")


def latency(blaster: Blaster, args: argparse.Namespace) -> None:
    count = max(1, int(args.rate * args.seconds))
    print(f"\nlatency, paced order frames at {args.rate:,.0f}/s for {args.seconds:g} s "
          f"({count:,} events): sentAt -> get()/recv()+loads returned; 'arrival': from the "
          f"socket read to get() (the issue's goal)")
    runs = (("mmws", latency_mmws), ("ws-client", latency_ws_client),
            ("mmws arrival", latency_mmws_arrival))  # fmt: skip
    for name, measure in runs:
        try:
            values = [v * 1e6 for v in measure(blaster, args.rate, count)]
        except Exception as exc:
            print(f"  {name}: failed: {type(exc).__name__}: {exc}")
            continue
        p99 = _percentile(values, 0.99)
        goal = ""
        if name == "mmws arrival":
            goal = f" [goal p99 < {P99_GOAL_US:g} us: {'met' if p99 < P99_GOAL_US else 'NOT met'}]"
        print(f"  {name:>12}: p50 {_percentile(values, 0.5):7.0f} us, p99 {p99:7.0f} us, "
              f"max {max(values):7.0f} us{goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds (default 5)")
    parser.add_argument("--events", type=int, default=40_000,
                        help="events per measurement of the small kinds (default 40,000)")
    parser.add_argument("--big-events", type=int, default=2_000,
                        help="events per measurement of the ~65 KB kind (default 2,000)")
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=2_000.0, help="latency: frames/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="latency: seconds per peer")
    parser.add_argument("--before", metavar="PATH",
                        help="also run mmws imported from the checkout at PATH (a child "
                             "process), as the peer 'before', for before/after ratios")
    parser.add_argument("--quick", action="store_true",
                        help="tiny counts and 1 round: a smoke test of this script")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.events, args.big_events = 1, 500, 20
        args.idle_seconds, args.seconds = 1.0, 0.25
    if args.before:
        PEERS["before"] = run_before(os.path.abspath(args.before))
    print(f"hotpath: Python {platform.python_version()}, mmws {mmws.__version__}, "
          f"websocket-client {websocket.__version__}, websockets {websockets.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    with Blaster() as blaster:
        print(f"blaster: pid {blaster.pid} on {blaster.url}", flush=True)
        throughput(blaster, args)
        scale(blaster, args)
        idle(blaster, args)
        latency(blaster, args)
    print("\ngoals (the issue): mmws >= 1.5x ws-client and >= 1.0x websockets on order frames;"
          " >= 1.0x ws-client on 64 KB frames; idle <= ~1 wake-up/s; p99 < 150 us at 2,000/s")


if __name__ == "__main__":
    main()
