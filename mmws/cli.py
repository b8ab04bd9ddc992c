"""The ``mmws`` command: ``demo``, ``sim``, ``listen``, ``record``, ``replay``, ``relay`` and
``watch``.

::

    mmws demo --duration 5                          # simulator in-process, one line per event
    mmws sim --port 8765                            # the simulator alone (python -m mmws.sim)
    MMWS_API_KEY=... mmws listen --channels orders,bets [--jsonl]
    mmws record session.jsonl --duration 60         # no --url: records the simulator
    mmws replay session.jsonl --speed 2
    mmws relay --redis redis://127.0.0.1:6379/0 --stream mmws:mm --state
    mmws watch --rate 50                            # open orders, balances, scores, live

One event becomes one line in :func:`format_event` (pretty) or :func:`event_to_json` (JSON
lines); both are plain functions that tests and other tools can call. Expected failures
(an ``MmwsError``, a bad argument, Ctrl-C) end as one line on stderr and a non-zero exit
status, never a traceback, and every line written passes a filter that replaces the API key
and feed token with ``***``. Every command, ``mmws sim`` included, writes its errors as
``mmws: error: <message>``; a usage error ends with a hint in parentheses: the likely
spelling of a misspelt command or option, else the ``--help`` to read. A file to write is
checked before a simulator or a connection starts.

Exit status: 0 success (Ctrl-C while streaming is the normal way to stop), 1 an error from
the server, the network or a file, 2 a usage error, 130 Ctrl-C before streaming started.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import math
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, TextIO

from mmws._cliargs import KEY_ENV, UsageError, build_parser, check_command, check_unrecognized
from mmws._handle import ClientHandle
from mmws._secret import redact
from mmws.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    ConnectionLimitError,
    MmwsError,
)
from mmws.feed.client import FeedClient
from mmws.feed.events import (
    FeedEvent,
)
from mmws.format import _BLANK_TIME, _DIM, _money, _num, _paint, event_to_json, format_event
from mmws.lifecycle import (
    Closed,
    Connected,
)
from mmws.mm._engine import DEFAULT_URL
from mmws.mm.client import MMClient
from mmws.mm.events import (
    Broadcast,
)
from mmws.record import replay

__all__ = ["event_to_json", "format_event", "main"]


_EXIT_ERROR = 1
_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130

# -- output, counting and the summary -----------------------------------------------------


class _Failure(Exception):
    """An expected failure: ``main`` prints ``mmws: error: <message>`` and exits 1."""


class _Out:
    """Writes lines to stdout, never a secret; counts data events and arrival latency."""

    def __init__(self, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> None:
        self.jsonl: bool = getattr(args, "jsonl", False)
        self.stdout = stdout
        self.stderr = stderr
        wants = os.environ.get("NO_COLOR", "") == "" and not self.jsonl
        self.color = wants and _isatty(stdout)
        self.secrets: list[str] = []
        self.channels: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.connections = 0
        self.started = time.monotonic()
        # Live events carry time.monotonic() readings; this turns them into wall time.
        self.wall_offset = time.time() - time.monotonic()

    def scrub(self, text: str) -> str:
        """Secrets out; and lone surrogates (legal as JSON escapes, unprintable as UTF-8)
        shown as backslash escapes instead of crashing the write."""
        if self.secrets:
            text = redact(text, *self.secrets)
        if text.isascii():
            return text
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

    def note(self, text: str) -> None:
        """A line about the run itself: stdout for people, stderr when stdout is JSON."""
        stream = self.stderr if self.jsonl else self.stdout
        stream.write(self.scrub(_paint(text, _DIM, self.color)) + "\n")
        stream.flush()

    def event(self, event: Any, *, live: bool, last_at: float | None = None) -> float | None:
        """Print ``event``; return the wall time shown (None when unknown)."""
        received = getattr(event, "received_at", None)
        if received:
            at: float | None = received + self.wall_offset if live else received
        else:
            at = time.time() if live else last_at
        if self.jsonl:
            line = event_to_json(event, at)
        elif at is None:
            line = _BLANK_TIME + " " + format_event(event, color=self.color)
        else:
            line = format_event(event, at, color=self.color)
        self.stdout.write(self.scrub(line) + "\n")
        self.stdout.flush()
        if isinstance(event, Broadcast | FeedEvent):
            self.channels[event.channel] += 1
            if live and received:
                self.latencies.append(time.monotonic() - received)
        elif isinstance(event, Connected):
            self.connections += 1
        return at

    def summary(self, reconnects: int | None, extra: str = "") -> None:
        elapsed = time.monotonic() - self.started
        total = sum(self.channels.values())
        per = ", ".join(f"{name} {count}" for name, count in self.channels.most_common())
        self.note(f"summary after {elapsed:.1f} s{extra}")
        self.note(f"  events      {total}" + (f" ({per})" if per else ""))
        if reconnects is not None:
            self.note(f"  reconnects  {reconnects}")
        else:
            self.note(f"  connections {self.connections}")
        if self.latencies:
            p50, p99 = _percentile(self.latencies, 50), _percentile(self.latencies, 99)
            self.note(
                f"  latency     p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms "
                f"(arrival to print, {len(self.latencies)} events)"
            )


def _percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- running clients -----------------------------------------------------------------------

_DONE = object()


def _forward(client: ClientHandle[Any], merged: queue.Queue[Any]) -> None:
    """Move one client's events into the shared queue, in order, then say it is done.

    The shared queue is bounded, so a slow terminal still pushes back on the client's own
    queue and from there on the socket."""
    try:
        for event in client:
            merged.put(event)
    finally:
        merged.put(_DONE)


def _stream(clients: Sequence[ClientHandle[Any]], out: _Out, duration: float | None) -> None:
    """Print the clients' events until the duration ends, Ctrl-C, or a client closes; then
    close them all and print what they had already received. Raises ``_Failure`` if a
    client was closed by a fatal error."""
    merged: queue.Queue[Any] = queue.Queue(maxsize=256)
    forwarders = [
        threading.Thread(
            target=_forward, args=(client, merged), name=f"mmws-cli-forward-{n}", daemon=True
        )
        for n, client in enumerate(clients)
    ]
    for thread in forwarders:
        thread.start()
    deadline = None if duration is None else out.started + duration
    running = len(clients)
    fatal: list[MmwsError] = []

    def show(item: Any) -> bool:
        """Print one item; False once the run should stop."""
        nonlocal running
        if item is _DONE:
            running -= 1
            return False
        out.event(item, live=True)
        if isinstance(item, Closed):
            if item.error is not None:
                fatal.append(item.error)
            return False
        return True

    try:
        while running:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                item = merged.get(timeout=wait)
            except queue.Empty:
                continue
            if not show(item):
                break
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a stream is stopped: close, drain and summarise below
    for client in clients:
        client.close()
    # Events queued before close() are still delivered, ending with each client's Closed.
    drain_until = time.monotonic() + 5.0
    while running and time.monotonic() < drain_until:
        try:
            show(merged.get(timeout=0.1))
        except queue.Empty:
            continue
    for thread in forwarders:
        thread.join(max(0.0, drain_until - time.monotonic()))
    if fatal:
        raise _Failure(_describe(fatal[0]))


def _reconnects(clients: Sequence[ClientHandle[Any]]) -> int:
    return sum(client.health().reconnects for client in clients)


def _describe(error: BaseException) -> str:
    """An error as the sentence after ``mmws: error:``."""
    if isinstance(error, AuthenticationError):
        return f"the server rejected the API key ({error.message})"
    if isinstance(error, ConnectionLimitError):
        return f"the server refused the connection: too many open for this key ({error.message})"
    if isinstance(error, ConnectError):
        return f"could not connect: {error}"
    return str(error) or type(error).__name__


@contextmanager
def _simulator(args: argparse.Namespace, out: _Out) -> Iterator[Any]:
    try:
        from mmws.sim import Simulator
    except ImportError as exc:
        raise _Failure(
            f"the simulator needs the 'sim' extra (in a checkout of mmws: python -m pip install "
            f"'.[sim]') ({exc})"
        ) from None
    with Simulator(seed=args.seed, rate=args.rate) as sim:
        out.secrets.extend((sim.api_key, sim.feed_token))
        out.note(f"-- simulator on {sim.mm_url} (seed {args.seed}, {args.rate:g} events/s)")
        yield sim


def _connect(stack: ExitStack, client: ClientHandle[Any]) -> ClientHandle[Any]:
    stack.callback(client.close)
    client.connect()
    return client


def _api_key(args: argparse.Namespace, out: _Out) -> str:
    if args.api_key:
        out.stderr.write(
            "mmws: warning: --api-key is visible to other users in process lists; "
            f"prefer the {KEY_ENV} environment variable\n"
        )
        key: str = args.api_key
    else:
        key = os.environ.get(KEY_ENV, "")
    if not key:
        raise _Failure(f"no API key: set the {KEY_ENV} environment variable")
    out.secrets.append(key)
    return key


# -- commands ---------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace, out: _Out) -> None:
    with ExitStack() as stack:
        sim = stack.enter_context(_simulator(args, out))
        mm = MMClient(sim.api_key, url=sim.mm_url, connect_timeout=5.0, state=args.state)
        clients: list[ClientHandle[Any]] = [_connect(stack, mm)]
        if args.feed:
            feed = FeedClient(
                url=sim.feed_url,
                subscriptions=[("MAIN", "all"), ("STATS_REALTIME", "all")],
                connect_timeout=5.0,
            )
            clients.append(_connect(stack, feed))
        until = "Ctrl-C" if args.duration is None else f"{args.duration:g} s or Ctrl-C"
        out.note(f"-- streaming until {until}")
        _stream(clients, out, args.duration)
        out.summary(_reconnects(clients))
        if args.state:
            _show_state(mm, out)


def _show_state(client: MMClient, out: _Out) -> None:
    """The end of ``demo --state``: open orders and balances, as the state holds them."""
    state = client.state
    snap = state.snapshot()
    synced = "synced with the server" if snap.synced else "NOT synced (a resync is pending)"
    out.note(
        f"state: {len(snap.orders)} orders, {len(snap.bets)} bets, {state.resyncs} resyncs, "
        f"{state.gaps} gaps; {synced}"
    )
    out.note(f"  open orders ({len(snap.open_orders)})")
    for order in sorted(snap.open_orders.values(), key=lambda o: o.order_id):
        out.note(
            f"    #{order.order_id} status {order.order_status} on {order.exchange or '?'} "
            f"stake {_money(order.order_stake)} matched {_money(order.matched_stake)} "
            f"@ {_num(order.order_cents)}"
        )
    out.note(f"  balances ({len(snap.accounts)} accounts)")
    for (exchange, username), account in sorted(snap.accounts.items()):
        out.note(f"    user {username} on {exchange} balance {_money(account.balance)}")
    if snap.emergency is not None and snap.emergency.emergency:
        out.note(f"  EMERGENCY ON: {snap.emergency.reason or 'no reason given'}")


def _cmd_listen(args: argparse.Namespace, out: _Out, record: str | None = None) -> None:
    with ExitStack() as stack:
        simulated = args.url is None and record is not None
        key = "" if simulated else _api_key(args, out)
        if record is not None:
            _check_writable(record)  # before the simulator or the connection starts
        if simulated:
            sim = stack.enter_context(_simulator(args, out))
            key, url = sim.api_key, sim.mm_url
        else:
            url = args.url or DEFAULT_URL
        try:
            client = MMClient(key, channels=args.channels, url=url, record=record)
        except OSError as exc:  # the recording file cannot be created
            raise _Failure(f"cannot write {record}: {exc.strerror or exc}") from None
        _connect(stack, client)
        _stream([client], out, args.duration)
        out.summary(_reconnects([client]), f", recorded to {record}" if record else "")


def _cmd_record(args: argparse.Namespace, out: _Out) -> None:
    _cmd_listen(args, out, record=args.file)


def _check_writable(path: str) -> None:
    """Fail now if ``path`` cannot be written, without changing it: an existing file is
    replaced only when the recording starts, a new one is not left behind."""
    existed = os.path.lexists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        parent = os.path.dirname(os.path.abspath(path))
        if exc.errno == errno.ENOENT and not os.path.isdir(parent):
            raise _Failure(f"cannot write {path}: no such directory {parent}") from None
        raise _Failure(f"cannot write {path}: {exc.strerror or exc}") from None
    if not existed:
        try:
            os.remove(path)
        except OSError:
            pass  # an empty file, which the recording replaces


def _cmd_replay(args: argparse.Namespace, out: _Out) -> None:
    events = replay(args.file, args.speed)
    last_at: float | None = None
    try:
        while True:
            try:
                event = next(events)
            except StopIteration:
                break
            except ConfigError as exc:
                raise _Failure(str(exc)) from None
            except OSError as exc:
                raise _Failure(f"cannot read {args.file}: {exc.strerror or exc}") from None
            except (ValueError, EOFError):
                raise _Failure(f"{args.file} is not an mmws recording") from None
            last_at = out.event(event, live=False, last_at=last_at)
    except KeyboardInterrupt:
        pass
    finally:
        getattr(events, "close", lambda: None)()  # a generator: closes the file now
    out.summary(None, f", replayed from {args.file}")


def _key_and_url(stack: ExitStack, args: argparse.Namespace, out: _Out) -> tuple[str, str]:
    """``--url`` and the key from the environment, or a simulator started in ``stack``."""
    if args.url is None:
        sim = stack.enter_context(_simulator(args, out))
        return sim.api_key, sim.mm_url
    return _api_key(args, out), args.url


def _cmd_watch(args: argparse.Namespace, out: _Out) -> None:
    from mmws.watch import watch

    with ExitStack() as stack:
        key, url = _key_and_url(stack, args, out)
        client = MMClient(key, channels=args.channels, url=url, state=True)
        _connect(stack, client)
        view = watch(client, out=out.stdout, duration=args.duration, every=args.every)
    if view.closed and view.closed != "closed":
        raise _Failure(f"the stream ended: {view.closed}")


def _cmd_relay(args: argparse.Namespace, out: _Out) -> None:
    try:
        from mmws.redis import RedisRelay
    except ImportError as exc:
        raise _Failure(
            f"the relay needs the 'redis' extra (in a checkout of mmws: python -m pip install "
            f"'.[redis]') ({exc})"
        ) from None
    with ExitStack() as stack:
        key, url = _key_and_url(stack, args, out)
        client = MMClient(
            key, channels=args.channels, url=url, state=args.state, lines=args.lines
        )
        relay = RedisRelay(client, args.redis, args.stream, args.maxlen)  # checks, no I/O
        # Closed in this order: the client (its last events, Closed included, stay queued),
        # then the relay, which publishes them and stops.
        stack.callback(relay.close)
        _connect(stack, client)
        relay.start()
        until = "Ctrl-C" if args.duration is None else f"{args.duration:g} s or Ctrl-C"
        out.note(f"-- relaying to {relay.url}, stream {args.stream} (maxlen {args.maxlen:,}), "
                 f"until {until}")  # fmt: skip
        end = None if args.duration is None else out.started + args.duration
        tick = threading.Event()
        try:
            while end is None or time.monotonic() < end:
                tick.wait(5.0 if end is None else max(0.0, min(5.0, end - time.monotonic())))
                problem = f"; Redis: {relay.last_error}" if relay.last_error else ""
                out.note(f"   published {relay.published:,}, buffered {relay.buffered:,}, "
                         f"dropped {relay.dropped:,}{problem}")  # fmt: skip
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a relay is stopped: publish what is queued, then close
    out.note(f"relayed {relay.published:,} events to {relay.url}, dropped {relay.dropped:,}")
    if relay.dropped:
        raise _Failure(f"{relay.dropped:,} events never reached Redis ({relay.last_error})")


def _cmd_sim(argv: Sequence[str]) -> int:
    """``mmws sim ...`` is ``python -m mmws.sim ...``: the simulator's own ``main``."""
    try:
        module = importlib.import_module("mmws.sim.__main__")
    except ImportError as exc:
        raise _Failure(
            f"the simulator needs the 'sim' extra (in a checkout of mmws: python -m pip install "
            f"'.[sim]') ({exc})"
        ) from None
    result = module.main(list(argv), prog="mmws sim")
    return int(result or 0)


_COMMANDS: dict[str, Callable[[argparse.Namespace, _Out], None]] = {
    "demo": _cmd_demo, "listen": _cmd_listen, "record": _cmd_record, "replay": _cmd_replay,
    "relay": _cmd_relay, "watch": _cmd_watch,
}  # fmt: skip
"""What runs each command of :func:`mmws._cliargs.build_parser` (``mmws sim`` aside)."""


@contextmanager
def _logging(verbose: bool, stderr: TextIO) -> Iterator[None]:
    """The CLI reports through events; library logs go to stderr only with ``-v``."""
    logger = logging.getLogger("mmws")
    level = logger.level
    handler: logging.Handler | None = None
    if verbose:
        handler = logging.StreamHandler(stderr)
        handler.setFormatter(logging.Formatter("mmws: %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    else:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
        if handler is not None:
            logger.removeHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mmws`` command with ``argv`` (default ``sys.argv[1:]``); return the exit
    status.

    Args:
        argv: The arguments after the program name, e.g. ``["demo", "--duration", "5"]``;
            ``None`` (the default) uses ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 for an error, 2 for a usage error, 130 after
        Ctrl-C.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    stdout, stderr = sys.stdout, sys.stderr
    try:
        if args_list[:1] == ["sim"]:
            return _cmd_sim(args_list[1:])
        parser = build_parser()
        check_command(parser, args_list)
        args, extra = parser.parse_known_args(args_list)
        if extra:
            check_unrecognized(parser.commands[args.command], extra)
    except SystemExit as stop:  # --help and --version print, then exit
        return stop.code if isinstance(stop.code, int) else _EXIT_USAGE
    except UsageError as exc:
        stderr.write(f"mmws: error: {exc}\n")
        return _EXIT_USAGE
    except _Failure as exc:
        stderr.write(f"mmws: error: {exc}\n")
        return _EXIT_ERROR
    except KeyboardInterrupt:
        return _EXIT_INTERRUPTED
    out = _Out(args, stdout, stderr)
    try:
        with _logging(args.verbose, stderr):
            _COMMANDS[args.command](args, out)
    except (_Failure, MmwsError) as exc:
        stderr.write(out.scrub(f"mmws: error: {_describe(exc)}") + "\n")
        return _EXIT_ERROR
    except KeyboardInterrupt:
        stderr.write("mmws: interrupted\n")
        return _EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (mmws listen --jsonl | head): stop quietly. Point stdout at
        # /dev/null so the interpreter's final flush does not complain again.
        try:
            target = stdout.fileno()
        except (OSError, ValueError):
            return 0  # not a real file (a test's capture): nothing to protect
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, target)
        os.close(devnull)
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
