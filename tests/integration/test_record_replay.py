"""Record a live session against the simulator, replay it, and get the same events.

End to end through the library (``MMClient(record=path)`` then ``mmws.replay``) and through
the command line (``mmws record`` then ``mmws replay``). Events compare with attrs equality,
which ignores ``received_at``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from clientutil import ctrl_c_works

import mmws
from mmws.cli import main
from mmws.sim import Simulator

KEY = "0b5e7a52-8f0e-4d7c-a1c3-3b9f1d2e4c55"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_keys={KEY: "client-a"}, rate=0, seed=7) as server:
        yield server


def take_data(client: mmws.MMClient, count: int, timeout: float = 10.0) -> list[Any]:
    """Every event up to and including the ``count``-th data event (deadline ``timeout``)."""
    deadline = time.monotonic() + timeout
    events: list[Any] = []
    while sum(isinstance(e, mmws.Broadcast) for e in events) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(events)} events in {timeout} s: {events[-5:]!r}"
        try:
            events.append(client.get(timeout=min(left, 0.2)))
        except queue.Empty:
            continue
    return events


def close_and_drain(client: mmws.MMClient) -> list[Any]:
    """Close, then every event still queued (ending with ``Closed``)."""
    client.close()
    rest = []
    while True:
        try:
            rest.append(client.get_nowait())
        except mmws.ClientClosed:
            return rest


def data(events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, mmws.Broadcast)]


@pytest.mark.parametrize("name", ["session.jsonl", "session.jsonl.gz"])
def test_replay_gives_the_live_sequence(sim: Simulator, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    client = mmws.MMClient(KEY, url=sim.mm_url, record=path).connect()
    sim.step(60)  # the seeded scenario: every channel, INSERTs, partial UPDATEs with old
    sim.publish("orders", "UPDATE", {"orderId": 9, "orderStatus": "PARTIAL"})  # unknown enum
    sim.send_raw('{"type":"broadcast","channel":"orders","payload":"broken"}', endpoint="mm")
    sim.send_raw('{"type":"brand_new","x":1}', endpoint="mm")
    sim.publish("scores", "UPDATE", {"fixtureId": "f1", "live": False})
    live = take_data(client, 62)
    # emergency jumps ahead of a backlog when live (replay keeps wire order): send it last
    sim.publish("emergency", "UPDATE", {"emergency": True, "reason": "Manual trigger"})
    live += take_data(client, 1)
    live += close_and_drain(client)

    replayed = list(mmws.replay(path))

    assert type(live[-1]) is mmws.Closed
    assert replayed == live[:-1]  # everything but the final Closed, in order
    assert len(data(replayed)) == 63
    assert {e.channel for e in data(replayed)} == {
        "orders",
        "bets",
        "accounts",
        "scores",
        "emergency",
    }
    assert any(isinstance(e, mmws.MalformedFrame) for e in replayed)
    assert any(isinstance(e, mmws.UnknownMessage) for e in replayed)
    assert data(replayed)[-3].payload.order_status == "PARTIAL"
    # the received_at of a replayed event is the wall time it was recorded at
    assert abs(data(replayed)[0].received_at - time.time()) < 60


def test_a_recording_spans_reconnects_and_never_holds_the_key(
    sim: Simulator, tmp_path: Path
) -> None:
    path = tmp_path / "reconnect.jsonl"
    client = mmws.MMClient(KEY, url=sim.mm_url, record=path, backoff_base=0.01).connect()
    sim.step(10)
    live = take_data(client, 10)
    sim.drop_connections()
    live += take_data_after_resubscribe(client)
    sim.step(10)
    live += take_data(client, 10)
    live += close_and_drain(client)

    replayed = list(mmws.replay(path))

    assert data(replayed) == data(live)
    connects = [e for e in replayed if isinstance(e, mmws.Connected)]
    assert [e.attempt for e in connects] == [0, 1]
    assert KEY not in path.read_text()
    assert "apiKey" not in path.read_text()


def take_data_after_resubscribe(client: mmws.MMClient) -> list[Any]:
    deadline = time.monotonic() + 10
    events: list[Any] = []
    while not (events and isinstance(events[-1], mmws.Subscribed)):
        assert time.monotonic() < deadline, events
        try:
            events.append(client.get(timeout=0.2))
        except queue.Empty:
            continue
    return events


def test_replay_keeps_the_pacing_when_asked(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "paced.jsonl"
    client = mmws.MMClient(KEY, url=sim.mm_url, record=path).connect()
    sim.publish("emergency", "UPDATE", {"emergency": True})
    take_data(client, 1)
    sim.publish("emergency", "UPDATE", {"emergency": False})
    take_data(client, 1)
    close_and_drain(client)
    lines = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    span = lines[-1]["t"] - lines[0]["t"]

    started = time.monotonic()
    events = list(mmws.replay(path, speed=span / 0.2 if span > 0 else 1.0))
    elapsed = time.monotonic() - started

    assert [e.payload.emergency for e in data(events)] == [True, False]
    assert elapsed >= min(0.2, span) * 0.9


# -- the command line ----------------------------------------------------------------------------

# the time of day, or blanks when a replayed line has none (the file times frames only)
TIME = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}| {12}) ")


def test_mmws_record_then_replay_prints_the_same_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cli.jsonl"
    # not emergency: it jumps ahead of a backlog live, and replay keeps wire order
    channels = "orders,bets,accounts,scores"
    code = main(["record", str(path), "--duration", "2", "--rate", "60", "--channels", channels])
    assert code == 0
    live = capsys.readouterr().out.splitlines()
    assert main(["replay", str(path)]) == 0
    again = capsys.readouterr().out.splitlines()

    def events(lines: list[str]) -> list[str]:
        # data lines and the subscription, without the time of day
        return [
            TIME.sub("", line)
            for line in lines
            if TIME.match(line) and "-- connected" not in line and "-- closed" not in line
        ]

    recorded = events(live)
    assert len([line for line in recorded if not line.startswith("--")]) >= 20
    assert events(again) == recorded
    assert f"recorded to {path}" in "\n".join(live)
    assert f"replayed from {path}" in "\n".join(again)


def test_mmws_record_then_replay_as_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cli.jsonl.gz"
    code = main(
        [
            "record",
            str(path),
            "--duration",
            "2",
            "--rate",
            "60",
            "--jsonl",
            "--channels",
            "orders,bets,accounts",
        ]
    )
    assert code == 0
    live = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["replay", str(path), "--jsonl", "--speed", "1000"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    def events(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "time"} for r in records if "channel" in r]

    assert len(events(live)) >= 10
    assert {r["channel"] for r in events(live)} <= {"orders", "bets", "accounts"}
    assert events(again) == events(live)
    # the time a replayed event shows is the time it was recorded
    live_times = [r["time"] for r in live if "channel" in r]
    again_times = [r["time"] for r in again if "channel" in r]
    assert again_times[0][:19] == live_times[0][:19]


def test_ctrl_c_stops_a_slow_replay_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "short.jsonl"
    assert main(["record", str(path), "--duration", "1.5", "--rate", "60"]) == 0
    capsys.readouterr()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "mmws.cli", "replay", str(path), "--speed", "0.01"],
        encoding="utf-8",
        timeout=15,
        preexec_fn=ctrl_c_works,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        child.expect("-- subscribed")  # then the replay waits: 100 times slower than live
        child.sendintr()
        child.expect("summary after")
        child.expect(pexpect.EOF)
        output = child.before
    finally:
        child.close()
    assert child.exitstatus == 0, output
    assert "Traceback" not in output
