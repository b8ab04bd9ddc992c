"""Shared fixtures: simulators on 127.0.0.1 port 0, and plain websocket-client connections."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from mmws.sim import Simulator

KEY_A = "11111111-1111-4111-8111-111111111111"
KEY_A2 = "22222222-2222-4222-8222-222222222222"
KEY_B = "33333333-3333-4333-8333-333333333333"
UNKNOWN_KEY = "44444444-4444-4444-8444-444444444444"


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Many tests open several clients of one key on purpose (connection limits, lines,
    witnesses): the notebook warning is tested on its own, in a fresh process."""
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("ignore::mmws.DuplicateClientWarning"))


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every server here is on 127.0.0.1: a proxy configured on the machine (which
    websocket-client would use) must not come between the tests and the simulator."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


class Wire:
    """A plain websocket-client connection with JSON helpers; every read has a deadline."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self.ws = ws

    def send(self, message: Any) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def recv_text(self, timeout: float = 2.0) -> str | bytes:
        self.ws.settimeout(timeout)
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise AssertionError(f"expected a message, got a close {_close(data)}")
        return data.decode() if opcode == websocket.ABNF.OPCODE_TEXT else data

    def recv(self, timeout: float = 2.0) -> Any:
        return json.loads(self.recv_text(timeout))

    def recv_until(self, predicate: Callable[[Any], bool], timeout: float = 2.0) -> Any:
        """Skip frames until one matches (each read has the deadline)."""
        for _ in range(1000):
            message = self.recv(timeout)
            if predicate(message):
                return message
        raise AssertionError("no matching frame in 1000")

    def recv_close(self, timeout: float = 2.0) -> tuple[int, str]:
        """Read until the server's close frame; its (code, reason). Data frames are skipped."""
        self.ws.settimeout(timeout)
        for _ in range(1000):
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return _close(data)
        raise AssertionError("no close frame")

    def silent(self, seconds: float) -> bool:
        """True if nothing arrives within ``seconds`` (a negative check with a deadline)."""
        self.ws.settimeout(seconds)
        try:
            self.ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return True
        return False

    def subscribe(self, api_key: str, channels: list[str] | None = None, **extra: Any) -> Any:
        message: dict[str, Any] = {"type": "subscribe", "apiKey": api_key, **extra}
        message["channels"] = channels or ["orders", "bets", "accounts", "scores", "emergency"]
        self.send(message)
        return self.recv()

    def feed(self, action: str, **fields: Any) -> Any:
        self.send({"action": action, **fields})
        return self.recv()


def _close(data: bytes) -> tuple[int, str]:
    if len(data) < 2:
        return 1005, ""
    return struct.unpack("!H", data[:2])[0], data[2:].decode()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    """Simulator factory: rate 0, long heartbeat, two clients (A with two keys, B)."""
    sims: list[Simulator] = []

    def factory(**options: Any) -> Simulator:
        options.setdefault("api_keys", {KEY_A: "client-a", KEY_A2: "client-a", KEY_B: "client-b"})
        options.setdefault("rate", 0.0)
        options.setdefault("seed", 0)
        sim = Simulator(host="127.0.0.1", port=0, **options)
        sims.append(sim)
        return sim

    yield factory
    for sim in sims:
        sim.close()


@pytest.fixture
def sim(make_sim: Callable[..., Simulator]) -> Simulator:
    return make_sim()


@pytest.fixture
def connect() -> Iterator[Callable[..., Wire]]:
    """Open a plain websocket-client connection; closed (TCP) after the test."""
    opened: list[websocket.WebSocket] = []

    def factory(url: str, **options: Any) -> Wire:
        options.setdefault("timeout", 2.0)
        ws = websocket.create_connection(url, **options)
        opened.append(ws)
        return Wire(ws)

    yield factory
    for ws in opened:
        ws.shutdown()
