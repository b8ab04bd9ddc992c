"""The ``mmws`` command, against the simulator over real sockets.

Most tests call :func:`mmws.cli.main` in this process (fast, and measured by coverage); the
acceptance checks run the real console entry point as a subprocess, and the Ctrl-C check
runs it under a pseudo-terminal. Every wait has a deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pexpect
import pytest
from clientutil import ctrl_c_works

import mmws
from mmws.cli import event_to_json, format_event, main
from mmws.feed.protocol import FeedProtocol
from mmws.mm.protocol import MMProtocol
from mmws.sim import Simulator

KEY = "6f1c1c4e-2f62-4a3e-9d7a-0b3f2a1e9c11"
UNKNOWN_KEY = "11111111-2222-4333-8444-555555555555"
NOT_A_UUID = "not-a-uuid-but-very-secret-7f3a"
DATA = Path(__file__).parent.parent / "data"
EVENT_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (orders|bets|accounts|scores|emergency) ")
CLI = [sys.executable, "-m", "mmws.cli"]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_keys={KEY: "client-a"}, rate=100.0, seed=3) as server:
        yield server


@pytest.fixture
def env() -> dict[str, str]:
    """The environment for a subprocess: no colour unless a test asks, no inherited key."""
    out = {k: v for k, v in os.environ.items() if k not in ("MMWS_API_KEY", "NO_COLOR")}
    out["NO_COLOR"] = "1"
    return out


def decode_mm(frame: str, at: float = 0.0) -> Any:
    proto = MMProtocol()
    proto.receive_text(frame, at)
    (event,) = proto.events_received()
    return event


def local(hour: int, minute: int, second: int, ms: int) -> float:
    return datetime(2026, 2, 15, hour, minute, second, ms * 1000).timestamp()


# -- formatting -------------------------------------------------------------------------------


def test_the_order_fill_from_the_docs_reads_as_one_line() -> None:
    event = decode_mm((DATA / "seed_order_fill.json").read_text())
    line = format_event(event, local(10, 30, 5, 123))
    body = "#123 status PLACED->FILLED stake 100.00 matched 0.00->100.00 @ 0.45 on polymarket"
    assert line == f"10:30:05.123 orders UPDATE {body}"
    assert format_event(event) == f"orders UPDATE {body}"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            '{"type":"broadcast","channel":"bets","event":"INSERT","payload":{"betId":456,'
            '"orderId":123,"bookmaker":"vertex","placedPrice":1.808,"placedStake":100.0,'
            '"betStatus":"placed"}}',
            "bets INSERT #456 order #123 status placed stake 100.00 @ 1.808 on vertex",
        ),
        (
            '{"type":"broadcast","channel":"bets","event":"UPDATE","payload":{"betId":456,'
            '"settlementStatus":"won"},"old":{"settlementStatus":"undecided"}}',
            "bets UPDATE #456 settlement UNDECIDED->WON",
        ),
        (
            '{"type":"broadcast","channel":"orders","event":"UPDATE","payload":{"orderId":7,'
            '"orderStatus":"PLACED","matchedStatus":"PARTIALLY_MATCHED","matchedStake":40.0,'
            '"orderStake":100.0,"orderCents":0.5},"old":{"matchedStatus":"NOT_MATCHED"}}',
            "orders UPDATE #7 status PLACED matching NOT_MATCHED->PARTIALLY_MATCHED "
            "stake 100.00 matched 40.00 @ 0.5",
        ),
        (
            '{"type":"broadcast","channel":"accounts","event":"UPDATE","payload":{"exchange":'
            '"kalshi","username":"0x1234567890abcdef","balance":90.5,"active":false},'
            '"old":{"balance":100.0}}',
            "accounts UPDATE user 0x1234..cdef on kalshi balance 100.00->90.50 active False",
        ),
        (
            (DATA / "seed_score_update.json").read_text(),
            "scores UPDATE fixture id1000000861624412 score 2-1 minute 67 period 2nd Half",
        ),
        (
            (DATA / "seed_emergency.json").read_text(),
            "emergency UPDATE flag ON reason Manual trigger",
        ),
        ((DATA / "seed_subscribed.json").read_text(), "-- subscribed #1 orders,bets"),
        ('{"type":"error","message":"Invalid API key"}', "!! server error: Invalid API key"),
        ('{"type":"surprise","x":1}', "!! unknown message type 'surprise'"),
    ],
)
def test_each_mm_event_kind_has_a_readable_line(frame: str, expected: str) -> None:
    assert format_event(decode_mm(frame)).startswith(expected)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            '{"type":"match_start","channel":"MAIN","matchId":"12345","leagueId":"1","ts":1,'
            '"data":{"teamA":{"name":"Arsenal"},"teamB":{"name":"Fulham"}}}',
            "MAIN match_start match 12345 Arsenal v Fulham",
        ),
        (
            '{"type":"goal","channel":"MAIN","matchId":"12345","data":{"timer":"35",'
            '"score":"1;0"}}',
            "MAIN goal match 12345 minute 35 score 1;0",
        ),
        (
            '{"type":"event","channel":"STATS","scope":"match","id":"12345","eventType":'
            '"stats_update","data":{"timer":"35","score":"1;0","possession":"55;45"}}',
            "STATS stats_update match 12345 minute 35 score 1;0 possession 55;45",
        ),
        (
            '{"type":"event","channel":"ODDS","scope":"match","id":"12345","eventType":'
            '"odds_update","data":{"live1x2":"1.85;3.60;4.20"}}',
            "ODDS odds_update match 12345 1x2 1.85;3.60;4.20",
        ),
        (
            '{"type":"stats_update_realtime","channel":"STATS_REALTIME","matchId":"9","data":'
            '{"changedStats":[{"stat":"possession","value":"56;44"},{"stat":"corners",'
            '"value":"5;2"},{"stat":"fouls","value":"1;1"},{"stat":"xg","value":"0.5;0.1"}]}}',
            "STATS_REALTIME stats_update_realtime match 9 possession 56;44 corners 5;2 "
            "fouls 1;1 +1 more",
        ),
        (
            '{"type":"odds_update_realtime","channel":"ODDS_REALTIME","matchId":"9","data":'
            '{"changedOdds":[{"market":"liveOU","value":"2.10;1.70|2.5"}]}}',
            "ODDS_REALTIME odds_update_realtime match 9 liveOU 2.1;1.7|2.5",
        ),
        (
            '{"type":"event","channel":"STATS","scope":"all","eventType":"batch_update",'
            '"data":{"matches":[{"matchId":"1"},{"matchId":"2"}]}}',
            "STATS batch_update matches 2",
        ),
        (
            '{"type":"error","code":"CHANNEL_NOT_ALLOWED","message":"no"}',
            "!! server error CHANNEL_NOT_ALLOWED: no",
        ),
    ],
)
def test_each_feed_event_kind_has_a_readable_line(frame: str, expected: str) -> None:
    proto = FeedProtocol()
    proto.receive_text(frame, 0.0)
    (event,) = proto.events_received()
    assert format_event(event) == expected


@pytest.mark.parametrize(
    ("balance", "shown"),
    [
        ("49992.41", "49,992.41"),
        ("500", "500.00"),
        ("500.0", "500.00"),
        ("1234.5", "1,234.50"),
        ("0.123456", "0.123456"),
        ("1234567.125", "1,234,567.125"),
        ("-12.5", "-12.50"),
        ("NaN", "nan"),
    ],
)
def test_money_has_two_decimals_and_thousands_separators_and_is_never_rounded(
    balance: str, shown: str
) -> None:
    event = decode_mm(
        '{"type":"broadcast","channel":"accounts","event":"UPDATE","payload":{"exchange":'
        f'"betfair","username":"u1","balance":{balance}}}}}'
    )
    assert format_event(event) == f"accounts UPDATE user u1 on betfair balance {shown}"


def test_old_values_of_amounts_and_prices_show_as_old_to_new() -> None:
    event = decode_mm(
        '{"type":"broadcast","channel":"orders","event":"UPDATE","payload":{"orderId":9,'
        '"orderStake":1500.0,"orderCents":0.55,"exchange":"sxbet"},'
        '"old":{"orderStake":1000.0,"orderCents":0.5,"exchange":"betfair"}}'
    )
    assert format_event(event) == (
        "orders UPDATE #9 stake 1,000.00->1,500.00 @ 0.5->0.55 on betfair->sxbet"
    )


def test_a_settled_bet_names_its_settlement_without_old() -> None:
    event = decode_mm(
        '{"type":"broadcast","channel":"bets","event":"UPDATE","payload":{"betId":3,'
        '"settlementStatus":"won"}}'
    )
    assert format_event(event) == "bets UPDATE #3 settlement WON"


def test_the_emergency_flag_is_labelled_and_shows_its_change() -> None:
    event = decode_mm(
        '{"type":"broadcast","channel":"emergency","event":"UPDATE","payload":'
        '{"emergency":false},"old":{"emergency":true}}'
    )
    assert format_event(event) == "emergency UPDATE flag ON->OFF"


def test_control_characters_from_the_server_stay_on_one_line() -> None:
    """A newline in a reason would break the line; an escape sequence would reach the
    terminal (here: clear the screen). Both are shown escaped."""
    event = decode_mm(
        '{"type":"broadcast","channel":"emergency","event":"UPDATE","payload":'
        '{"emergency":true,"reason":"halt\\nnow\\u001b[2J\\u2028"}}'
    )
    line = format_event(event, 0.0, color=True)
    assert "\n" not in line and "\u2028" not in line
    assert "\x1b[2J" not in line
    assert line.endswith(" UPDATE flag ON reason halt\\nnow\\x1b[2J\\u2028")
    closed = format_event(mmws.Closed(mmws.ClientClosed("bye\r\nFAKE LINE")))
    assert closed == "!! closed: bye\\r\\nFAKE LINE"


# Every field of a data line: LABEL VALUE, after the id (#N) where there is one. The last
# label of a line may take the rest of it (free text with spaces).
LABELS = {"status", "matching", "settlement", "stake", "matched", "@", "on", "order",
          "balance", "active", "user", "fixture", "score", "minute", "period", "flag",
          "reason"}  # fmt: skip
REST_OF_LINE = {"period", "reason"}


def labelled_fields(line: str) -> list[tuple[str, str]]:
    """The (label, value) pairs of a data line; an AssertionError names a bare value."""
    tokens = line.split()[3:]  # after the time, the channel and the event
    if tokens and tokens[0].startswith("#"):
        tokens = tokens[1:]
    fields = []
    while tokens:
        label, *tokens = tokens
        assert label in LABELS, f"{label!r} is not a label in: {line}"
        assert tokens, f"{label!r} has no value in: {line}"
        if label in REST_OF_LINE:
            value, tokens = " ".join(tokens), []
        else:
            value, *tokens = tokens
        fields.append((label, value))
    return fields


def test_every_field_of_a_demo_line_has_a_label(capsys: pytest.CaptureFixture[str]) -> None:
    """The seeded session shows each kind of field; none is a bare value (as
    ``orders UPDATE #100006 187.69`` was)."""
    assert main(["demo", "--duration", "2", "--rate", "100"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if EVENT_LINE.match(line)]
    seen = {label for line in lines for label, _ in labelled_fields(line)}
    assert seen >= LABELS - {"active"}  # the seeded session never deactivates an account
    amounts = [value for line in lines for label, value in labelled_fields(line)
               if label in ("stake", "matched", "balance")]  # fmt: skip
    money = re.compile(r"\d{1,3}(,\d{3})*\.\d\d+")
    assert all(re.fullmatch(rf"{money.pattern}(->{money.pattern})?", v) for v in amounts)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (mmws.Connected("ws://h/ws/subscribe", 2), "-- connected ws://h/ws/subscribe (attempt 2)"),
        (mmws.Disconnected("gone", True), "-- disconnected: gone; reconnecting"),
        (mmws.Disconnected("refused", False), "!! disconnected: refused; not reconnecting"),
        (mmws.Reconnecting(1, 0.25), "-- reconnecting: attempt 1 in 0.25 s"),
        (mmws.Stale(12.0), "!! stale: server silent for 12.0 s; replacing the connection"),
        (mmws.Overflow("scores", 5), "!! overflow: 5 older scores events coalesced away"),
        (mmws.Closed(), "-- closed"),
        (mmws.Closed(mmws.AuthenticationError("Invalid API key")), "!! closed: Invalid API key"),
        (mmws.Pong(0.0015), "-- pong rtt 1.5 ms"),
        (mmws.Heartbeat(), "-- heartbeat"),
        (mmws.Unsubscribed(), "-- unsubscribed"),
        (mmws.FeedSubscribed("MAIN", "all", "MAIN:all"), "-- subscribed MAIN:all"),
        (mmws.FeedUnsubscribed("MAIN", "all", "MAIN:all"), "-- unsubscribed MAIN:all"),
        (
            mmws.MalformedFrame(mmws.RemoteProtocolError("bad frame")),
            "!! malformed frame skipped: bad frame",
        ),
        ("something else", "-- 'something else'"),
    ],
)
def test_lifecycle_events_are_marked(event: Any, expected: str) -> None:
    assert format_event(event) == expected


def test_color_is_ansi_and_only_on_request() -> None:
    event = decode_mm((DATA / "seed_order_fill.json").read_text())
    plain = format_event(event, 0.0)
    colored = format_event(event, 0.0, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[36morders\x1b[0m" in colored
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == plain
    assert format_event(mmws.Closed(mmws.ClientClosed("x")), color=True).startswith("\x1b[1;31m")


def test_json_lines_carry_typed_fields_without_nones() -> None:
    event = decode_mm((DATA / "seed_order_fill.json").read_text(), at=5.0)
    record = json.loads(event_to_json(event, local(10, 30, 5, 123)))
    assert record["type"] == "OrderEvent"
    assert record["channel"] == "orders"
    assert record["event"] == "UPDATE"
    assert record["time"].endswith("Z") and len(record["time"]) == 24
    assert record["payload"]["order_id"] == 123
    assert record["payload"]["order_status"] == "FILLED"
    assert record["payload"]["matched_at"] == "2026-02-15T10:30:05Z"
    assert "settled_at" not in record["payload"]
    assert record["old"] == {
        "order_status": "PLACED",
        "matched_status": "NOT_MATCHED",
        "matched_stake": 0.0,
    }
    assert "received_at" not in record
    closed = json.loads(event_to_json(mmws.Closed(mmws.ClientClosed("bye"))))
    assert closed == {"type": "Closed", "error": "bye"}


# -- demo ---------------------------------------------------------------------------------------


def test_demo_as_a_subprocess_prints_typed_lines_and_a_summary(env: dict[str, str]) -> None:
    done = subprocess.run(
        [*CLI, "demo", "--duration", "2"], env=env, capture_output=True, text=True, timeout=30
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert len([line for line in lines if EVENT_LINE.match(line)]) >= 10
    assert any(line.startswith("summary after") for line in lines)
    assert any(re.match(r"  events +\d+ \(orders \d+", line) for line in lines)
    assert "  reconnects  0" in lines
    assert any(re.match(r"  latency +p50 [\d.]+ ms, p99 [\d.]+ ms", line) for line in lines)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr == ""


def test_demo_survives_ctrl_c_under_a_terminal() -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "mmws.cli", "demo"],
        encoding="utf-8",
        timeout=15,
        preexec_fn=ctrl_c_works,
        env={k: v for k, v in os.environ.items() if k != "NO_COLOR"},
    )
    try:
        for _ in range(3):
            child.expect(
                r"\d\d:\d\d:\d\d\.\d{3}\x1b\[0m \x1b\[[0-9;]+m(orders|bets|accounts|"
                r"scores|emergency)"
            )
        child.sendintr()
        child.expect("summary after")
        child.expect(pexpect.EOF)
        output = child.before
    finally:
        child.close()
    assert child.exitstatus == 0, output
    assert child.signalstatus is None
    assert "Traceback" not in output
    assert "KeyboardInterrupt" not in output


def test_demo_in_process_with_the_feed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--duration", "2", "--feed", "--rate", "60"]) == 0
    out = capsys.readouterr().out
    assert "-- subscribed MAIN:all" in out
    assert re.search(r"^\S+ (MAIN|STATS_REALTIME) \w+ match \d+", out, re.M)
    assert re.search(r"^\S+ orders (INSERT|UPDATE) #\d+", out, re.M)
    assert out.count("-- closed") == 2


def test_demo_with_state_shows_open_orders_and_balances(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--duration", "2", "--state", "--rate", "80"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"-- resynced \(connect\): \d+ orders, \d+ bets, 2 accounts", out)
    match = re.search(r"^state: (\d+) orders, \d+ bets, \d+ resyncs, 0 gaps; synced", out, re.M)
    assert match and int(match[1]) > 0
    assert re.search(r"^  open orders \(\d+\)$", out, re.M)
    open_order = r"    #\d+ status \w+ on \w+ stake [\d,]+\.\d\d+ matched [\d,]+\.\d\d+ @ [\d.]+"
    assert all(re.fullmatch(open_order, line) for line in re.findall(r"^    #.*$", out, re.M))
    balances = re.findall(r"^    user 0x[0-9a-f]{40} on \w+ balance \d{1,3}(,\d{3})*\.\d\d+$",
                          out, re.M)
    assert len(balances) == 2


def test_demo_jsonl_puts_notes_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--duration", "2", "--jsonl", "--rate", "60"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert records[0]["type"] == "Connected"
    assert records[-1] == {"type": "Closed", "time": records[-1]["time"]}
    assert any(r.get("channel") == "orders" for r in records)
    assert "summary after" in captured.err


def test_a_broken_pipe_ends_the_stream_quietly(env: dict[str, str]) -> None:
    with subprocess.Popen(
        [*CLI, "demo", "--jsonl", "--rate", "100"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        for _ in range(3):
            json.loads(proc.stdout.readline())
        proc.stdout.close()
        try:
            code = proc.wait(timeout=15)
        finally:
            proc.kill()
        err = proc.stderr.read()
    assert code == 0
    assert "Traceback" not in err
    assert "BrokenPipe" not in err


# -- listen -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [UNKNOWN_KEY, NOT_A_UUID], ids=["unknown-uuid", "not-a-uuid"])
def test_listen_with_a_bad_key_says_so_in_one_line(
    sim: Simulator, key: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMWS_API_KEY", key)
    assert main(["listen", "--url", sim.mm_url, "--channels", "orders,bets"]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    if key == UNKNOWN_KEY:
        assert line == "mmws: error: the server rejected the API key (Invalid API key)"
    else:
        assert line.startswith("mmws: error: api_key is not a valid UUID")
    assert key not in captured.out + captured.err
    assert key[-8:] not in captured.out + captured.err


@pytest.mark.parametrize("key", [UNKNOWN_KEY, NOT_A_UUID], ids=["unknown-uuid", "not-a-uuid"])
def test_listen_with_a_bad_key_as_a_subprocess(
    sim: Simulator, key: str, env: dict[str, str]
) -> None:
    done = subprocess.run(
        [*CLI, "listen", "--url", sim.mm_url],
        env={**env, "MMWS_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("mmws: error: ")
    assert "Traceback" not in done.stderr
    assert key not in done.stdout + done.stderr


def test_listen_prints_json_lines_and_never_the_key(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "listen",
            "--url",
            sim.mm_url,
            "--channels",
            "orders,scores",
            "--jsonl",
            "--duration",
            "2",
            "--api-key",
            KEY,
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert {r.get("channel") for r in records} <= {None, "orders", "scores"}
    assert sum(1 for r in records if r.get("channel")) >= 5
    subscribed = next(r for r in records if r["type"] == "Subscribed")
    assert subscribed["channels"] == ["orders", "scores"]
    assert "--api-key is visible to other users in process lists" in captured.err
    assert KEY not in captured.out + captured.err


def test_listen_verbose_logs_to_stderr_without_the_key(
    sim: Simulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMWS_API_KEY", KEY)
    assert main(["listen", "--url", sim.mm_url, "-v", "--duration", "2"]) == 0
    captured = capsys.readouterr()
    assert f"mmws: INFO mmws.client: connected to {sim.mm_url}" in captured.err
    assert KEY not in captured.out + captured.err


def test_listen_beyond_the_connection_limit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMWS_API_KEY", KEY)
    with Simulator(api_keys={KEY: "a"}, rate=0, max_connections_per_key=1) as sim:
        holder = mmws.MMClient(KEY, url=sim.mm_url).connect()
        try:
            assert main(["listen", "--url", sim.mm_url]) == 1
        finally:
            holder.close()
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "mmws: error: the server refused the connection: too many open for this key "
        "(Connection limit exceeded"
    )


def test_listen_without_a_key_explains_where_it_comes_from(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMWS_API_KEY", raising=False)
    assert main(["listen", "--url", "ws://127.0.0.1:9/ws/subscribe"]) == 1
    assert capsys.readouterr().err == (
        "mmws: error: no API key: set the MMWS_API_KEY environment variable\n"
    )


def test_listen_to_nothing_is_a_connect_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMWS_API_KEY", KEY)
    with Simulator(api_keys={KEY: "a"}, rate=0) as gone:
        url = gone.mm_url
    assert main(["listen", "--url", url]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("mmws: error: could not connect: ")


def test_a_fatal_error_mid_stream_ends_listen_with_one_line(
    sim: Simulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMWS_API_KEY", KEY)

    def refuse_after_subscribe() -> None:
        sim.wait_for(lambda: any(c.subscribed for c in sim.active_connections), timeout=10)
        sim.reject_handshakes(401)  # the reconnect will be refused: fatal
        sim.close_connections(1012, "service restart")  # queued after "subscribed"

    helper = threading.Thread(target=refuse_after_subscribe, name="test-refuser")
    helper.start()
    try:
        code = main(["listen", "--url", sim.mm_url, "--duration", "20"])
    finally:
        helper.join(10)
    captured = capsys.readouterr()
    assert code == 1
    assert "-- disconnected:" in captured.out
    assert "!! closed:" in captured.out
    (line,) = captured.err.splitlines()
    assert line.startswith("mmws: error: could not connect: ") and "401" in line


# -- arguments, help, errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message", "prog"),
    [
        ([], "the following arguments are required: COMMAND", "mmws"),
        (["fly"], "unknown command 'fly'; choose from demo, sim, listen, record, replay, relay",
         "mmws"),
        (["listen", "--channels", "orders,nope"], "argument --channels: unknown channel 'nope'",
         "mmws listen"),
        (["listen", "--channels", ","], "argument --channels: no channel", "mmws listen"),
        (["demo", "--duration", "-1"], "argument --duration: must be a positive number",
         "mmws demo"),
        (["demo", "--rate", "fast"], "argument --rate: not a number", "mmws demo"),
        (["demo", "--rate", "-3"], "argument --rate: must be 0 or more", "mmws demo"),
        (["demo", "extra"], "unrecognized arguments: extra", "mmws demo"),
        (["replay"], "the following arguments are required: FILE", "mmws replay"),
        (["replay", "x", "--speed", "0"], "argument --speed: must be", "mmws replay"),
        (["replay", "x", "--speed", "soon"], "argument --speed: not a", "mmws replay"),
        (["sim", "--port", "99999"], "argument --port: port must be 0-65535", "mmws sim"),
        (["sim", "--rate", "-1"], "argument --rate: must be 0 or more", "mmws sim"),
        (["sim", "--heartbeat-interval", "0"],
         "argument --heartbeat-interval: must be a positive number", "mmws sim"),
        (["sim", "--heartbeat-interval", "nan"],
         "argument --heartbeat-interval: must be a positive number", "mmws sim"),
        (["sim", "extra"], "unrecognized arguments: extra", "mmws sim"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One form for every command, the simulator's too: ``mmws: error: <message>``, then
    where the help is."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith(f"mmws: error: {message}")
    assert line.endswith(f" (see '{prog} --help')")
    assert captured.out == ""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["demoo"], "unknown command 'demoo' (did you mean 'demo'?)"),
        (["lisen", "--jsonl"], "unknown command 'lisen' (did you mean 'listen'?)"),
        (["replya", "x.jsonl"], "unknown command 'replya' (did you mean 'replay'?)"),
        (["simm"], "unknown command 'simm' (did you mean 'sim'?)"),
        (["listen", "--durration", "5"],
         "unrecognized arguments: --durration 5 (did you mean '--duration'?)"),
        (["record", "x.jsonl", "--chanels=orders"],
         "unrecognized arguments: --chanels=orders (did you mean '--channels'?)"),
        (["sim", "--prot", "0"], "unrecognized arguments: --prot 0 (did you mean '--port'?)"),
    ],
)  # fmt: skip
def test_a_misspelt_command_or_option_gets_a_suggestion(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"mmws: error: {expected}\n"
    assert captured.out == ""


def test_a_misspelt_command_as_a_subprocess(env: dict[str, str]) -> None:
    done = subprocess.run(
        [*CLI, "demoo"], env=env, capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "mmws: error: unknown command 'demoo' (did you mean 'demo'?)\n"


def _option_defaults() -> Iterator[tuple[str, str, Any, str]]:
    """(command, option, default, help) of every option that takes a value."""
    from mmws._cliargs import build_parser as mmws_parser
    from mmws.sim.__main__ import build_parser

    parsers: dict[str, Any] = {**mmws_parser().commands, "sim": build_parser("mmws sim")}
    for command, parser in parsers.items():
        for action in parser._actions:
            if action.option_strings and action.nargs != 0:
                yield command, action.option_strings[-1], action.default, action.help or ""


@pytest.mark.parametrize(
    ("command", "option", "default", "text"),
    list(_option_defaults()),
    ids=[f"{c} {o}" for c, o, _, _ in _option_defaults()],
)
def test_every_option_states_its_default(
    command: str, option: str, default: Any, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every option that takes a value says what it is without one, and says it right."""
    stated = re.search(r"\(default: ([^)]*)\)", text)
    assert stated, f"mmws {command} {option}: {text!r}"
    if isinstance(default, float):
        assert stated[1].startswith(f"{default:g}")
    elif isinstance(default, tuple):
        assert stated[1] == ",".join(default)
    elif default is not None:
        assert stated[1] == str(default)
    assert main([command, "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())  # as printed, unwrapped
    assert " ".join(text.split()) in help_text


@pytest.mark.parametrize("command", ["demo", "listen", "record", "replay"])
def test_help_reads_well_for_every_command(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mmws {command}")
    assert "example" in out
    assert "--jsonl" in out


def test_top_level_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "sim", "listen", "record", "replay"):
        assert re.search(rf"^    {command} ", out, re.M), command
    assert "MMWS_API_KEY" in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"mmws {mmws.__version__}\n"


def test_python_dash_m_mmws_is_the_command(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mmws", "--version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"mmws {mmws.__version__}\n", "")


def test_sim_help_is_the_simulators(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: mmws sim ")
    for stated in ("(default: 127.0.0.1)", "(default: 8765)", "(default: 20)", "(default: 60)"):
        assert stated in out
    assert "example: mmws sim --port 0" in out


def test_sim_does_not_print_back_a_key_it_was_given(env: dict[str, str]) -> None:
    child = pexpect.spawn(
        sys.executable, [*CLI[1:], "sim", "--port", "0", "--api-key", KEY], env=env,
        encoding="utf-8", timeout=15, preexec_fn=ctrl_c_works,
    )  # fmt: skip
    try:
        child.expect("Ctrl-C to stop")
        shown = child.before
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert "MM API key:     as given with --api-key (\u20269c11)" in shown
    assert KEY not in shown and KEY[:8] not in shown
    assert child.exitstatus == 0


def test_sim_failing_to_start_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    with Simulator(rate=0) as taken:
        assert main(["sim", "--host", "127.0.0.1", "--port", str(taken.port)]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("mmws: error: cannot start the simulator: [Errno ")
    assert "in use" in line
    assert captured.out == ""


def test_sim_does_not_echo_a_key_given_by_mistake(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", KEY]) == 2
    err = capsys.readouterr().err
    assert err == "mmws: error: unrecognized arguments: *** (see 'mmws sim --help')\n"


def test_sim_runs_until_ctrl_c(env: dict[str, str]) -> None:
    child = pexpect.spawn(
        sys.executable, [*CLI[1:], "sim", "--port", "0"], env=env, encoding="utf-8", timeout=15,
        preexec_fn=ctrl_c_works,
    )
    try:
        child.expect(r"ws://127\.0\.0\.1:(\d+)/ws/subscribe")
        assert int(child.match.group(1)) > 0
        child.expect("Ctrl-C")
        child.sendintr()
        child.expect(pexpect.EOF)
        output = child.before
    finally:
        child.close()
    assert child.exitstatus == 0, output
    assert "Traceback" not in output


def test_replay_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.jsonl"
    assert main(["replay", str(missing)]) == 1
    assert capsys.readouterr().err.startswith(f"mmws: error: cannot read {missing}: ")
    junk = tmp_path / "junk.jsonl"
    junk.write_text("this is not json\n")
    assert main(["replay", str(junk)]) == 1
    assert capsys.readouterr().err == f"mmws: error: {junk} is not an mmws recording\n"
    other = tmp_path / "other.jsonl"
    other.write_text('{"something": "else"}\n')
    assert main(["replay", str(other)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "is not an mmws recording" in line


def test_record_to_a_missing_directory_fails_before_the_simulator_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "x.jsonl"
    assert main(["record", str(target), "--duration", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"mmws: error: cannot write {target}: no such directory {target.parent}\n"
    )
    assert captured.out == ""  # no "-- simulator on ..." line: nothing was started


def test_record_to_a_directory_fails_before_the_simulator_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["record", str(tmp_path), "--duration", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"mmws: error: cannot write {tmp_path}: ")
    assert captured.out == ""


def test_record_from_a_server_checks_the_file_before_connecting(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MMWS_API_KEY", KEY)
    target = tmp_path / "missing" / "x.jsonl"
    assert main(["record", str(target), "--url", sim.mm_url, "--duration", "1"]) == 1
    assert capsys.readouterr().err.startswith(f"mmws: error: cannot write {target}: ")
    assert sim.stats.connections_opened == 0


def test_the_check_of_a_recording_file_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is probed before anything starts; when the run then fails before the
    recording starts, a new file is not left behind and an existing one keeps its content."""
    monkeypatch.setenv("MMWS_API_KEY", KEY)
    new = tmp_path / "new.jsonl"
    kept = tmp_path / "kept.jsonl"
    kept.write_text("an earlier recording\n")
    for target in (new, kept):
        assert main(["record", str(target), "--url", "http://127.0.0.1:9/x"]) == 1
    (line, _) = capsys.readouterr().err.splitlines()
    assert line == "mmws: error: url must start with ws:// or wss://, got 'http://127.0.0.1:9/x'"
    assert not new.exists()
    assert kept.read_text() == "an earlier recording\n"


# -- damaged input and awkward values (found in review) ----------------------------------------

HEADER = {"mmws_recording": 1, "protocol": "mm", "started": "2026-01-01T00:00:00Z"}
SURROGATE = ('{"type":"broadcast","channel":"orders","event":"UPDATE",'
             '"payload":{"orderId":1,"orderStatus":"\\ud800"}}')
NON_FINITE = ('{"type":"broadcast","channel":"orders","event":"UPDATE",'
              '"payload":{"orderId":1,"orderStake":NaN,"orderCents":Infinity}}')


def recording(tmp_path: Path, *frames: str, extra: list[dict[str, Any]] | None = None) -> Path:
    path = tmp_path / "rec.jsonl"
    lines: list[dict[str, Any]] = [HEADER, {"t": 1.0, "connect": "ws://127.0.0.1:1/x"}]
    lines += [{"t": 2.0 + i, "frame": f} for i, f in enumerate(frames)]
    lines += extra or []
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.mark.parametrize(
    "bad",
    [{"t": 9.0, "frame": None}, {"t": 9.0}, {"t": 9.0, "frame": 5}, {"t": 1e300, "frame": "{}"},
     {"t": "soon", "frame": "{}"}, [1, 2]],
)
def test_a_damaged_recording_line_is_a_clear_error(
    tmp_path: Path, bad: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recording(tmp_path, extra=[bad])
    with pytest.raises(mmws.ConfigError, match=r"rec\.jsonl:3: not a recording line"):
        list(mmws.replay(path))
    assert main(["replay", str(path), "--speed", "1"]) == 1
    assert "rec.jsonl:3: not a recording line" in capsys.readouterr().err


def test_a_cut_off_gzip_recording_is_reported_as_damaged(tmp_path: Path) -> None:
    import gzip

    whole = tmp_path / "whole.jsonl.gz"
    with gzip.open(whole, "wt") as out:
        for item in [HEADER, *({"t": 2.0, "frame": SURROGATE} for _ in range(2000))]:
            out.write(json.dumps(item) + "\n")
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole.read_bytes()[:-40])
    with pytest.raises(mmws.ConfigError, match="cut off or damaged"):
        list(mmws.replay(cut))


@pytest.mark.parametrize("jsonl", [False, True])
def test_a_lone_surrogate_is_printed_escaped(
    tmp_path: Path, jsonl: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recording(tmp_path, SURROGATE)
    assert main(["replay", str(path), *(["--jsonl"] if jsonl else [])]) == 0
    out = capsys.readouterr().out
    assert "\\ud800" in out  # visible, and the write did not fail
    out.encode("utf-8")


def test_jsonl_stays_valid_json_for_non_finite_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recording(tmp_path, NON_FINITE)
    assert main(["replay", str(path), "--jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
               for line in lines]
    order = next(r for r in records if r["type"] == "OrderEvent")
    assert order["payload"]["order_stake"] == "nan" and order["payload"]["order_cents"] == "inf"


def test_a_key_given_as_an_argument_by_mistake_is_not_echoed(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["listen", KEY]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: ***" in err and KEY not in err


def test_odd_values_from_the_server_still_format() -> None:
    line = format_event(mmws.Subscribed([1], (1, "orders")))  # type: ignore[arg-type]
    assert "subscribed #[1] 1,orders" in line
