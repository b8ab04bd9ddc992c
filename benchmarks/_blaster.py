"""A raw WebSocket "blaster" for ``hotpath.py``: standard library only, in a child process.

:class:`Blaster` starts :func:`serve` in a ``spawn`` child that listens on 127.0.0.1 (port 0,
loopback only). Per accepted connection the child does the HTTP upgrade, reads the client's
first text frame (the subscribe command; its content is ignored), makes that connection the
*current* one and replies ``{"type":"subscribed","subscriptionId":1}``. On request through a
pipe it then sends ``count`` frames of one kind to the current connection:

- ``("burst", kind, count)``: identical, pre-encoded, pre-framed copies, joined into
  ~256 KiB ``sendall`` chunks, as fast as the socket takes them;
- ``("paced", kind, count, rate)``: ``rate`` frames per second, each with the sender's
  ``time.time()`` in ``payload.sentAt`` (an unknown key to mmws, kept in ``payload.extra``).

Each request is answered with ``("done", count, seconds)`` or ``("error", text)``. A reader
thread per connection answers WebSocket pings (opcode 0x9) with pongs, MM app-level pings
(``{"type": "ping"}``) with ``{"type":"pong"}`` and close frames with a close frame, and
drops everything else. Kinds (see :func:`message`): ``order`` (an ``orders`` UPDATE, ~400 B),
``bet`` (a ``bets`` INSERT, ~300 B), ``score`` (a ``scores`` UPDATE, ~250 B) and ``big`` (an
``orders`` UPDATE of ~64 KiB whose payload carries a free-form nested ``sentData``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import socket
import struct
import threading
import time
from typing import Any

__all__ = ["KINDS", "Blaster", "FrameReader", "accept_key", "encode_frame", "mask", "message"]

KINDS = ("order", "bet", "score", "big")
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CHUNK = 256 * 1024
_SENT_AT = "@@SENT_AT@@"
_SUBSCRIBED = b'{"type":"subscribed","subscriptionId":1}'
_PONG = b'{"type":"pong"}'
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


# -- the wire --------------------------------------------------------------------------------


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()


def mask(data: bytes, key: bytes) -> bytes:
    """``data`` XOR the 4-byte ``key`` repeated (masks and unmasks alike)."""
    n = len(data)
    if not n:
        return data
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(n, "big")


def encode_frame(payload: bytes, opcode: int = OP_TEXT, mask_key: bytes | None = None) -> bytes:
    """One final frame; masked (as a client must send it) when ``mask_key`` is given."""
    n = len(payload)
    first = 0x80 | opcode
    bit = 0x80 if mask_key is not None else 0
    if n < 126:
        head = struct.pack("!BB", first, bit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    if mask_key is None:
        return head + payload
    return head + mask_key + mask(payload, mask_key)


class FrameReader:
    """Whole frames from a blocking socket, unmasked: ``read()`` is ``(opcode, payload)``, or
    ``None`` once the peer closed. Fragments are returned as they come (nobody here sends any).
    """

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self._sock = sock
        self._buf = buffered

    def _need(self, n: int) -> bool:
        while len(self._buf) < n:
            data = self._sock.recv(65536)
            if not data:
                return False
            self._buf += data
        return True

    def read(self) -> tuple[int, bytes] | None:
        if not self._need(2):
            return None
        b0, b1 = self._buf[0], self._buf[1]
        length, pos = b1 & 0x7F, 2
        if length == 126:
            if not self._need(4):
                return None
            length, pos = struct.unpack_from("!H", self._buf, 2)[0], 4
        elif length == 127:
            if not self._need(10):
                return None
            length, pos = struct.unpack_from("!Q", self._buf, 2)[0], 10
        key = b""
        if b1 & 0x80:
            if not self._need(pos + 4):
                return None
            key, pos = self._buf[pos : pos + 4], pos + 4
        if not self._need(pos + length):
            return None
        payload, self._buf = self._buf[pos : pos + length], self._buf[pos + length :]
        return b0 & 0x0F, mask(payload, key) if key else payload


def read_http_head(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The HTTP head up to the blank line, and whatever came after it; ``None`` on EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


# -- the frames ------------------------------------------------------------------------------

_ORDER: dict[str, Any] = {
    "orderId": 880001234,
    "fixtureId": "id1000000861624412",
    "outcomeId": 161,
    "exchange": "polymarket",
    "account": "mm-desk-01",
    "orderStatus": "PLACED",
    "matchedStatus": "PARTIALLY_MATCHED",
    "orderCents": 0.45,
    "orderStake": 100.0,
    "matchedStake": 25.0,
    "back": True,
    "createdAt": "2026-11-30T10:00:00Z",
    "updatedAt": "2026-11-30T10:00:01Z",
}


def _big_sent_data() -> dict[str, Any]:
    legs = [
        {
            "leg": i,
            "market": {"id": f"m{100000 + i}", "line": 2.5, "prices": [1.91, 1.95, 2.04]},
            "meta": {"source": "feed-a", "tags": ["live", "asian"], "ok": i % 3 != 0},
            "stake": 12.5 + i,
            "note": f"leg-{i:05d}",
        }
        for i in range(390)
    ]
    return {"requestId": "req-7f3a", "legs": legs}


def message(kind: str, sent_at: object = None) -> dict[str, Any]:
    """The whole wire message of ``kind``; ``payload.sentAt`` is ``sent_at`` unless ``None``."""
    if kind == "order":
        msg: dict[str, Any] = {
            "type": "broadcast",
            "channel": "orders",
            "event": "UPDATE",
            "payload": dict(_ORDER),
            "old": {"matchedStake": 0.0},
        }
    elif kind == "bet":
        msg = {
            "type": "broadcast",
            "channel": "bets",
            "event": "INSERT",
            "payload": {
                "betId": 550012,
                "orderId": 880001234,
                "client": "acme",
                "bookmaker": "pinnacle",
                "bookmakerBetId": "PIN-99812345",
                "placedPrice": 2.05,
                "placedStake": 48.5,
                "betStatus": "placed",
                "settlementStatus": "undecided",
                "sentData": {"line": 2.5, "market": "ou"},
                "placedAt": "2026-11-30T10:00:02Z",
            },
        }
    elif kind == "score":
        msg = {
            "type": "broadcast",
            "channel": "scores",
            "event": "UPDATE",
            "payload": {
                "fixtureId": "id1000000861624412",
                "live": True,
                "statusId": 2,
                "currentPeriod": "2H",
                "currentMinute": 67,
                "scores": {"home": {"goals": 1, "corners": 5}, "away": {"goals": 2}},
            },
            "old": {"currentMinute": 66},
        }
    elif kind == "big":
        msg = message("order")
        msg["payload"]["sentData"] = _big_sent_data()
    else:
        raise ValueError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
    if sent_at is not None:
        msg["payload"]["sentAt"] = sent_at
    return msg


def _text(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"))


def frame_size(kind: str) -> int:
    """The size of one burst frame of ``kind`` on the wire, header included."""
    return len(encode_frame(_text(message(kind)).encode()))


# -- the child -------------------------------------------------------------------------------


class _Server:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()  # guards `current` and every send
        self.current: socket.socket | None = None
        self.subscribed: list[socket.socket] = []  # every subscribed connection, oldest first
        self.frames: dict[str, bytes] = {}
        self.chunks: dict[str, tuple[bytes, int]] = {}
        self.templates: dict[str, tuple[str, str]] = {}
        for kind in KINDS:
            frame = encode_frame(_text(message(kind)).encode())
            per = max(1, _CHUNK // len(frame))
            self.frames[kind] = frame
            self.chunks[kind] = (frame * per, per)
            head, tail = _text(message(kind, _SENT_AT)).split(json.dumps(_SENT_AT))
            self.templates[kind] = (head, tail)

    def accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(sock,), daemon=True).start()

    def _send(self, sock: socket.socket, data: bytes) -> None:
        with self.lock:
            sock.sendall(data)

    def _connection(self, sock: socket.socket) -> None:
        try:
            self._serve_connection(sock)
        except (OSError, ValueError):
            pass  # the client went away (or spoke nonsense): back to accepting
        finally:
            with self.lock:
                if self.current is sock:
                    self.current = None
                if sock in self.subscribed:
                    self.subscribed.remove(sock)
            sock.close()

    def _serve_connection(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = read_http_head(sock)
        if got is None:
            return
        head, rest = got
        key = ""
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
        )
        reader = FrameReader(sock, rest)
        subscribed = False
        while True:
            frame = reader.read()
            if frame is None:
                return
            opcode, payload = frame
            if opcode == OP_TEXT and not subscribed:
                subscribed = True
                with self.lock:  # current before the reply: a request after it finds it
                    self.current = sock
                    self.subscribed.append(sock)
                    sock.sendall(encode_frame(_SUBSCRIBED))
            elif opcode == OP_TEXT and b"ping" in payload:
                try:
                    if json.loads(payload).get("type") == "ping":
                        self._send(sock, encode_frame(_PONG))
                except (ValueError, AttributeError):
                    pass
            elif opcode == OP_PING:
                self._send(sock, encode_frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                self._send(sock, encode_frame(payload[:2], OP_CLOSE))
                return

    def _target(self) -> socket.socket:
        with self.lock:
            sock = self.current
        if sock is None:
            raise ConnectionError("no subscribed connection to send to")
        return sock

    def _blast(self, send: Any, kind: str, count: int) -> None:
        """``count`` frames of ``kind`` through ``send``, in chunks of about 256 KiB."""
        chunk, per = self.chunks[kind]
        full, rest = divmod(count, per)
        for _ in range(full):
            send(chunk)
        if rest:
            send(self.frames[kind] * rest)

    def burst(self, kind: str, count: int) -> tuple[Any, ...]:
        sock = self._target()
        start = time.perf_counter()
        self._blast(lambda data: self._send(sock, data), kind, count)
        return ("done", count, time.perf_counter() - start)

    def fanout(self, kind: str, count: int) -> tuple[Any, ...]:
        """``count`` frames of ``kind`` to every subscribed connection at once, one sending
        thread each (the lock is not taken: each thread owns its socket meanwhile)."""
        with self.lock:
            socks = list(self.subscribed)
        if not socks:
            raise ConnectionError("no subscribed connection to send to")
        errors: list[BaseException] = []

        def blast(sock: socket.socket) -> None:
            try:
                self._blast(sock.sendall, kind, count)
            except OSError as exc:
                errors.append(exc)

        start = time.perf_counter()
        threads = [threading.Thread(target=blast, args=(s,), daemon=True) for s in socks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return ("done", count * len(socks), time.perf_counter() - start)

    def paced(self, kind: str, count: int, rate: float) -> tuple[Any, ...]:
        sock = self._target()
        head, tail = self.templates[kind]
        interval = 1.0 / rate
        start = next_at = time.perf_counter()
        for _ in range(count):
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            data = encode_frame(f"{head}{time.time()!r}{tail}".encode())
            self._send(sock, data)
            next_at += interval
        return ("done", count, time.perf_counter() - start)


def serve(conn: Any) -> None:
    """The child process: serve until ``None`` or ``("stop",)`` comes through ``conn``."""
    server = _Server()
    threading.Thread(target=server.accept_loop, name="blaster-accept", daemon=True).start()
    conn.send(("ready", server.port))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request is None or request[0] == "stop":
            break
        try:
            if request[0] == "burst":
                reply = server.burst(request[1], request[2])
            elif request[0] == "fanout":
                reply = server.fanout(request[1], request[2])
            elif request[0] == "paced":
                reply = server.paced(request[1], request[2], request[3])
            else:
                reply = ("error", f"unknown request {request!r}")
        except (OSError, KeyError, ValueError) as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)
    server.listener.close()


# -- the parent's handle ---------------------------------------------------------------------


class Blaster:
    """The blaster child process. ``start`` asks for frames and returns at once; ``finish``
    waits for the child's answer to the last ``start`` (a no-op if there is none)."""

    def __init__(self, timeout: float = 30.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=serve, args=(child,), name="blaster", daemon=True)
        self._process.start()
        child.close()
        try:
            if not self._conn.poll(timeout):
                raise EOFError
            _, self.port = self._conn.recv()
        except EOFError:
            self._process.terminate()
            raise RuntimeError("the blaster child did not start (see its traceback)") from None
        self.url = f"ws://127.0.0.1:{self.port}"
        self.pid = self._process.pid
        self._pending = False

    def start(
        self, kind: str, count: int, rate: float | None = None, fanout: bool = False
    ) -> None:
        """``count`` frames of ``kind`` to the newest subscribed connection (paced at
        ``rate`` per second if given), or with ``fanout`` to every subscribed one."""
        self.finish()
        request = (
            ("fanout", kind, count) if fanout
            else ("burst", kind, count) if rate is None
            else ("paced", kind, count, rate)
        )  # fmt: skip
        self._conn.send(request)
        self._pending = True

    def finish(self, timeout: float = 120.0) -> tuple[Any, ...] | None:
        if not self._pending:
            return None
        if not self._conn.poll(timeout):
            raise RuntimeError(f"the blaster did not answer within {timeout:g} s")
        self._pending = False
        reply: tuple[Any, ...] = self._conn.recv()
        return reply

    def close(self) -> None:
        try:
            self._conn.send(("stop",))
        except OSError:
            pass
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._conn.close()

    def __enter__(self) -> Blaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
