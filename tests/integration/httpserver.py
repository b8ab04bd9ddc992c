"""A scripted raw HTTP/1.1 server on 127.0.0.1 port 0, for the REST client's tests. Test-only.

Each test lists the answers (:class:`Reply`), taken in order, one per request; the server
records every request (:class:`Seen`) with the number of the connection it came on. An
answer can be well formed or not: a redirect, a dribble, a stall, a hang-up, a truncated
body, garbage, a huge ``Content-Length``, chunked encoding. Every blocking read has a
deadline; ``close()`` shuts every socket and joins every thread it started.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


@attrs.frozen
class Reply:
    """One scripted answer. ``body`` is sent as is when ``bytes`` or ``str``, else as JSON."""

    status: int = 200
    body: Any = b""
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False  # say "Connection: close", then close
    drop_after: bool = False  # close after the answer without saying so
    chunked: bool = False  # Transfer-Encoding: chunked, in chunks of ``chunk`` bytes
    chunk: int = 7
    dribble: bool = False  # one byte per send
    stall: bool = False  # read the request, then answer nothing until the server closes
    hangup: bool = False  # close right after reading the request
    cut: int | None = None  # send only this many bytes of the answer, then close
    content_length: int | None = None  # announce this length instead of the real one
    raw: bytes | None = None  # send exactly these bytes, then close

    def encode(self) -> bytes:
        body = self.body
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        payload = body.encode() if isinstance(body, str) else body
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Whatever')}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if not any(name.lower() == "content-type" for name, _ in self.headers):
            lines.append("Content-Type: application/json")
        if self.chunked:
            lines.append("Transfer-Encoding: chunked")
            step = max(1, self.chunk)
            parts = [payload[i : i + step] for i in range(0, len(payload), step)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        else:
            length = len(payload) if self.content_length is None else self.content_length
            lines.append(f"Content-Length: {length}")
        if self.close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def ok(body: Any, **kwargs: Any) -> Reply:
    return Reply(200, body, **kwargs)


@attrs.frozen
class Seen:
    """One request as the server read it."""

    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lowercase
    connection: int  # 1 for the first connection accepted, and so on


class ScriptedServer:
    """Listens on 127.0.0.1, port 0; answers each request with the next scripted reply
    (HTTP 599 when the script has run out, so a test that asks too much fails)."""

    def __init__(self, *replies: Reply, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.replies: list[Reply] = list(replies)
        self.requests: list[Seen] = []
        self.errors: list[BaseException] = []
        self.connections = 0
        self.closed_connections = 0  # closed by the server or seen closed by the client
        self.stop = threading.Event()
        self._cond = threading.Condition()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._start(self._accept_loop)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def add(self, *replies: Reply) -> None:
        with self._cond:
            self.replies.extend(replies)

    def wait_for(self, predicate: Callable[[ScriptedServer], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate(self)`` holds (checked whenever the server moves on)."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"the server did not get there in {timeout} s")

    def wait_requests(self, count: int, timeout: float = 5.0) -> list[Seen]:
        self.wait_for(lambda s: len(s.requests) >= count, timeout)
        return list(self.requests)

    def close(self) -> None:
        self.stop.set()
        with self._cond:
            self._cond.notify_all()
            socks = [self.listener, *self._socks]
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            thread.join(5)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside ----------------------------------------------------------------------------

    def _start(self, target: Callable[..., object], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="httpserver")
        with self._cond:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._cond:
                self._socks.append(sock)
                self.connections += 1
                number = self.connections
                self._cond.notify_all()
            self._start(self._serve, sock, number)

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            sock.settimeout(5)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                with self._cond:
                    self._socks.append(sock)
            buffer = b""
            while not self.stop.is_set():
                head, buffer = _read_head(sock, buffer)
                if head is None:
                    return  # the client closed the connection
                seen = _parse(head, number)
                with self._cond:
                    self.requests.append(seen)
                    reply = self.replies.pop(0) if self.replies else Reply(599, "no script")
                    self._cond.notify_all()
                if not self._answer(sock, reply):
                    return
        except (OSError, ValueError) as exc:
            if not self.stop.is_set():
                self.errors.append(exc)
        finally:
            try:
                sock.close()
            finally:
                with self._cond:
                    self.closed_connections += 1
                    self._cond.notify_all()

    def _answer(self, sock: socket.socket, reply: Reply) -> bool:
        """Send ``reply``; ``False`` when the connection is to be closed."""
        if reply.hangup:
            return False
        if reply.stall:
            self.stop.wait(30)
            return False
        data = reply.raw if reply.raw is not None else reply.encode()
        if reply.cut is not None:
            data = data[: reply.cut]
        if reply.dribble:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for index in range(len(data)):
                sock.sendall(data[index : index + 1])
                time.sleep(0.0002)  # shapes the traffic into many reads; synchronises nothing
        else:
            sock.sendall(data)
        return not (reply.close or reply.drop_after or reply.cut is not None or reply.raw)


def _read_head(sock: socket.socket, buffer: bytes) -> tuple[str | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None, b""
        buffer += chunk
        if len(buffer) > 65536:
            raise ValueError("request head too large")
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest  # a GET has no body


def _parse(head: str, connection: int) -> Seen:
    request_line, *header_lines = head.split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return Seen(method, target, parts.path, query, headers, connection)
