"""The scripts in ``examples/``, run the way a reader runs them: as subprocesses, over real
sockets, against a simulator (their own, in-process, or one this test starts and hands
over with ``--url``). The notebook's code cells run here, in order, in one namespace.

Every wait has a deadline, and nothing sleeps: a test waits for the line it expects.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from clientutil import ctrl_c_works

import mmws
from mmws.sim import Simulator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FILL = re.compile(
    r"^\d\d:\d\d:\d\d FILL order=(?P<order>\d+) exchange=(?P<exchange>\S+) "
    r"matched=(?P<matched>[\d.]+) \(\+(?P<added>[\d.]+) of (?P<stake>[\d.]+)\) "
    r"price=(?P<price>[\d.]+)(?P<rest> \[from REST\])?$"
)
ALARM_BALANCE = re.compile(r"^ALARM balance (?P<exchange>\S+) (?P<user>0x[0-9a-f]{10}) "
                           r"(?P<balance>[\d.]+) < (?P<below>[\d.]+)$")


def _environment(api_key: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MMWS_API_KEY"}
    if api_key is not None:
        env["MMWS_API_KEY"] = api_key
    return env


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an example to its end (its own simulator, so no key)."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, env=_environment(),
        capture_output=True, text=True, timeout=60,
    )


class Running:
    """An example running against this test's simulator; its output is read line by line."""

    def __init__(self, name: str, *args: str, api_key: str) -> None:
        self.api_key = api_key
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *args], cwd=ROOT,
            env=_environment(api_key), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, preexec_fn=ctrl_c_works,  # Ctrl-C works even in a background run
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        """Read lines until one matches ``pattern``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout} s:\n" + self.text()
                ) from None
            if line is None:
                self._lines.put(None)
                raise AssertionError(f"the example ended before {pattern!r}:\n" + self.text())
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def interrupt(self) -> int:
        """Ctrl-C: its exit code, once it has ended; the rest of its output is read."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        while (line := self._lines.get_nowait()) is not None:
            self.output.append(line)
        return code

    def text(self) -> str:
        return "\n".join(self.output)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.__exit__(kind, error, tb)  # closes the pipe, waits for the process
        self._reader.join(timeout=30)
        assert self.api_key not in self.text(), "the example printed the API key"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A quiet simulator: it sends only what the test publishes."""
    with Simulator(rate=0) as simulator:
        yield simulator


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


# -- fill_logger.py ---------------------------------------------------------------------------


@pytest.mark.slow  # runs for two seconds
def test_the_fill_logger_prints_the_fills_of_the_simulated_session() -> None:
    done = run_example("fill_logger.py", "--duration", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("# synced from REST (connect): ") for line in lines)
    fills = [FILL.match(line) for line in lines if " FILL " in line]
    assert fills and all(fills), done.stdout
    matched: dict[str, float] = {}
    for fill in fills:
        assert fill is not None and fill["exchange"] != "None" and not fill["rest"]
        assert 0.0 < float(fill["price"]) < 1.0
        assert 0.0 < float(fill["added"]) <= float(fill["matched"]) <= float(fill["stake"])
        before = matched.get(fill["order"], 0.0)  # every fill raises that order's stake
        assert float(fill["matched"]) == pytest.approx(before + float(fill["added"]))
        matched[fill["order"]] = float(fill["matched"])


@pytest.mark.slow  # runs for two seconds
def test_the_fill_logger_writes_json_lines_with_out(tmp_path: Path) -> None:
    out = tmp_path / "fills.jsonl"
    done = run_example("fill_logger.py", "--duration", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    printed = [FILL.match(line) for line in done.stdout.splitlines() if " FILL " in line]
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written, "no fill in two seconds"
    assert [(str(f["order_id"]), str(f["matched_stake"]), f["exchange"]) for f in written] == [
        (m["order"], m["matched"], m["exchange"]) for m in printed if m is not None
    ]
    assert {"time", "price", "added", "order_stake", "source"} <= set(written[0])


def test_the_fill_logger_notes_a_reconnect_and_prints_the_fills_it_missed(
    sim: Simulator,
) -> None:
    resting = {"orderId": 7, "exchange": "kalshi", "orderStatus": "PLACED", "orderCents": 0.4,
               "orderStake": 100.0, "matchedStake": 0.0, "createdAt": _now()}
    sim.publish("orders", "INSERT", resting)  # before the logger starts: REST has it
    with Running("fill_logger.py", "--url", sim.mm_url, api_key=sim.api_key) as logger:
        logger.expect(r"^# synced from REST \(connect\): 1 orders, 1 open$")
        sim.publish("orders", "UPDATE", {"orderId": 7, "matchedStake": 40.0},
                    old={"matchedStake": 0.0}, require=True)  # partial: no exchange, no price
        logger.expect(r"FILL order=7 exchange=kalshi matched=40.0 \(\+40.0 of 100.0\) "
                      r"price=0.4$")

        sim.reject_handshakes(503)  # the logger stays away until the fills below are done
        sim.drop_connections()
        logger.expect(r"^# disconnected: .*; reconnecting$")
        sim.publish("orders", "UPDATE",
                    {"orderId": 7, "matchedStake": 100.0, "orderStatus": "FILLED"},
                    old={"matchedStake": 40.0, "orderStatus": "PLACED"})
        sim.publish("orders", "INSERT", {**resting, "orderId": 8, "exchange": "sxbet",
                                         "orderStake": 50.0, "matchedStake": 25.0})
        sim.reject_handshakes(None)
        logger.expect(r"^# synced from REST \(reconnect\): 2 orders, 1 open$")
        missed = {logger.expect(FILL).group(0)[9:] for _ in range(2)}
        assert missed == {
            "FILL order=7 exchange=kalshi matched=100.0 (+60.0 of 100.0) price=0.4 [from REST]",
            "FILL order=8 exchange=sxbet matched=25.0 (+25.0 of 50.0) price=0.4 [from REST]",
        }
        assert logger.interrupt() == 0
        assert logger.output[-1] == "# stopped"
        assert sum(" FILL " in line for line in logger.output) == 3


# -- balance_alarm.py ---------------------------------------------------------------------------


@pytest.mark.slow  # runs for two seconds
def test_the_balance_alarm_fires_once_per_account_below_a_high_threshold() -> None:
    done = run_example("balance_alarm.py", "--below", "1000000", "--duration", "2")
    assert done.returncode == 0, done.stderr
    assert "# synced from REST (connect): watching 2 accounts, alarm below 1000000.00\n" in (
        done.stdout)  # first, unless a balance update came during that first REST read
    alarms = [ALARM_BALANCE.match(line) for line in done.stdout.splitlines()
              if line.startswith("ALARM balance")]
    accounts = {(m["exchange"], m["user"]) for m in alarms if m is not None}
    assert len(alarms) == len(accounts) == 2, done.stdout  # once each, although fills go on
    assert all(m is not None and float(m["balance"]) < 1000000 for m in alarms)


@pytest.mark.slow  # runs for two seconds
def test_the_balance_alarm_stays_quiet_below_a_very_low_threshold() -> None:
    done = run_example("balance_alarm.py", "--below", "0.01", "--duration", "2")
    assert done.returncode == 0, done.stderr
    assert "watching 2 accounts, alarm below 0.01" in done.stdout
    assert "ALARM balance" not in done.stdout


def test_the_balance_alarm_follows_drops_recoveries_outages_and_the_emergency_switch(
    sim: Simulator,
) -> None:
    (first, second) = sorted(sim.truth().accounts)  # two accounts at 50,000 each
    with Running("balance_alarm.py", "--url", sim.mm_url, "--below", "40000",
                 api_key=sim.api_key) as alarm:
        alarm.expect(r"^# synced from REST \(connect\): watching 2 accounts, "
                     r"alarm below 40000.00$")

        def balance(account: tuple[str, str], new: float, old: float, **publish: Any) -> None:
            exchange, username = account
            sim.publish("accounts", "UPDATE", {"exchange": exchange, "username": username,
                                               "balance": new}, old={"balance": old}, **publish)

        balance(first, 100.0, 50000.0, require=True)
        alarm.expect(rf"^ALARM balance {first[0]} {first[1][:12]} 100.00 < 40000.00$")
        balance(first, 90.0, 100.0, require=True)  # still below: no second alarm
        balance(first, 45000.0, 90.0, require=True)
        alarm.expect(rf"^ok    balance {first[0]} {first[1][:12]} 45000.00 >= 40000.00$")

        sim.publish("emergency", "UPDATE",
                    {"emergency": True, "reason": "test switch", "triggeredAt": _now()},
                    require=True)
        alarm.expect(r"^ALARM emergency switch ON: test switch$")

        sim.reject_handshakes(503)
        sim.drop_connections()
        alarm.expect(r"^# disconnected: ")
        balance(second, 10.0, 50000.0)  # while the alarm is away: only REST will tell
        sim.reject_handshakes(None)
        alarm.expect(r"^# synced from REST \(reconnect\): watching 2 accounts")
        alarm.expect(rf"^ALARM balance {second[0]} {second[1][:12]} 10.00 < 40000.00$")
        assert alarm.interrupt() == 0
    lines = alarm.output
    assert sum(line.startswith("ALARM balance") for line in lines) == 2
    assert sum(line.startswith("ALARM emergency") for line in lines) == 1  # not after resync
    assert lines[-1] == "# stopped"


# -- both scripts -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, options", [("fill_logger.py", []),
                                           ("balance_alarm.py", ["--below", "1"])])
def test_a_url_without_a_key_in_the_environment_is_refused(name: str, options: list[str]) -> None:
    done = run_example(name, "--url", "ws://127.0.0.1:9/ws/subscribe", *options)
    assert done.returncode == 2 and done.stdout == ""
    assert "MMWS_API_KEY" in done.stderr


# -- notebook.ipynb -----------------------------------------------------------------------------


def test_the_notebook_runs_cell_by_cell_and_closes_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    notebook = json.loads((EXAMPLES / "notebook.ipynb").read_text(encoding="utf-8"))
    assert (notebook["nbformat"], notebook["nbformat_minor"]) == (4, 5)
    cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert len(cells) >= 4
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in cells)

    namespace: dict[str, Any] = {}
    try:
        for cell in cells:
            source = "".join(cell["source"])
            exec(compile(source, f"notebook cell {cell['id']}", "exec"), namespace)

        events = namespace["events"]
        assert len(events) == 50
        assert [type(e) for e in events[:2]] == [mmws.Connected, mmws.Subscribed]
        assert sum(isinstance(e, mmws.Resynced) for e in events) == 1
        assert any(isinstance(e, mmws.OrderEvent) for e in events)
        snap = namespace["snap"]
        assert len(snap.accounts) == 2 and set(snap.open_orders) <= set(snap.orders)
        printed = capsys.readouterr().out
        assert "open orders:" in printed and "balances:" in printed
        assert namespace["client"].health().state == "closed"  # by the last cell
        assert not namespace["sim"].listening
        assert not [t.name for t in threading.enumerate() if t.name.startswith("mmws")]
    finally:  # when a cell failed: close what the cells before it opened
        for name in ("client", "sim"):
            if name in namespace:
                namespace[name].close()
