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
