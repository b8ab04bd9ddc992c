"""The simulator's MM endpoint on the wire, row by row of the seed (mm-websocket.md).

Plain websocket-client connections only; every read has a deadline, nothing sleeps.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import websocket

from mmws.errors import ConfigError
from mmws.mm.models import Order, OrderStatus
from mmws.mm.protocol import MMProtocol
from mmws.sim import Scenario, Simulator

KEY_A = "11111111-1111-4111-8111-111111111111"  # client-a (conftest's make_sim)
KEY_A2 = "22222222-2222-4222-8222-222222222222"  # client-a too
KEY_B = "33333333-3333-4333-8333-333333333333"  # client-b
UNKNOWN_KEY = "44444444-4444-4444-8444-444444444444"
ALL = ["orders", "bets", "accounts", "scores", "emergency"]
SEED_FILL = {
    "orderId": 123,
    "fixtureId": "id1000000861624412",
    "outcomeId": 161,
    "exchange": "polymarket",
    "exchangeOrderId": "0x1a2b3c...",
    "orderStatus": "FILLED",
    "matchedStatus": "FULLY_MATCHED",
    "orderCents": 0.45,
    "orderStake": 100.0,
    "matchedStake": 100.0,
    "matchedAt": "2026-02-15T10:30:05Z",
}
SEED_FILL_OLD = {"orderStatus": "PLACED", "matchedStatus": "NOT_MATCHED", "matchedStake": 0}

Connect = Callable[..., Any]  # conftest.connect -> conftest.Wire
MakeSim = Callable[..., Simulator]


def subscribed(sim: Simulator, count: int) -> bool:
    return sim.wait_for(lambda: sum(c.subscribed for c in sim.active_connections) >= count, 2)


# -- connection flow ------------------------------------------------------------------------


def test_seed_flow_1_connect_needs_no_auth(sim: Simulator, connect: Connect) -> None:
    """Seed flow step 1: the upgrade needs no credentials, and nothing is sent unasked."""
    ws = connect(sim.mm_url)
    assert sim.wait_for(lambda: sim.stats.connections_active == 1, 2)
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}  # the first frame is the answer: nothing before it


def test_seed_flow_2_subscribe_within_auth_timeout_else_closed(
    make_sim: MakeSim, connect: Connect
) -> None:
    """Seed flow step 2 / limits row "Auth timeout": no subscribe in time -> closed (1008)."""
    sim = make_sim(auth_timeout=0.2)
    ws = connect(sim.mm_url)
    started = time.monotonic()
    code, reason = ws.recv_close(timeout=2)
    assert (code, reason) == (1008, "Authentication timeout")
    assert time.monotonic() - started >= 0.15


def test_seed_flow_2_subscribe_in_time_keeps_connection_open(
    make_sim: MakeSim, connect: Connect
) -> None:
    """Seed flow step 2: a subscribe inside the auth timeout keeps the connection."""
    sim = make_sim(auth_timeout=1.0)
    ws = connect(sim.mm_url)
    assert ws.subscribe(KEY_A)["type"] == "subscribed"
    assert ws.silent(1.2)  # past the auth timeout: no close
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}


def test_seed_flow_3_confirmation(sim: Simulator, connect: Connect) -> None:
    """Seed flow step 3: {"type":"subscribed","subscriptionId":N,"channels":[...]}."""
    first = connect(sim.mm_url).subscribe(KEY_A, ALL)
    second = connect(sim.mm_url).subscribe(KEY_B, ["scores", "orders"])
    assert first == {"type": "subscribed", "subscriptionId": 1, "channels": ALL}
    assert second == {"type": "subscribed", "subscriptionId": 2, "channels": ["scores", "orders"]}


def test_seed_flow_3_missing_channels_means_all(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.mm_url)
    ws.send({"type": "subscribe", "apiKey": KEY_A})
    assert ws.recv()["channels"] == ALL


def test_legacy_field_names_use_api_key_and_subscription_id(
    make_sim: MakeSim, connect: Connect
) -> None:
    """protocols.md A.2: the docs before 2026-04-18 spell api_key / subscription_id."""
    sim = make_sim(legacy_field_names=True)
    ws = connect(sim.mm_url)
    ws.send({"type": "subscribe", "api_key": KEY_A, "channels": ["orders"]})
    assert ws.recv() == {"type": "subscribed", "subscription_id": 1, "channels": ["orders"]}


def test_seed_flow_4_broadcast_carries_payload_and_old(sim: Simulator, connect: Connect) -> None:
    """Seed flow step 4 and the "Order fill" example, byte for byte as JSON."""
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A, ["orders"])
    assert sim.publish("orders", "UPDATE", SEED_FILL, SEED_FILL_OLD) == 1
    assert ws.recv() == {
        "type": "broadcast",
        "channel": "orders",
        "event": "UPDATE",
        "payload": SEED_FILL,
        "old": SEED_FILL_OLD,
    }


def test_publish_insert_has_no_old_and_accepts_a_model(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A, ["orders"])
    sim.publish("orders", "INSERT", Order(order_id=7, order_status=OrderStatus.PLACED))
    frame = ws.recv()
    assert frame["payload"] == {"orderId": 7, "orderStatus": "PLACED"}
    assert "old" not in frame


def test_seed_flow_5_ping_gets_pong(sim: Simulator, connect: Connect) -> None:
    """Seed flow step 5: {"type":"ping"} -> {"type":"pong"}, before and after subscribing."""
    ws = connect(sim.mm_url)
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}
    ws.subscribe(KEY_A)
    for _ in range(3):
        ws.send({"type": "ping"})
    assert [ws.recv() for _ in range(3)] == [{"type": "pong"}] * 3


def test_seed_flow_5_heartbeat_every_interval(make_sim: MakeSim, connect: Connect) -> None:
    """Seed flow step 5 / limits row "Server heartbeat interval": {"type":"heartbeat"}."""
    sim = make_sim(heartbeat_interval=0.1)
    started = time.monotonic()
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A)
    for _ in range(4):
        assert ws.recv(timeout=2) == {"type": "heartbeat"}
    # Four heartbeats span at least three intervals, however late the test reads them.
    assert time.monotonic() - started >= 0.29


def test_seed_limits_client_ping_interval_is_not_enforced(
    make_sim: MakeSim, connect: Connect
) -> None:
    """Limits row "Client ping interval (recommended)": a silent client is not dropped."""
    sim = make_sim(heartbeat_interval=0.05)
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A)
    for _ in range(6):  # 6 heartbeats (0.3 s) without a single ping from us
        assert ws.recv(timeout=1) == {"type": "heartbeat"}


def test_seed_flow_6_unsubscribe_stops_delivery(sim: Simulator, connect: Connect) -> None:
    """Seed flow step 6: after {"type":"unsubscribe"} nothing more is delivered."""
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A, ["orders", "scores"])
    ws.send({"type": "unsubscribe"})
    assert sim.wait_for(lambda: not sim.active_connections[0].subscribed, 2)
    assert sim.publish("orders", "INSERT", {"orderId": 1}) == 0
    assert sim.publish("scores", "UPDATE", {"fixtureId": "f"}) == 0
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}  # the next frame: no broadcast came in between


def test_seed_limits_defaults_match_the_docs() -> None:
    """Limits table: 5 connections per key, 30 s auth timeout, 60 s heartbeat."""
    with Simulator(port=0, rate=0) as sim:
        assert sim.max_connections_per_key == 5
        assert sim.auth_timeout == 30.0
        assert sim.heartbeat_interval == 60.0


# -- channels -------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["orders", "bets", "accounts"])
def test_seed_channels_client_filtered_only_to_same_client(
    channel: str, sim: Simulator, connect: Connect
) -> None:
    """Channels table, client-filtered rows: only connections of the key's client get it."""
    a = connect(sim.mm_url)
    a.subscribe(KEY_A)
    b = connect(sim.mm_url)
    b.subscribe(KEY_B)
    payload = {"orderId": 5} if channel != "accounts" else {"balance": 1.0}
    if channel == "bets":
        payload = {"betId": 9, "orderId": 5}
    assert sim.publish(channel, "UPDATE", payload, {"x": 1}, api_key=KEY_A) == 1
    assert a.recv()["payload"] == payload
    assert sim.publish(channel, "UPDATE", payload, api_key=KEY_B) == 1
    assert b.recv()["channel"] == channel
    a.send({"type": "ping"})
    assert a.recv() == {"type": "pong"}  # A never saw B's frame


def test_seed_channels_two_keys_of_one_client_share_its_data(
    sim: Simulator, connect: Connect
) -> None:
    """Client-filtered means per client, not per key: KEY_A and KEY_A2 are both client-a."""
    first = connect(sim.mm_url)
    first.subscribe(KEY_A, ["orders"])
    second = connect(sim.mm_url)
    second.subscribe(KEY_A2, ["orders"])
    assert sim.publish("orders", "INSERT", {"orderId": 3}, api_key=KEY_A2) == 2
    assert first.recv()["payload"] == second.recv()["payload"] == {"orderId": 3}


@pytest.mark.parametrize("channel", ["scores", "emergency"])
def test_seed_channels_global_to_every_subscriber(
    channel: str, sim: Simulator, connect: Connect
) -> None:
    """Channels table, global rows: every subscriber of the channel gets it."""
    wires = [connect(sim.mm_url) for _ in range(2)]
    wires[0].subscribe(KEY_A)
    wires[1].subscribe(KEY_B)
    payload = {"fixtureId": "id1"} if channel == "scores" else {"emergency": True}
    assert sim.publish(channel, "UPDATE", payload, api_key=KEY_A) == 2
    assert [w.recv()["payload"] for w in wires] == [payload, payload]


def test_seed_channels_only_subscribed_channels_are_delivered(
    sim: Simulator, connect: Connect
) -> None:
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A, ["scores"])
    assert sim.publish("orders", "INSERT", {"orderId": 1}) == 0
    assert sim.publish("scores", "UPDATE", {"fixtureId": "f"}) == 1
    assert ws.recv()["channel"] == "scores"


# -- limits and errors ----------------------------------------------------------------------


def test_seed_limits_max_connections_per_key_is_5(sim: Simulator, connect: Connect) -> None:
    """Limits row "Max connections per API key: 5" / error row "Connection limit exceeded"."""
    for _ in range(5):
        assert connect(sim.mm_url).subscribe(KEY_A)["type"] == "subscribed"
    sixth = connect(sim.mm_url)
    sixth.send({"type": "subscribe", "apiKey": KEY_A, "channels": ["orders"]})
    assert sixth.recv() == {"type": "error", "message": "Connection limit exceeded"}
    assert sixth.recv_close() == (1008, "Connection limit exceeded")
    assert connect(sim.mm_url).subscribe(KEY_B)["type"] == "subscribed"  # other keys unaffected


def test_seed_limits_closed_connection_frees_a_slot(
    make_sim: MakeSim, connect: Connect
) -> None:
    sim = make_sim(max_connections_per_key=1)
    first = connect(sim.mm_url)
    first.subscribe(KEY_A)
    first.ws.close()
    assert sim.wait_for(lambda: sim.stats.connections_active == 0, 2)
    assert connect(sim.mm_url).subscribe(KEY_A)["type"] == "subscribed"


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"type": "subscribe", "channels": ["orders"]}, "apiKey required"),
        ({"type": "subscribe", "apiKey": "", "channels": ["orders"]}, "apiKey required"),
        ({"type": "subscribe", "apiKey": "not-a-uuid"}, "Invalid apiKey format"),
        ({"type": "subscribe", "apiKey": 12345}, "Invalid apiKey format"),
        ({"type": "subscribe", "apiKey": UNKNOWN_KEY}, "Invalid API key"),
        ({"type": "subscribe", "api_key": KEY_A}, "apiKey required"),
    ],
    ids=["missing", "empty", "not-uuid", "wrong-type", "unknown", "legacy-spelling"],
)
def test_seed_errors_auth_error_frame_then_close_1008(
    message: dict[str, Any], text: str, sim: Simulator, connect: Connect
) -> None:
    """Error table rows "apiKey required", "Invalid apiKey format", "Invalid API key"."""
    ws = connect(sim.mm_url)
    ws.send(message)
    assert ws.recv() == {"type": "error", "message": text}
    assert ws.recv_close() == (1008, text)


def test_seed_errors_legacy_texts(make_sim: MakeSim, connect: Connect) -> None:
    """protocols.md A.5: before 2026-04-18 the texts read api_key required / format."""
    sim = make_sim(legacy_field_names=True)
    missing = connect(sim.mm_url)
    missing.send({"type": "subscribe", "apiKey": KEY_A})
    assert missing.recv()["message"] == "api_key required"
    bad = connect(sim.mm_url)
    bad.send({"type": "subscribe", "api_key": "nope"})
    assert bad.recv()["message"] == "Invalid api_key format"


def test_seed_errors_invalid_api_key_after_revoke_key(sim: Simulator, connect: Connect) -> None:
    """Error row "Invalid API key: not found or client is inactive": revoke_key/restore_key."""
    kept = connect(sim.mm_url)
    kept.subscribe(KEY_A, ["scores"])
    sim.revoke_key(KEY_A)
    ws = connect(sim.mm_url)
    ws.send({"type": "subscribe", "apiKey": KEY_A})
    assert ws.recv() == {"type": "error", "message": "Invalid API key"}
    assert sim.publish("scores", "UPDATE", {"fixtureId": "f"}) == 1  # open ones are kept
    sim.restore_key(KEY_A)
    assert connect(sim.mm_url).subscribe(KEY_A)["type"] == "subscribed"


def test_no_api_key_in_debug_logs(sim: Simulator, connect: Connect,
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A)
    ws.ws.close()
    assert sim.wait_for(lambda: sim.stats.connections_active == 0, 2)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "subscribe" in text  # websockets did log the frame ...
    assert KEY_A not in text  # ... without the key


def test_error_close_code_and_frame_are_configurable(make_sim: MakeSim, connect: Connect) -> None:
    sim = make_sim(error_close_code=4001, send_error_frames=False)
    ws = connect(sim.mm_url)
    ws.send({"type": "subscribe", "apiKey": UNKNOWN_KEY})
    assert ws.recv_close() == (4001, "Invalid API key")  # no error frame before the close


def test_seed_errors_plain_http_get_gets_426(sim: Simulator) -> None:
    """Errors page: a plain GET on /ws/subscribe answers 426 with the documented body."""
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=2)
    try:
        conn.request("GET", "/ws/subscribe")
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 426
    assert response.getheader("Content-Type") == "application/json"
    assert body == {
        "detail": "This endpoint requires a WebSocket connection. Use ws://host:port/ws/subscribe"
    }


def test_unknown_path_is_404(sim: Simulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=2)
    try:
        conn.request("GET", "/nope")
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 404


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "message must be a JSON object"),
        ('{"channels": []}', "Missing message type"),
        ('{"type": "hello"}', "Unknown message type: hello"),
        ('{"type": 7}', "Unknown message type: 7"),
        (f'{{"type": "subscribe", "apiKey": "{KEY_A}", "channels": "orders"}}',
         "channels must be a non-empty list of channel names"),
        (f'{{"type": "subscribe", "apiKey": "{KEY_A}", "channels": []}}',
         "channels must be a non-empty list of channel names"),
        (f'{{"type": "subscribe", "apiKey": "{KEY_A}", "channels": [1]}}',
         "channels must be a non-empty list of channel names"),
        (f'{{"type": "subscribe", "apiKey": "{KEY_A}", "channels": ["odds"]}}',
         "Unknown channel: odds"),
    ],
)  # fmt: skip
def test_bad_input_gets_an_error_frame_and_the_connection_stays(
    frame: str, text: str, sim: Simulator, connect: Connect
) -> None:
    ws = connect(sim.mm_url)
    ws.send(frame)
    assert ws.recv() == {"type": "error", "message": text}
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}


def test_bad_input_binary_frame(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.mm_url)
    ws.ws.send_binary(b"\x00\x01")
    assert ws.recv() == {"type": "error", "message": "binary frames are not supported"}


def test_bad_input_frame_over_max_size_closes_1009_others_unaffected(
    make_sim: MakeSim, connect: Connect
) -> None:
    sim = make_sim(max_size=1024)
    other = connect(sim.mm_url)
    other.subscribe(KEY_B, ["scores"])
    big = connect(sim.mm_url)
    big.send("x" * 5000)
    assert big.recv_close()[0] == 1009
    assert sim.publish("scores", "UPDATE", {"fixtureId": "f"}) == 1
    assert other.recv()["channel"] == "scores"


def test_bad_input_flood_does_not_affect_other_connections(
    sim: Simulator, connect: Connect
) -> None:
    flood = connect(sim.mm_url)
    calm = connect(sim.mm_url)
    calm.subscribe(KEY_B, ["scores"])
    for _ in range(3000):
        flood.send('{"type":"ping"}')
    sim.publish("scores", "UPDATE", {"fixtureId": "f"})
    assert calm.recv()["channel"] == "scores"
    calm.send({"type": "ping"})
    assert calm.recv() == {"type": "pong"}
    assert all(flood.recv() == {"type": "pong"} for _ in range(3000))


# -- scenario over the wire -----------------------------------------------------------------


def test_scenario_frames_decode_with_the_client_core(make_sim: MakeSim, connect: Connect) -> None:
    """The generated lifecycle uses the client's wire format: MMProtocol decodes all of it."""
    sim = make_sim(rate=400.0)
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A)
    proto = MMProtocol()
    channels = set()
    for _ in range(150):
        text = ws.recv_text()
        proto.receive_text(text, now=0.0)
        channels.add(json.loads(text)["channel"])
    events = proto.events_received()
    assert len(events) == 150
    assert {"orders", "accounts", "bets"} <= channels


def test_step_sends_the_scenario_sequence(sim: Simulator, connect: Connect) -> None:
    """Same seed -> the same events on the wire as the pure Scenario gives."""
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A)
    other = connect(sim.mm_url)
    other.subscribe(KEY_B)
    events = sim.step(40)
    expected = Scenario(0, ["client-a", "client-b"], start=sim.scenario_start).take(40)
    assert events == expected
    mine = [e.frame() for e in expected if e.client in (None, "client-a")]
    assert [ws.recv() for _ in mine] == mine


def test_the_scenario_waits_for_a_subscriber(
    make_sim: Callable[..., Simulator], connect: Connect
) -> None:
    """A client that subscribes late still sees the scenario from its first event."""
    sim = make_sim(rate=200.0, api_keys={KEY_A: "client-a"})
    # Deliberately let time pass with nobody subscribed (the condition under test, not a
    # synchronisation): at 200 events/s the scenario would be ~20 events in by now.
    threading.Event().wait(0.1)
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A)
    first = Scenario(0, ["client-a"], start=sim.scenario_start).take(3)
    assert [ws.recv() for _ in first] == [e.frame() for e in first]


# -- burst ----------------------------------------------------------------------------------


def test_burst_sends_count_frames_in_order(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.mm_url, skip_utf8_validation=True)
    ws.subscribe(KEY_A, ["orders"])
    ids: list[int] = []
    reader = threading.Thread(target=lambda: ids.extend(ws.recv()["payload"]["orderId"]
                                                       for _ in range(5000)))
    reader.start()
    assert sim.burst(5000) == 5000
    reader.join(10)
    assert ids == list(range(1, 5001))
    assert sim.last_burst is not None and sim.last_burst.connections == 1


def test_burst_paced_at_rate(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A, ["orders"])
    started = time.monotonic()
    assert sim.burst(40, rate=200.0) == 40
    assert time.monotonic() - started >= 39 / 200.0
    frames = [ws.recv() for _ in range(40)]
    assert [f["payload"]["orderId"] for f in frames] == list(range(1, 41))
    assert frames[0]["old"] == {"orderStatus": "PLACED", "matchedStatus": "NOT_MATCHED",
                                "matchedStake": 0}


def test_burst_goes_only_to_the_key(sim: Simulator, connect: Connect) -> None:
    other = connect(sim.mm_url)
    other.subscribe(KEY_B, ["orders"])
    assert sim.burst(10) == 0
    assert sim.burst(10, api_key=KEY_B) == 10


# -- observation, CLI, shutdown -------------------------------------------------------------


def test_received_messages_and_counters(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.mm_url)
    before = time.monotonic()
    ws.subscribe(KEY_A, ["orders"])
    ws.send({"type": "ping"})
    ws.recv()
    assert sim.wait_for(lambda: len(sim.received_messages()) == 2, 2)
    first, second = sim.received_messages()
    assert first.json["type"] == "subscribe" and second.json == {"type": "ping"}
    assert before <= first.at <= second.at <= time.monotonic()
    info = sim.connections[0]
    assert (info.endpoint, info.client, info.channels, info.subscription_id) == (
        "mm", "client-a", ("orders",), 1
    )
    assert sim.wait_for(lambda: sim.stats.frames_sent == 2, 2)  # subscribed + pong
    stats = sim.stats
    assert (stats.connections_opened, stats.commands_received, stats.frames_sent) == (1, 2, 2)


def test_close_stops_and_joins_every_thread(connect: Connect) -> None:
    sim = Simulator(port=0, rate=100.0, heartbeat_interval=0.05, api_keys={KEY_A: "a"})
    ws = connect(sim.mm_url)
    ws.subscribe(KEY_A)
    assert any(t.name.startswith("mmws-sim-") for t in threading.enumerate())
    sim.close()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("mmws-sim-")]
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("mmws-sim-"))


def test_cli_rejects_a_bad_api_key(capsys: pytest.CaptureFixture[str]) -> None:
    from mmws.sim.__main__ import main

    assert main(["--port", "0", "--api-key", "not-a-uuid"]) == 1
    assert "cannot start the simulator" in capsys.readouterr().err


def test_cli_prints_url_and_key_and_exits_0_on_ctrl_c() -> None:
    """``python -m mmws.sim``: prints the URL and demo key, Ctrl-C exits 0, no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmws.sim", "--port", "0", "--rate", "5", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        url = lines[0].split()[-1]
        key = lines[1].split()[-1]
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/ws/subscribe")
        ws = websocket.create_connection(url, timeout=2)
        try:
            ws.send(json.dumps({"type": "subscribe", "apiKey": key, "channels": ["orders"]}))
            assert json.loads(ws.recv())["type"] == "subscribed"
        finally:
            ws.shutdown()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


# -- regressions: secrets in logs, bounded recording, option validation ---------------------

SECRET_KEY = "5f0c7a3e-9b1d-4c2e-8a6f-1d2e3c4b5a69"  # distinctive: no fragment occurs by chance
STRANGER_KEY = "7d9e2b4c-6a1f-4e3d-9c8b-2f1a0e9d8c7b"  # a real-looking key the sim does not know


def leaked(secret: str, text: str, size: int = 8) -> list[str]:
    """Every ``size``-character piece of ``secret`` found in ``text``."""
    pieces = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    return sorted(p for p in pieces if p in text)


def test_no_api_key_fragment_in_debug_logs_when_the_key_ends_a_long_frame(
    make_sim: MakeSim, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: websockets logs a long frame as its first and last characters only, so
    with ``apiKey`` as the last field the key's tail was logged without the ``"apiKey":"``
    the redaction pattern looks for. Frames are now redacted before they are shortened, and
    every known secret is hidden verbatim."""
    caplog.set_level(logging.DEBUG)
    sim = make_sim(api_keys={SECRET_KEY: "client-s"})
    ws = connect(sim.mm_url)
    # key last, "subscribe" not in the first characters either
    ws.send('{"channels": ["orders", "bets", "accounts", "scores", "emergency"], '
            '"type": "subscribe", "apiKey": "' + SECRET_KEY + '"}')  # fmt: skip
    assert ws.recv()["type"] == "subscribed"
    ws.send({"type": "subscribe", "channels": ["orders", "bets", "scores"], "apiKey": SECRET_KEY})
    assert ws.recv()["type"] == "subscribed"
    ws.send({"type": "ping", "padding": "p" * 100, "note": SECRET_KEY})  # any field: verbatim
    assert ws.recv() == {"type": "pong"}
    fragments = ('{"type": "subscribe", "apiKey": "' + SECRET_KEY[:20], SECRET_KEY[20:] + '"}')
    ws.ws.send_frame(websocket.ABNF.create_frame(fragments[0], websocket.ABNF.OPCODE_TEXT, 0))
    ws.ws.send_frame(websocket.ABNF.create_frame(fragments[1], websocket.ABNF.OPCODE_CONT, 1))
    assert ws.recv()["type"] == "subscribed"
    stranger = connect(sim.mm_url)  # a key the simulator does not know: the pattern hides it
    stranger.send({"type": "subscribe", "channels": ["orders", "scores"], "apiKey": STRANGER_KEY})
    assert stranger.recv()["type"] == "error"
    ws.ws.close()
    stranger.ws.close()
    assert sim.wait_for(lambda: sim.stats.connections_active == 0, 2)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "TEXT" in text and "****" in text  # websockets did log the frames, masked
    assert leaked(SECRET_KEY, text) == [] and leaked(STRANGER_KEY, text) == []


def test_received_messages_are_bounded(make_sim: MakeSim, connect: Connect) -> None:
    """Regression: every message was kept forever; a client sending 1 MiB frames grew the
    server's memory without limit. Now the last ``max_recorded_messages`` are kept per
    connection, and a message over ``max_recorded_size`` only as its first 256 characters."""
    sim = make_sim(max_recorded_messages=5, max_recorded_size=1000)
    ws = connect(sim.mm_url)
    for i in range(8):
        ws.send({"type": "ping", "n": i})
    ws.send("y" * 5000)
    assert sim.wait_for(lambda: sim.stats.commands_received == 9, 2)  # every one counted
    kept = sim.received_messages()
    assert [m.json["n"] for m in kept[:-1]] == [4, 5, 6, 7]  # the latest
    assert (kept[-1].data, kept[-1].size, kept[-1].truncated) == ("y" * 256, 5000, True)
    assert not kept[0].truncated and kept[0].size == len(kept[0].data)
    assert sim.connections[0].received == kept


def test_a_flood_of_large_messages_is_not_kept(sim: Simulator, connect: Connect) -> None:
    ws = connect(sim.mm_url, timeout=5)
    for _ in range(32):
        ws.send("x" * (2**20 - 16))  # just under max_size
    assert sim.wait_for(lambda: sim.stats.commands_received == 32, 10)
    kept = sim.received_messages()
    assert len(kept) == 32 and sum(len(m.data) for m in kept) == 32 * 256
    assert all(m.truncated and m.size == 2**20 - 16 for m in kept)


def test_closed_connections_are_bounded(make_sim: MakeSim, connect: Connect) -> None:
    sim = make_sim(max_closed_connections=2)
    kept_open = connect(sim.mm_url)
    for _ in range(4):
        ws = connect(sim.mm_url)
        ws.send({"type": "ping"})
        assert ws.recv() == {"type": "pong"}
        closed = sim.stats.connections_opened - sim.stats.connections_active
        ws.ws.close()
        assert sim.wait_for(
            lambda c=closed: sim.stats.connections_opened - sim.stats.connections_active > c, 2
        )
    assert [(c.id, c.open) for c in sim.connections] == [(1, True), (4, False), (5, False)]
    assert [m.connection_id for m in sim.received_messages()] == [4, 5]
    kept_open.send({"type": "ping"})
    assert kept_open.recv() == {"type": "pong"}


BAD_DURATIONS = [0, 0.0, -1.0, math.nan, math.inf, "1", True]


@pytest.mark.parametrize("value", BAD_DURATIONS, ids=repr)
@pytest.mark.parametrize(
    "option",
    ["heartbeat_interval", "auth_timeout", "feed_token_ttl", "feed_batch_interval",
     "close_timeout", "open_timeout"],
)  # fmt: skip
def test_bad_durations_are_refused(option: str, value: Any) -> None:
    """Regression: 0 or a negative interval re-armed the timer at once (a flood of
    heartbeats), NaN wedged it. Every duration must be a finite number > 0."""
    with pytest.raises(ConfigError, match=option):
        Simulator(port=0, api_keys={KEY_A: "a"}, rate=0, **{option: value})
    assert not [t.name for t in threading.enumerate() if t.name.startswith("mmws-sim-")]


@pytest.mark.parametrize(
    ("option", "value"),
    [("rate", math.nan), ("rate", math.inf), ("rate", -1.0), ("feed_rate", math.inf),
     ("port", 65536), ("port", -1), ("max_size", 0), ("max_send_queue", 0),
     ("max_recorded_messages", -1), ("max_recorded_size", -1), ("max_closed_connections", -1)],
)  # fmt: skip
def test_bad_options_are_refused(option: str, value: Any) -> None:
    options: dict[str, Any] = {"port": 0, "api_keys": {KEY_A: "a"}, "rate": 0, option: value}
    with pytest.raises(ConfigError, match=option):
        Simulator(**options)


def test_none_still_turns_the_optional_timers_off(make_sim: MakeSim, connect: Connect) -> None:
    sim = make_sim(heartbeat_interval=None, auth_timeout=None, feed_batch_interval=None)
    ws = connect(sim.mm_url)
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--heartbeat-interval", "0"], 2, "--heartbeat-interval: must be a positive number"),
        (["--heartbeat-interval", "nan"], 2, "--heartbeat-interval: must be a positive number"),
        (["--rate", "-1"], 2, "--rate: must be 0 or more"),
        (["--rate", "inf"], 2, "--rate: must be 0 or more"),
        (["--port", "99999"], 2, "port must be 0-65535"),
        (["--port", "-1"], 2, "port must be 0-65535"),
    ],
)
def test_cli_bad_option_is_one_error_line_without_traceback(
    args: list[str], status: int, message: str
) -> None:
    """Regression: ``--port 99999`` died with an OverflowError traceback, and
    ``--heartbeat-interval 0`` started a simulator flooding heartbeats."""
    proc = subprocess.run(
        [sys.executable, "-m", "mmws.sim", *(["--port", "0"] if "--port" not in args else []),
         *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    (line,) = proc.stderr.splitlines()  # no usage block: one line, as every mmws command
    assert line.startswith("mmws: error: ") and message in line, proc.stderr


@pytest.mark.parametrize("host", ["bad\0host", "a" * 300])
def test_a_host_the_socket_layer_chokes_on_is_a_config_error(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Such hosts raised TypeError / UnicodeError from the socket layer (and leaked its
    socket); now ConfigError, and one line from the CLI."""
    with pytest.raises(ConfigError, match="host"):
        Simulator(host, 0, api_keys={KEY_A: "a"}, rate=0)
    from mmws.sim.__main__ import main

    assert main(["--port", "0", "--host", host]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mmws: error: cannot start the simulator: host")


def test_cli_unexpected_startup_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No known input reaches this any more: inject a failure the CLI does not expect."""
    from mmws.sim import server
    from mmws.sim.__main__ import main

    def broken(self: Simulator, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr(server.Simulator, "__init__", broken)
    assert main(["--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err == "mmws: error: cannot start the simulator: RuntimeError: something unforeseen\n"


# -- ordering guarantees a test can build on --------------------------------------------------


def test_a_connection_is_counted_as_soon_as_connect_returns(
    sim: Simulator, connect: Connect
) -> None:
    """The simulator registers a connection before its 101 goes out: no wait is needed
    between a client's connect and the simulator's counts."""
    for n in range(1, 21):
        connect(sim.mm_url)
        assert sim.stats.connections_active == n
        assert len(sim.active_connections) == n
    assert sim.stats.connections_opened == 20


def test_the_subscribed_reply_comes_before_any_broadcast(
    make_sim: MakeSim, connect: Connect
) -> None:
    """With the scenario running flat out, every new subscription sees its confirmation
    first and broadcasts only after it."""
    sim = make_sim(rate=5000, max_connections_per_key=20)
    for _ in range(20):
        first = connect(sim.mm_url).subscribe(KEY_A)
        assert first["type"] == "subscribed", first
