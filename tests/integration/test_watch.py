"""The live view (mmws.watch) in a real pseudo-terminal, and its plain form in a pipe."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from typing import Any

import pexpect
import pytest
from clientutil import ctrl_c_works

import mmws
from mmws.sim import Simulator
from mmws.watch import View, watch

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    import mmws
    from mmws.sim import Simulator
    from mmws.watch import watch

    with Simulator(rate=float(sys.argv[1]), seed=3) as sim:
        client = mmws.MMClient(sim.api_key, url=sim.mm_url, state=True)
        client.connect()
        if sys.argv[2] == "emergency":
            sim.publish("emergency", "UPDATE", {"emergency": True, "reason": "drill 7"})
        try:
            watch(client, out=sys.stdout, refresh=0.1, every=0.3,
                  duration=None if sys.argv[3] == "-" else float(sys.argv[3]))
        finally:
            client.close()
    print("watch ended")
    """
)


def spawn(*args: str) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(TERM="xterm-256color", COLUMNS="140", LINES="50")
    # codec_errors: Ctrl-C can cut the view's output inside a character (the box lines are
    # three bytes each), and the terminal's echoed ^C lands in the middle of it
    return pexpect.spawn(
        sys.executable, ["-c", SCRIPT, *args], encoding="utf-8", codec_errors="replace",
        timeout=20, preexec_fn=ctrl_c_works, env=env, dimensions=(50, 140),
    )  # fmt: skip


def test_the_live_view_draws_in_a_terminal_and_ctrl_c_ends_it() -> None:
    child = spawn("100", "-", "-")
    try:
        child.expect("events/s")
        child.expect("Open orders")
        child.expect("Balances")
        child.expect("Scores")
        child.expect(r"\d+\.\d events/s")  # redrawn: the rate is counted
        child.sendintr()
        child.expect("watch ended")
        child.expect(pexpect.EOF)
        output = child.before
    finally:
        child.close()
    assert child.exitstatus == 0 and child.signalstatus is None
    assert "Traceback" not in output and "KeyboardInterrupt" not in output


def test_the_emergency_switch_cannot_be_missed() -> None:
    child = spawn("0", "emergency", "3")
    try:
        child.expect("EMERGENCY ON: drill 7")
        child.expect("watch ended")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_in_a_pipe_it_prints_plain_summaries() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "100", "-", "1.2"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "\x1b" not in done.stdout  # no terminal codes in a pipe
    summaries = [line for line in lines if line.startswith("-- connected ws://127.0.0.1")]
    assert len(summaries) >= 3  # every 0.3 s, and once at the end
    assert any(line.startswith("   open orders ") for line in lines)
    assert any(line.startswith("   user ") and " balance " in line for line in lines)
    assert lines[-1] == "watch ended"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_view_counts_from_the_events(mmws_sim: Simulator) -> None:
    client = mmws_sim.mm_client(state=True)
    clock = Clock()
    view = View(client, clock)
    order = mmws.OrderEvent(mmws.EventKind.INSERT, mmws.Order(1))
    for _ in range(10):
        view.take(order)
    view.take(mmws.GapDetected("orders", 1))
    view.take(mmws.Resynced("gap", 1, 0, 0, 0.01))
    assert (view.events, view.gaps, view.resyncs) == (10, 1, 1)
    assert view.rate() == 10 / 5.0
    clock.now += 6.0  # the window moved past them
    assert view.rate() == 0.0
    view.take(mmws.Closed(mmws.AuthenticationError("invalid key")))
    assert view.closed == "invalid key"
    assert "gaps 1 | resyncs 1" in view.health_line()


def test_watch_needs_a_client_with_state(mmws_sim: Simulator) -> None:
    client = mmws_sim.mm_client()
    with pytest.raises(mmws.ConfigError, match="state=True"):
        watch(client, out=io.StringIO(), duration=0.1)


def test_the_plain_summary_shows_open_orders_and_balances(mmws_sim: Any) -> None:
    client = mmws_sim.mm_client(state=True)
    mmws_sim.publish("orders", "INSERT", {"orderId": 42, "orderStatus": "PLACED",
                                          "exchange": "betfair", "orderStake": 1500.0,
                                          "matchedStake": 0.0, "orderCents": 0.45},
                     require=True)  # fmt: skip
    out = io.StringIO()
    view = watch(client, out=out, duration=0.5, every=10.0)
    assert view.events == 1
    text = out.getvalue()
    assert "open orders 1 of 1" in text
    assert "#42 PLACED - on betfair stake 1,500.00 matched 0.00 @ 0.45" in text


def test_mmws_watch_runs_the_simulator_in_a_terminal_until_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "MMWS_API_KEY")}
    env.update(TERM="xterm-256color")
    child = pexpect.spawn(
        sys.executable, ["-m", "mmws", "watch", "--rate", "80"], encoding="utf-8",
        codec_errors="replace", timeout=20, preexec_fn=ctrl_c_works, env=env,
        dimensions=(50, 140),
    )  # fmt: skip
    try:
        child.expect("Open orders")
        child.expect("Balances")
        child.sendintr()
        child.expect(pexpect.EOF)
        output = child.before
    finally:
        child.close()
    assert child.exitstatus == 0, output
    assert "Traceback" not in output
