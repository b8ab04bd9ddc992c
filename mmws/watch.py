"""``mmws watch``: a live view of one MM stream for people, built on :class:`~mmws.MMState`.

It shows, updated a few times a second: the connection's health (state, round trip,
reconnects, gaps, resyncs, queue depth, events per second), the emergency switch
(impossible to miss when on), the open orders with status and matched stake, the balances
per account and the latest scores.

On a terminal it draws a full-screen view with ``rich`` (the optional extra
``mmws[watch]``). When stdout is not a terminal (a pipe, a log file, CI), or ``rich`` is
missing, it prints a plain summary every few seconds instead. Ctrl-C ends it cleanly.

:func:`watch` runs it for a connected client; the CLI (``mmws watch``) makes the client.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from mmws.errors import MmwsError
from mmws.format import _money
from mmws.lifecycle import Closed
from mmws.mm.client import MMClient
from mmws.mm.events import Broadcast, GapDetected, Resynced
from mmws.mm.models import Account, Order, Score
from mmws.mm.state import StateSnapshot

__all__ = ["View", "watch"]

_RATE_WINDOW = 5.0  # seconds over which events/s is counted


def _score_text(score: Score) -> str:
    scores = score.scores or {}
    text = f"{scores.get('home', '?')}-{scores.get('away', '?')}" if scores else "-"
    minute = f" {score.current_minute}'" if score.current_minute is not None else ""
    period = f" {score.current_period}" if score.current_period else ""
    return f"{text}{minute}{period}"


class View:
    """What the watch shows, counted from the events and read from the client's state.
    Pure bookkeeping: :meth:`take` each event; :meth:`orders`, :meth:`balances` and
    :meth:`scores` give the rows of the tables, :meth:`summary` the plain text.

    Args:
        client: The ``MMClient`` watched, made with ``state=True``; the view reads its
            :meth:`~mmws.MMClient.health` and its state, and never takes its events itself.
        clock: The clock of the events-per-second count, in seconds (default
            ``time.monotonic``; a test passes its own).

    Attributes:
        events: Data events (broadcasts) taken so far.
        gaps: ``GapDetected`` events taken so far.
        resyncs: ``Resynced`` events taken so far.
        closed: Why the stream ended (the ``Closed`` error's text, or ``"closed"``);
            ``None`` while it runs.
    """

    def __init__(self, client: MMClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._clock = clock
        self._arrivals: deque[float] = deque()
        self.events = 0
        self.gaps = 0
        self.resyncs = 0
        self.closed: str | None = None

    def take(self, event: Any) -> None:
        """Count one event from the client's queue.

        Args:
            event: The event, as ``client.get()`` returned it.
        """
        now = self._clock()
        if isinstance(event, Broadcast):
            self.events += 1
            self._arrivals.append(now)
        elif isinstance(event, GapDetected):
            self.gaps += 1
        elif isinstance(event, Resynced):
            self.resyncs += 1
        elif isinstance(event, Closed):
            self.closed = str(event.error) if event.error is not None else "closed"

    def rate(self) -> float:
        """Data events per second over the last few seconds."""
        now = self._clock()
        arrivals = self._arrivals
        while arrivals and arrivals[0] < now - _RATE_WINDOW:
            arrivals.popleft()
        return len(arrivals) / _RATE_WINDOW

    def snapshot(self) -> StateSnapshot:
        """The client's state now (``client.state.snapshot()``)."""
        return self.client.state.snapshot()

    def health_line(self) -> str:
        """One line: state, URL, round trip, reconnects, gaps, resyncs, queue depth,
        events per second and whether the state is synced."""
        health = self.client.health()
        snap = self.snapshot()
        rtt = f"{health.last_rtt * 1000:.1f} ms" if health.last_rtt is not None else "-"
        synced = "synced" if snap.synced else "NOT synced"
        return (
            f"{health.state} {health.url} | rtt {rtt} | reconnects {health.reconnects} | "
            f"gaps {self.gaps} | resyncs {self.resyncs} | queue {health.queue_depth} | "
            f"{self.rate():.1f} events/s | state {synced}"
        )

    def emergency(self) -> str | None:
        """The emergency line when the switch is on, else None."""
        current = self.snapshot().emergency
        if current is None or not current.emergency:
            return None
        return f"EMERGENCY ON: {current.reason or 'no reason given'}"

    def orders(self, limit: int = 20) -> list[tuple[str, ...]]:
        """The open orders, newest first: id, status, matched, exchange, stake, matched
        stake, price.

        Args:
            limit: The most rows (default 20).
        """
        rows: list[tuple[str, ...]] = []
        orders: list[Order] = sorted(
            self.snapshot().open_orders.values(), key=lambda o: o.order_id, reverse=True
        )
        for order in orders[:limit]:
            rows.append((
                str(order.order_id),
                str(order.order_status or "-"),
                str(order.matched_status or "-"),
                order.exchange or "-",
                _money(order.order_stake),
                _money(order.matched_stake),
                "-" if order.order_cents is None else str(order.order_cents),
            ))  # fmt: skip
        return rows

    def balances(self) -> list[tuple[str, ...]]:
        """One row per account, sorted: exchange, username, balance."""
        accounts: list[tuple[tuple[str, str], Account]] = sorted(self.snapshot().accounts.items())
        return [(exchange, user, _money(a.balance)) for (exchange, user), a in accounts]

    def scores(self, limit: int = 8) -> list[tuple[str, ...]]:
        """The latest scores, by fixture id: fixture, score (``"2-1 67' 2nd Half"``).

        Args:
            limit: The most rows (default 8).
        """
        scores = sorted(self.snapshot().scores.values(), key=lambda s: s.fixture_id)
        return [(s.fixture_id, _score_text(s)) for s in scores[:limit]]

    def summary(self) -> str:
        """The plain form: a few lines, for a pipe or a log."""
        snap = self.snapshot()
        lines = [f"-- {self.health_line()}"]
        alarm = self.emergency()
        if alarm:
            lines.append(f"!! {alarm}")
        lines.append(f"   open orders {len(snap.open_orders)} of {len(snap.orders)}")
        for row in self.orders(5):
            lines.append(f"     #{row[0]} {row[1]} {row[2]} on {row[3]} stake {row[4]} "
                         f"matched {row[5]} @ {row[6]}")  # fmt: skip
        for exchange, user, balance in self.balances():
            lines.append(f"   user {user} on {exchange} balance {balance}")
        for fixture, score in self.scores(3):
            lines.append(f"   score {fixture}: {score}")
        return "\n".join(lines)


def _rich_screen(view: View) -> Any:
    """The full-screen form (rich renderables)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text(view.health_line(), style="bold")]
    alarm = view.emergency()
    if alarm:
        parts.append(Panel(Text(alarm, style="bold white on red", justify="center"),
                           style="bold red"))  # fmt: skip
    orders = Table(title=f"Open orders ({len(view.snapshot().open_orders)})", expand=True)
    for name in ("order", "status", "matched status", "exchange", "stake", "matched", "price"):
        orders.add_column(name, justify="right" if name in ("stake", "matched") else "left")
    for row in view.orders():
        orders.add_row(*row)
    balances = Table(title="Balances", expand=True)
    for name in ("exchange", "account", "balance"):
        balances.add_column(name, justify="right" if name == "balance" else "left")
    for row in view.balances():
        balances.add_row(*row)
    scores = Table(title="Scores", expand=True)
    scores.add_column("fixture")
    scores.add_column("score")
    for row in view.scores():
        scores.add_row(*row)
    parts += [orders, balances, scores]
    if view.closed:
        parts.append(Text(f"stream ended: {view.closed}", style="bold red"))
    return Group(*parts)


def watch(
    client: MMClient,
    *,
    out: TextIO,
    duration: float | None = None,
    live: bool | None = None,
    refresh: float = 0.25,
    every: float = 5.0,
) -> View:
    """Show ``client``'s stream until ``duration`` seconds pass, the client closes, or
    Ctrl-C; return the :class:`View`. The client must keep state (``state=True``).

    ``live``: the full-screen view (None: when ``out`` is a terminal and ``rich`` is
    installed); it redraws every ``refresh`` seconds. Otherwise a plain summary is printed
    every ``every`` seconds, and once at the end.

    Args:
        client: A connected ``MMClient`` made with ``state=True`` (``ConfigError``
            otherwise). The watch takes its events: do not read them elsewhere meanwhile.
        out: Where to write, e.g. ``sys.stdout``.
        duration: Seconds to watch; ``None`` (the default) until the client closes or
            Ctrl-C.
        live: ``True`` for the full-screen view (needs ``rich``), ``False`` for the plain
            summaries; ``None`` (the default) decides by ``out`` and ``rich``.
        refresh: Seconds between redraws of the full-screen view (default 0.25).
        every: Seconds between plain summaries (default 5).
    """
    client.state  # noqa: B018 - ConfigError now, not later, for a client without state
    view = View(client)
    if live is None:
        live = _isatty(out) and _have_rich()
    end = None if duration is None else time.monotonic() + duration
    try:
        if live:
            _run_live(view, out, end, refresh)
        else:
            _run_plain(view, out, end, every)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends
    if not live:
        out.write(view.summary() + "\n")
        out.flush()
    return view


def _drain(view: View, until: float, end: float | None) -> bool:
    """Take events until ``until``; False once the stream ended or ``end`` passed."""
    client = view.client
    while True:
        now = time.monotonic()
        if end is not None and now >= end:
            return False
        left = until - now
        if left <= 0:
            return True
        try:
            event = client.get(timeout=left if end is None else min(left, end - now))
        except queue.Empty:
            continue
        except MmwsError as exc:
            view.closed = view.closed or str(exc)
            return False
        view.take(event)
        if view.closed:
            return False


def _run_plain(view: View, out: TextIO, end: float | None, every: float) -> None:
    while _drain(view, time.monotonic() + every, end):
        out.write(view.summary() + "\n")
        out.flush()


def _run_live(view: View, out: TextIO, end: float | None, refresh: float) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out)
    with Live(_rich_screen(view), console=console, screen=True, auto_refresh=False) as screen:
        while _drain(view, time.monotonic() + refresh, end):
            screen.update(_rich_screen(view), refresh=True)
        screen.update(_rich_screen(view), refresh=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True
