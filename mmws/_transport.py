"""The one transport: a websocket-client connection, and the only place that catches
websocket-client, ``socket`` and ``ssl`` errors. Each is translated into the mmws tree and
chained, with every secret (API key, token) scrubbed from the text first.

The transport dials the socket itself (TCP, an HTTP proxy's ``CONNECT``, TLS) under one
:class:`Deadline` for the whole attempt, then lets websocket-client do the WebSocket upgrade
on it (redirects are never followed) and send every frame. Incoming frames are parsed here,
by :class:`_FrameReader`: websocket-client reads each frame with three separate socket reads
and joins and slices its buffer on each, which cost more per frame than decoding the JSON
did. The reader fills one buffer with large reads and cuts complete frames out of it; it
also tells the client whether another whole frame is already buffered
(:meth:`Transport.frame_ready`), so the client hands a batch of events to the queue at once.
UTF-8 is not checked here: ``json.loads(bytes)`` checks it, in C.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Sequence
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
import websocket
from websocket import ABNF
from websocket._url import get_proxy_info

from mmws._secret import Secret, SecretSet, query_secrets, register, reveal
from mmws.errors import (
    CertificateError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    MmwsError,
    TransportTimeout,
)

__all__ = [
    "MAX_RETRY_AFTER",
    "ConnectTimeout",
    "Deadline",
    "Transport",
    "TransportOptions",
    "retry_after",
]

MAX_RETRY_AFTER: Final = 600.0
"""The longest ``Retry-After`` the client honours (10 minutes): a server cannot park it."""

log = logging.getLogger("mmws.transport")

_CHUNK = 65536
_CONT, _TEXT, _CLOSE, _PING, _PONG = (
    ABNF.OPCODE_CONT,
    ABNF.OPCODE_TEXT,
    ABNF.OPCODE_CLOSE,
    ABNF.OPCODE_PING,
    ABNF.OPCODE_PONG,
)
_FINAL_TEXT = 0x80 | _TEXT
_MAX_MESSAGE = 64 * 1024 * 1024  # a larger message is a protocol error (memory guard)


@attrs.frozen(slots=True)
class TransportOptions:
    """How to open connections. Certificate verification is on unless ``verify_tls=False``."""

    connect_timeout: float = 10.0
    io_timeout: float = 10.0
    ssl_context: ssl.SSLContext | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    proxy_host: str | None = None
    proxy_port: int | None = None
    proxy_auth: tuple[str, str] | None = attrs.field(default=None, repr=False)
    proxy_type: str = "http"
    headers: Sequence[str] = ()

    def tls_context(self, redacted_url: str) -> ssl.SSLContext:
        if not self.verify_tls:
            log.warning(
                "TLS certificate verification is DISABLED for %s (verify_tls=False): "
                "anyone on the network path can read and change this stream",
                redacted_url,
            )
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.ssl_context is not None:
            return self.ssl_context
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the CA file {self.ca_file!r}: {exc}") from None


class _ProtocolViolation(Exception):
    """The server broke RFC 6455 framing; the connection must be failed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _FrameReader:
    """Server-to-client frames (RFC 6455 section 5) cut out of one growing buffer.

    Server frames are never masked and we negotiate no extension, so a set mask bit or RSV
    bit is a protocol error (1002). Fragmented messages are reassembled. Pings are answered
    through ``pong``; pongs are ignored. Returns ``(opcode, payload)`` for text, binary and
    close."""

    __slots__ = (
        "_buf", "_fragment_opcode", "_fragments", "_pong", "_pos", "_ready_at", "_ready_end",
        "_sock",
    )  # fmt: skip

    def __init__(self, sock: Any, pong: Any) -> None:
        self._sock = sock
        self._pong = pong
        self._buf = bytearray()
        self._pos = 0
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        # the frame at _ready_at ends at _ready_end: frame_ready() measured it, next()
        # need not parse its header again
        self._ready_at = -1
        self._ready_end = 0

    def frame_ready(self) -> bool:
        """True when :meth:`next` will return without reading the socket: a whole final
        text, binary or close frame is buffered. Pings and pongs at the head are handled
        here, so a control frame behind the last data frame never holds a batch back; a
        fragment answers False (its continuation may still be on the way)."""
        while True:
            end = self._frame_end()
            if not end:
                return False
            first = self._buf[self._pos]
            if first == _FINAL_TEXT:  # the common case: one whole text frame
                self._ready_at, self._ready_end = self._pos, end
                return not self._fragments
            opcode = first & 0x0F
            if opcode in (_PING, _PONG):
                if first & 0x70 or not first & 0x80 or self._buf[self._pos + 1] & 0x7F > 125:
                    return True  # malformed: next() raises it without reading
                self.next_control(end)
                continue
            if opcode == _CLOSE:
                return True
            return bool(first & 0x80) and opcode != _CONT and not self._fragments

    def next_control(self, end: int) -> None:
        """Consume the ping or pong frame that ends at ``end`` (answering a ping)."""
        buf, pos = self._buf, self._pos
        opcode = buf[pos] & 0x0F
        payload = bytes(buf[pos + 2 : end])  # control frames are at most 125 bytes
        self._pos = end
        if opcode == _PING:
            self._pong(payload)

    def _frame_end(self) -> int:
        """End offset of the complete frame at ``_pos``, or 0 if it is not all here."""
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 2:
            return 0
        length = buf[pos + 1] & 0x7F
        if length < 126:
            end = pos + 2 + length
        elif length == 126:
            if avail < 4:
                return 0
            end = pos + 4 + int.from_bytes(buf[pos + 2 : pos + 4], "big")
        else:
            if avail < 10:
                return 0
            end = pos + 10 + int.from_bytes(buf[pos + 2 : pos + 10], "big")
        if buf[pos + 1] & 0x80:
            raise _ProtocolViolation(1002, "the server sent a masked frame")
        if end - pos > _MAX_MESSAGE:
            raise _ProtocolViolation(1009, "the server sent a frame over 64 MiB")
        return end if end <= len(buf) else 0

    def _fill(self) -> None:
        if self._pos:
            del self._buf[: self._pos]  # compact: keep only the unread tail
            self._pos = 0
            self._ready_at = -1
        data = self._sock.recv(_CHUNK)
        if not data:
            raise ConnectionResetError("the server closed the TCP connection")
        self._buf += data

    def next(self) -> tuple[int, bytes]:
        while True:
            end = self._ready_end if self._ready_at == self._pos else self._frame_end()
            if not end:
                self._fill()
                continue
            buf, pos = self._buf, self._pos
            first = buf[pos]
            length = buf[pos + 1] & 0x7F
            start = pos + (2 if length < 126 else 4 if length == 126 else 10)
            payload = bytes(buf[start:end])
            self._pos = end
            if first & 0x70:
                raise _ProtocolViolation(1002, "the server set RSV bits without an extension")
            opcode = first & 0x0F
            final = first & 0x80
            if opcode >= 0x8 and (not final or length > 125):
                raise _ProtocolViolation(1002, "the server sent a fragmented or long control frame")
            if opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
                if self._fragments:
                    raise _ProtocolViolation(1002, "a new message began inside a fragmented one")
                if final:
                    return opcode, payload
                self._fragment_opcode = opcode
                self._fragments.append(payload)
            elif opcode == ABNF.OPCODE_CONT:
                if not self._fragments:
                    raise _ProtocolViolation(1002, "a continuation frame without a message")
                self._fragments.append(payload)
                if sum(map(len, self._fragments)) > _MAX_MESSAGE:
                    raise _ProtocolViolation(1009, "the server sent a message over 64 MiB")
                if final:
                    message = b"".join(self._fragments)
                    self._fragments = []
                    return self._fragment_opcode, message
            elif opcode == ABNF.OPCODE_CLOSE:
                return opcode, payload
            elif opcode == ABNF.OPCODE_PING:
                self._pong(payload)
            elif opcode != ABNF.OPCODE_PONG:
                raise _ProtocolViolation(1002, f"the server sent unknown opcode {opcode}")


class Deadline:
    """One deadline for a whole connection attempt: TCP, proxy, TLS, the WebSocket upgrade
    and the subscription's confirmation.

    Every blocking step also gets the time left as its socket timeout, but a server that
    dribbles one byte at a time would restart that timeout with every byte; so a timer
    thread shuts the socket down when the deadline passes, which ends whatever step is
    running. :meth:`abort` does the same at once (``close()`` during a reconnect)."""

    def __init__(self, seconds: float, name: str = "mmws-connect-deadline") -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.aborted = False
        self._sock: Any = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def left(self) -> float:
        """Seconds until the deadline (never below 1 ms: a socket timeout of 0 would mean
        non-blocking)."""
        return max(0.001, self.at - time.monotonic())

    def watch(self, sock: Any) -> None:
        """``sock`` is the socket of this attempt from now on (shut at once if too late)."""
        with self._lock:
            self._sock = sock
            if self.expired or self.aborted:
                _shutdown(sock)

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            _shutdown(self._sock)

    def finish(self) -> None:
        """The attempt is over (either way): stop the timer thread and join it."""
        self._done.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        if self._done.wait(max(0.0, self.at - time.monotonic())):
            return
        with self._lock:
            if not self._done.is_set():
                self.expired = True
                _shutdown(self._sock)

    def timeout_error(self, redacted_url: str) -> ConnectTimeout:
        return ConnectTimeout(
            f"connecting to {redacted_url} took longer than connect_timeout="
            f"{self.seconds:g} s (TCP, TLS, the WebSocket upgrade and the subscription "
            "count together)"
        )


class Transport:
    """One open WebSocket connection. ``send`` is thread-safe; ``recv`` is for one reader."""

    def __init__(self, ws: Any, redacted_url: str, secrets: SecretSet) -> None:
        self._ws = ws
        self._reader = _FrameReader(ws.sock, ws.pong)
        self.url = redacted_url
        self._secrets = secrets

    @classmethod
    def open(
        cls,
        url: str | Secret,
        options: TransportOptions,
        secrets: SecretSet,
        deadline: Deadline,
    ) -> Transport:
        """Open a connection (TCP, proxy, TLS, WebSocket upgrade) within ``deadline``.

        Raises ``ConnectError`` (``ConnectTimeout`` once the deadline passed,
        ``CertificateError`` when the server's certificate is not trusted); never a
        foreign exception. Redirects are not followed: a ``3xx`` is a ``ConnectError``
        with its ``status``, so the key never goes anywhere the caller did not name."""
        secrets = secrets.with_values(*query_secrets(reveal(url)))
        redacted = secrets.redact(reveal(url))
        register(secrets)
        ws = websocket.WebSocket(
            skip_utf8_validation=True,  # the codec decodes UTF-8 itself, in C
            enable_multithread=True,
        )
        # The helper returns its error rather than raising it: its frame holds the plain
        # URL and must not be part of any traceback a caller (or an error tracker) renders.
        error = _connect(ws, url, options, secrets, deadline, redacted)
        if error is None:
            ws.settimeout(options.io_timeout)
            return cls(ws, redacted, secrets)
        _quiet_close(ws)
        if deadline.expired and isinstance(error, ConnectError | OSError):
            error = deadline.timeout_error(redacted)
        raise error

    def __repr__(self) -> str:
        return f"<Transport {self.url}>"

    def recv(self) -> bytes:
        """The next text (or binary) message. Raises ``ConnectionClosed`` when the connection
        ends (``code`` 1006 when no close frame came), ``TransportTimeout`` when nothing
        arrived within ``io_timeout``."""
        try:
            opcode, data = self._reader.next()
        except TimeoutError as exc:  # socket.timeout; a partial frame stays buffered
            raise TransportTimeout("no data within the read timeout") from exc
        except _ProtocolViolation as exc:
            self.close(exc.code, exc.reason, timeout=0.2)
            raise ConnectionClosed(exc.code, exc.reason) from None
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            error, cause = ConnectionClosed(1006, self._why(exc)), _cause(exc, self._secrets)
        else:
            if opcode == ABNF.OPCODE_CLOSE:
                code, reason = _parse_close(data)
                raise ConnectionClosed(code, self._secrets.redact(reason))
            return data
        raise error from cause  # outside the except block: see open()

    def frame_ready(self) -> bool:
        """True when a whole frame is already buffered, so :meth:`recv` will not block."""
        try:
            return self._reader.frame_ready()
        except _ProtocolViolation:
            return True  # let recv() raise it

    def send(self, text: str | Secret) -> None:
        """Send one text frame. A :class:`Secret` is revealed only in the helper that
        hands it to websocket-client, whose frame is never in a raised traceback."""
        error = self._send(text)
        if error is not None:
            raise error

    def _send(self, text: str | Secret) -> MmwsError | None:
        try:
            self._ws.send(reveal(text))
        except websocket.WebSocketTimeoutException:
            return TransportTimeout("sending timed out: the server is not reading")
        except (websocket.WebSocketException, OSError, ValueError, AttributeError) as exc:
            return ConnectionClosed(1006, self._why(exc))
        return None

    def settimeout(self, seconds: float | None) -> None:
        try:
            self._ws.settimeout(seconds)
        except (OSError, AttributeError):  # already closed
            pass

    def abort(self) -> None:
        """Shut the socket down at once: wakes a reader blocked in :meth:`recv` and a
        writer blocked in :meth:`send`."""
        _shutdown(self._ws.sock)

    def close(self, code: int = 1000, reason: str = "", timeout: float = 1.0) -> None:
        """Send a close frame (best effort, bounded by ``timeout``) and release the socket.

        Does not wait for the server's close frame: a stalled server must not hold us."""
        try:
            self._ws.settimeout(timeout)
            if self._ws.connected:
                self._ws.send_close(code, reason.encode())
        except (websocket.WebSocketException, OSError, ValueError, AttributeError):
            pass
        self.abort()
        _quiet_close(self._ws)

    def _why(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        return self._secrets.redact(f"connection lost: {text}")


def _connect(
    ws: Any,
    url: str | Secret,
    options: TransportOptions,
    secrets: SecretSet,
    deadline: Deadline,
    redacted: str,
) -> MmwsError | None:
    """Dial and upgrade; return the error (never raise it: see :meth:`Transport.open`)."""
    plain = reveal(url)
    try:
        host, port, secure = _address(plain)
        sock = _dial(host, port, secure, options, deadline, redacted)
        sock.settimeout(deadline.left())
        ws.connect(
            plain,
            socket=sock,
            header=list(options.headers),
            redirect_limit=0,  # never: a redirect could carry the key somewhere else
        )
    except MmwsError as exc:
        # raised below this frame, where locals hold the plain URL or the proxy password
        return exc.with_traceback(None)
    except websocket.WebSocketBadStatusException as exc:
        refused: int = exc.status_code
        headers = getattr(exc, "resp_headers", None) or {}
        return ConnectError(
            f"the server refused the WebSocket upgrade at {redacted} with HTTP {refused}",
            status=refused,
            retry_after=retry_after(headers.get("retry-after")),
        )
    except ssl.SSLCertVerificationError as exc:
        reason = secrets.redact(str(exc.verify_message or exc.reason or exc))
        return _chain(
            CertificateError(f"TLS certificate verification failed for {redacted}: {reason}"),
            exc,
            secrets,
        )
    except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
        return _chain(
            ConnectTimeout(f"connecting to {redacted} timed out: {secrets.redact(str(exc))}"),
            exc,
            secrets,
        )
    except Exception as exc:  # a hostile reply must never escape as a raw Python error
        redirect = _not_upgraded(ws, redacted, secrets)  # websocket-client >= 1.9 raises
        if redirect is not None:
            return redirect
        return _chain(
            ConnectError(
                f"cannot connect to {redacted}: {type(exc).__name__}: {secrets.redact(str(exc))}"
            ),
            exc,
            secrets,
        )
    return _not_upgraded(ws, redacted, secrets)


def _chain(error: MmwsError, exc: BaseException, secrets: SecretSet) -> MmwsError:
    error.__cause__ = _cause(exc, secrets)
    return error


def _not_upgraded(ws: Any, redacted: str, secrets: SecretSet) -> MmwsError | None:
    """The error for an upgrade answered with anything but 101 (a redirect), else None."""
    response = getattr(ws, "handshake_response", None)
    status: Any = getattr(response, "status", None)
    if status != 101 and response is not None:
        headers = getattr(response, "headers", None) or {}
        target = headers.get("location")
        where = f" to {secrets.redact(str(target))[:200]}" if target else ""
        return ConnectError(
            f"the server answered the WebSocket upgrade at {redacted} with HTTP {status}, a "
            f"redirect{where}; redirects are not followed (give the new URL yourself if "
            "you trust it)",
            status=status if isinstance(status, int) else None,
        )
    return None


def _address(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError("the URL must be ws:// or wss:// with a host")
    secure = parts.scheme == "wss"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        raise ConfigError("the URL has an invalid port") from None
    return parts.hostname, port, secure


def _dial(
    host: str, port: int, secure: bool, options: TransportOptions, deadline: Deadline, shown: str
) -> socket.socket:
    """A connected socket (through the proxy if one applies, TLS if ``secure``)."""
    proxy_host, proxy_port, proxy_auth = get_proxy_info(
        host,
        secure,
        proxy_host=options.proxy_host,
        proxy_port=options.proxy_port or 0,
        proxy_auth=options.proxy_auth,
        no_proxy=_no_proxy_hosts(),
    )
    if proxy_host and options.proxy_type != "http":
        sock = _socks(host, port, options, proxy_host, proxy_port, proxy_auth, deadline)
    else:
        sock = _tcp(proxy_host or host, (proxy_port or 80) if proxy_host else port, deadline)
    try:
        if proxy_host and options.proxy_type == "http":
            _tunnel(sock, host, port, proxy_auth, deadline)
        if not secure:
            return sock
        context = options.tls_context(shown)
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        sock = tls
        deadline.watch(tls)
        tls.settimeout(deadline.left())
        tls.do_handshake()
        return tls
    except BaseException:
        sock.close()
        raise


def _tcp(host: str, port: int, deadline: Deadline) -> socket.socket:
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        deadline.watch(sock)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.settimeout(deadline.left())
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error or OSError(f"no address for {host}")


def _tunnel(
    sock: socket.socket, host: str, port: int, auth: Any, deadline: Deadline
) -> None:
    """HTTP CONNECT through a proxy; the reply head is bounded in size."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if auth:
        user, password = auth
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        head += f"Proxy-Authorization: Basic {token}\r\n"
    sock.settimeout(deadline.left())
    sock.sendall(head.encode() + b"\r\n")
    reply = b""
    while b"\r\n\r\n" not in reply:
        if len(reply) > 16384:
            raise ConnectError("the proxy's reply to CONNECT is too long")
        sock.settimeout(deadline.left())
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectError("the proxy closed the connection during CONNECT")
        reply += chunk
    status_line = reply.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    if status != 200:
        raise ConnectError(
            f"the proxy refused CONNECT {target}: {status_line[:100]!r}", status=status
        )


def _socks(
    host: str,
    port: int,
    options: TransportOptions,
    proxy_host: str,
    proxy_port: int,
    proxy_auth: Any,
    deadline: Deadline,
) -> socket.socket:  # pragma: no cover - needs python-socks, an optional package
    try:
        from python_socks.sync import Proxy  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ConfigError(
            f"proxy_type={options.proxy_type!r} needs the python-socks package"
        ) from None
    user, password = proxy_auth if proxy_auth else (None, None)
    proxy = Proxy.from_url(f"{options.proxy_type}://{proxy_host}:{proxy_port}")
    if user is not None:
        proxy = Proxy.from_url(
            f"{options.proxy_type}://{user}:{password}@{proxy_host}:{proxy_port}"
        )
    sock: socket.socket = proxy.connect(host, port, timeout=deadline.left())
    deadline.watch(sock)
    return sock


def retry_after(value: Any, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date), capped
    at :data:`MAX_RETRY_AFTER`; ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        seconds = float(int(text[:12]))
    else:
        try:
            when = parsedate_to_datetime(text)
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError, AttributeError):
            return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def _cause(exc: BaseException, secrets: SecretSet) -> BaseException | None:
    """The foreign error to chain with ``from``; ``None`` when its text would show a secret
    (a traceback prints the chained error's message too). Its own traceback is dropped:
    the frames it passed through may hold plain secrets in their locals."""
    text = f"{exc} {exc.args!r}"
    return None if secrets.found_in(text) else exc.with_traceback(None)


def _no_proxy_hosts() -> list[str]:
    """The hosts an explicit proxy is skipped for: only those in ``NO_PROXY``.

    websocket-client before 1.9 also skips the proxy for localhost and 127.0.0.1 when this
    list is empty; a non-empty list that matches no host gives every version 1.9's rule."""
    value = os.environ.get("no_proxy", os.environ.get("NO_PROXY", "")).replace(" ", "")
    return [host for host in value.split(",") if host] or ["\x00"]


def _shutdown(sock: Any) -> None:
    if sock is not None:
        try:
            # the plain socket's method, also for a TLS socket: wakes any thread blocked on
            # it without touching the TLS object another thread may be using
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except (OSError, TypeError, ValueError):
            pass


def _quiet_close(ws: Any) -> None:
    try:
        ws.shutdown()
    except (OSError, AttributeError):
        pass


def _parse_close(data: bytes) -> tuple[int, str]:
    if len(data) < 2:
        return 1005, ""
    code = struct.unpack("!H", data[:2])[0]
    return code, data[2:].decode("utf-8", "replace")
