"""A raw-socket WebSocket server for byte-level faults, on 127.0.0.1 port 0. Test-only.

Each accepted connection runs ``script(conn)`` on its own daemon thread; the script decides
every byte: a proper 101, a redirect, a dribble, a flood, a server that stops reading.
Every blocking read here has a deadline; ``close()`` shuts every socket and joins every
thread it started.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawConn:
    """One accepted connection, seen byte by byte."""

    def __init__(self, sock: socket.socket, server: HostileServer) -> None:
        self.sock = sock
        self.server = server
        self._buf = b""

    def read_request(self, timeout: float = 5.0) -> str:
        """The HTTP request head (up to the blank line), as text; also kept in
        ``server.requests``."""
        self.sock.settimeout(timeout)
        while b"\r\n\r\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the client closed before its request was complete")
            self._buf += chunk
            if len(self._buf) > 65536:
                raise ConnectionError("request head too large")
        head, _, self._buf = self._buf.partition(b"\r\n\r\n")
        text = head.decode("latin-1")
        self.server.requests.append(text)
        return text

    @staticmethod
    def accept_value(head: str) -> str:
        key = ""
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        digest = hashlib.sha1(key.encode() + _GUID).digest()
        return base64.b64encode(digest).decode()

    def upgrade_response(self, head: str) -> bytes:
        return (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {self.accept_value(head)}\r\n\r\n"
        ).encode()

    def accept(self, timeout: float = 5.0) -> str:
        """Read the request and answer 101; return the request head."""
        head = self.read_request(timeout)
        self.sock.sendall(self.upgrade_response(head))
        return head

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes, final: bool = True) -> None:
        self.sock.sendall(frame(opcode, payload, final))

    def send_text(self, text: str | Any) -> None:
        if not isinstance(text, str):
            text = json.dumps(text)
        self.send_frame(0x1, text.encode())

    def recv_frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next frame from the client, unmasked: ``(opcode, payload)``."""
        self.sock.settimeout(timeout)
        while True:
            parsed = _parse_client_frame(self._buf)
            if parsed is not None:
                opcode, payload, used = parsed
                self._buf = self._buf[used:]
                return opcode, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the client closed the connection")
            self._buf += chunk

    def recv_json(self, timeout: float = 5.0) -> Any:
        """The next text frame from the client as JSON (skipping pongs)."""
        while True:
            opcode, payload = self.recv_frame(timeout)
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x8:
                raise ConnectionError("the client sent a close frame")

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Read and discard until the client closes; True if it did within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except (TimeoutError, OSError):
            return False
        return True


def frame(opcode: int, payload: bytes, final: bool = True) -> bytes:
    """A server-to-client (unmasked) frame."""
    first = (0x80 if final else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


def _parse_client_frame(buf: bytes) -> tuple[int, bytes, int] | None:
    if len(buf) < 2:
        return None
    opcode = buf[0] & 0x0F
    length = buf[1] & 0x7F
    pos = 2
    if length == 126:
        if len(buf) < 4:
            return None
        length = struct.unpack("!H", buf[2:4])[0]
        pos = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length = struct.unpack("!Q", buf[2:10])[0]
        pos = 10
    masked = buf[1] & 0x80
    mask = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        mask = buf[pos : pos + 4]
        pos += 4
    if len(buf) < pos + length:
        return None
    data = buf[pos : pos + length]
    if masked:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return opcode, data, pos + length


class HostileServer:
    """Listens on 127.0.0.1, port 0; runs ``script`` for each connection."""

    def __init__(
        self,
        script: Callable[[RawConn], object],
        *,
        ssl_context: ssl.SSLContext | None = None,
        rcvbuf: int | None = None,
    ) -> None:
        self.script = script
        self.ssl_context = ssl_context
        self.listener = socket.create_server(("127.0.0.1", 0))
        if rcvbuf is not None:
            # inherited by accepted sockets: a small window fills fast when we stop reading
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.port = self.listener.getsockname()[1]
        self.requests: list[str] = []
        self.errors: list[BaseException] = []
        self.connections = 0
        self.stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._start(self._accept_loop)

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ws/subscribe"

    def _start(self, target: Callable[..., object], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="hostile")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._socks.append(sock)
                self.connections += 1
            self._start(self._serve, sock)

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self.ssl_context is not None:
                sock.settimeout(5)
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._socks.append(sock)
            self.script(RawConn(sock, self))
        except (OSError, ConnectionError, ssl.SSLError, ValueError) as exc:
            if not self.stop.is_set():
                self.errors.append(exc)

    def close(self) -> None:
        self.stop.set()
        for sock in [self.listener, *self._socks]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(5)

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hold(conn: RawConn) -> None:
    """Keep the connection open, reading and discarding, until the server stops."""
    conn.sock.settimeout(0.05)
    while not conn.server.stop.is_set():
        try:
            if not conn.sock.recv(65536):
                return
        except TimeoutError:
            continue


def subscribed_reply(channels: list[str] | None = None) -> str:
    return json.dumps(
        {
            "type": "subscribed",
            "subscriptionId": 1,
            "channels": channels
            if channels is not None
            else ["orders", "bets", "accounts", "scores", "emergency"],
        }
    )


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
