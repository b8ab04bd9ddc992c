"""Proxy options pass through to websocket-client: a tiny HTTP CONNECT proxy on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from clientutil import KEY, collect_until, of_type

import mmws
from mmws.sim import Simulator


class ConnectProxy:
    """Accepts CONNECT host:port, answers 200 and pipes bytes both ways. Test-only."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._start(self._accept)

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self._open.append(client)
            self._start(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        self.requests.append(line)
        host, port = line.split()[1].rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        self._open.append(upstream)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._start(self._pipe, upstream, client)
        self._pipe(client, upstream)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self.sock.close()
        for s in self._open:
            s.close()
        for t in self._threads:
            t.join(2)


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    p = ConnectProxy()
    yield p
    p.close()


def test_the_client_connects_through_an_http_proxy(proxy: ConnectProxy) -> None:
    with Simulator(api_keys={KEY: "a"}, rate=0) as sim, \
            mmws.MMClient(KEY, url=sim.mm_url, proxy_host="127.0.0.1",
                          proxy_port=proxy.port) as client:
        sim.publish("orders", "INSERT", {"orderId": 77})
        event = collect_until(client, of_type(mmws.OrderEvent))[-1]
        assert event.payload.order_id == 77
    assert proxy.requests == [f"CONNECT 127.0.0.1:{sim.port} HTTP/1.1"]


def test_no_proxy_in_the_environment_skips_the_proxy_for_that_host(
    proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "example.invalid, 127.0.0.1")
    monkeypatch.delenv("no_proxy", raising=False)
    with Simulator(api_keys={KEY: "a"}, rate=0) as sim, \
            mmws.MMClient(KEY, url=sim.mm_url, proxy_host="127.0.0.1",
                          proxy_port=proxy.port) as client:
        collect_until(client, of_type(mmws.Subscribed))
    assert proxy.requests == []
