"""The mmws_sim fixture works from a project outside mmws (pytest11 entry point)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TEST = '''
import json
import threading

import pytest
import websocket


def test_fresh_simulator(mmws_sim):
    assert mmws_sim.rate == 0.0
    ws = websocket.create_connection(mmws_sim.mm_url, timeout=2)
    try:
        ws.send(json.dumps({"type": "subscribe", "apiKey": mmws_sim.api_key,
                            "channels": ["orders"]}))
        assert json.loads(ws.recv())["type"] == "subscribed"
        assert mmws_sim.publish("orders", "INSERT", {"orderId": 1}) == 1
        assert json.loads(ws.recv())["payload"] == {"orderId": 1}
    finally:
        ws.close()


@pytest.mark.mmws_sim(heartbeat_interval=0.05)
def test_marker_options(mmws_sim):
    ws = websocket.create_connection(mmws_sim.mm_url, timeout=2)
    try:
        assert json.loads(ws.recv()) == {"type": "heartbeat"}
    finally:
        ws.close()


def test_no_simulator_threads_left():
    assert not [t for t in threading.enumerate() if t.name.startswith("mmws-sim-")]
'''


def test_mmws_sim_fixture_in_a_user_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_plugin_does_not_import_the_simulator(pytester: pytest.Pytester) -> None:
    """Loading the plugin must not import websockets (only the fixture does)."""
    pytester.makepyfile(
        test_lazy="""
import sys

def test_lazy():
    assert "mmws.testing" in sys.modules
    assert "mmws.sim" not in sys.modules
    assert "websockets" not in sys.modules
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


HELPERS_TEST = '''
import pytest

import mmws
from mmws.sim import NotDelivered, UnreachedWarning


def test_a_publish_before_the_subscription_fails_at_once(mmws_sim):
    with pytest.warns(UnreachedWarning, match="reached no client: no MM connection is subscribed"):
        assert mmws_sim.publish("orders", "INSERT", {"orderId": 1}) == 0
    with pytest.raises(NotDelivered, match="wait_subscribed"):
        mmws_sim.publish("orders", "INSERT", {"orderId": 1}, require=True)


def test_a_client_in_one_line(mmws_sim):
    client = mmws_sim.mm_client(channels=["orders"])
    assert mmws_sim.wait_subscribed(1, timeout=5, channel="orders") == 1
    assert mmws_sim.publish("orders", "INSERT", {"orderId": 7}, require=True) == 1
    events = [client.get(timeout=5) for _ in range(3)]
    assert [type(e).__name__ for e in events] == ["Connected", "Subscribed", "OrderEvent"]
    with pytest.raises(TimeoutError, match="0 MM connection.s. subscribed to 'bets' within"):
        mmws_sim.wait_subscribed(1, timeout=0.1, channel="bets")
    with pytest.raises(TimeoutError, match="1 MM connection.s. subscribed within 0.1 s, not 2"):
        mmws_sim.wait_subscribed(2, timeout=0.1)


def test_the_client_was_closed_with_the_simulator():
    import threading
    assert not [t for t in threading.enumerate() if t.name.startswith("mmws-reader")]
'''


def test_the_simulator_helpers_in_a_user_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_helpers=HELPERS_TEST)
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider", "-p",
                                           "no:randomly")  # fmt: skip
    result.assert_outcomes(passed=3)
