"""The one transport: a websocket-client connection, and the only place that catches
websocket-client, ``socket`` and ``ssl`` errors. Each is translated into the mmws tree and
chained, with every secret (API key, token) scrubbed from the text first.

websocket-client opens the connection (TCP, proxy, TLS, the HTTP upgrade) and sends every
frame. Incoming frames are parsed here, by :class:`_FrameReader`: websocket-client reads each
frame with three separate socket reads and joins and slices its buffer on each, which cost
more per frame than decoding the JSON did. The reader fills one buffer with large reads and
cuts complete frames out of it; it also tells the client whether another whole frame is
already buffered (:meth:`Transport.frame_ready`), so the client hands a batch of events to
the queue at once. UTF-8 is not checked here: ``json.loads(bytes)`` checks it, in C.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import websocket
from websocket import ABNF

from mmws._secret import redact, redact_url
from mmws.errors import (
    ConfigError,
    ConnectError,
    ConnectionClosed,
    MmwsError,
    TransportTimeout,
)

__all__ = ["ConnectTimeout", "Transport", "TransportOptions"]

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


class ConnectTimeout(ConnectError, TransportTimeout):
    """The connection attempt as a whole did not finish within ``connect_timeout``."""


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

    def sslopt(self, redacted_url: str) -> dict[str, Any]:
        if not self.verify_tls:
            log.warning(
                "TLS certificate verification is DISABLED for %s (verify_tls=False): "
                "anyone on the network path can read and change this stream",
                redacted_url,
            )
            return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
        if self.ssl_context is not None:
            return {"context": self.ssl_context}
        try:
            return {"context": ssl.create_default_context(cafile=self.ca_file)}
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the CA file {self.ca_file!r}: {exc}") from exc


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

    __slots__ = ("_buf", "_fragment_opcode", "_fragments", "_pong", "_pos", "_sock")

    def __init__(self, sock: Any, pong: Any) -> None:
        self._sock = sock
        self._pong = pong
        self._buf = bytearray()
        self._pos = 0
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0

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
        data = self._sock.recv(_CHUNK)
        if not data:
            raise ConnectionResetError("the server closed the TCP connection")
        self._buf += data

    def next(self) -> tuple[int, bytes]:
        while True:
            end = self._frame_end()
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


class Transport:
    """One open WebSocket connection. ``send`` is thread-safe; ``recv`` is for one reader."""

    def __init__(self, ws: Any, redacted_url: str, secrets: tuple[str, ...]) -> None:
        self._ws = ws
        self._reader = _FrameReader(ws.sock, ws.pong)
        self.url = redacted_url
        self._secrets = secrets

    @classmethod
    def open(
        cls,
        url: str,
        options: TransportOptions,
        secrets: Sequence[str] = (),
        timeout: float = 0,
        on_start: Callable[[Callable[[], None]], None] | None = None,
    ) -> Transport:
        """Open a connection (TCP, TLS, WebSocket upgrade). Raises ``ConnectError``.

        ``on_start`` receives, before any network use, a function that aborts this attempt
        from another thread (it shuts the socket down once TCP is connected)."""
        secrets = (*secrets, *_query_secrets(url))
        redacted = redact(url, *secrets)
        kwargs: dict[str, Any] = {
            "skip_utf8_validation": True,  # the codec decodes UTF-8 itself, in C
            "enable_multithread": True,
        }
        if url.startswith("wss:"):
            kwargs["sslopt"] = options.sslopt(redacted)
        elif not url.startswith("ws:"):
            raise ConfigError(f"URL must start with ws:// or wss://, got {redacted!r}")
        ws = websocket.WebSocket(**kwargs)
        ws.settimeout(timeout or options.connect_timeout)
        if on_start is not None:
            on_start(lambda: _shutdown(ws.sock))
        connect_kwargs: dict[str, Any] = {"header": list(options.headers)}
        if options.proxy_host:
            connect_kwargs.update(
                http_proxy_host=options.proxy_host,
                http_proxy_port=options.proxy_port,
                http_proxy_auth=options.proxy_auth,
                proxy_type=options.proxy_type,
                http_no_proxy=_no_proxy_hosts(),
            )
        # Errors are raised after the except blocks, so that a foreign error whose text shows
        # a secret is neither the __cause__ nor the __context__ of ours.
        error: MmwsError
        try:
            ws.connect(url, **connect_kwargs)  # type: ignore[no-untyped-call]
        except websocket.WebSocketBadStatusException as exc:
            status = exc.status_code
            error = ConnectError(
                f"the server refused the WebSocket upgrade at {redacted} with HTTP {status}",
                status=status,
            )
            cause = _cause(exc, secrets)
        except ssl.SSLCertVerificationError as exc:
            error = ConnectError(
                f"TLS certificate verification failed for {redacted}: "
                f"{redact(str(exc.verify_message or exc), *secrets)}"
            )
            cause = _cause(exc, secrets)
        except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
            error = ConnectTimeout(
                f"connecting to {redacted} timed out: {redact(str(exc), *secrets)}"
            )
            cause = _cause(exc, secrets)
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            error = ConnectError(
                f"cannot connect to {redacted}: {type(exc).__name__}: {redact(str(exc), *secrets)}"
            )
            cause = _cause(exc, secrets)
        else:
            ws.settimeout(options.io_timeout)
            return cls(ws, redacted, secrets)
        _quiet_close(ws)
        raise error from cause

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
                raise ConnectionClosed(code, reason)
            return data
        raise error from cause  # outside the except block: see open()

    def frame_ready(self) -> bool:
        """True when a whole frame is already buffered, so :meth:`recv` will not block."""
        try:
            return self._reader.frame_ready()
        except _ProtocolViolation:
            return True  # let recv() raise it

    def send(self, text: str) -> None:
        try:
            self._ws.send(text)
        except websocket.WebSocketTimeoutException as exc:
            raise TransportTimeout("sending timed out: the server is not reading") from exc
        except (websocket.WebSocketException, OSError, ValueError, AttributeError) as exc:
            error, cause = ConnectionClosed(1006, self._why(exc)), _cause(exc, self._secrets)
        else:
            return
        raise error from cause  # outside the except block: see open()

    def settimeout(self, seconds: float | None) -> None:
        try:
            self._ws.settimeout(seconds)
        except (OSError, AttributeError):  # already closed
            pass

    def abort(self) -> None:
        """Shut the socket down at once: wakes a reader blocked in :meth:`recv`."""
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
        return redact(f"connection lost: {text}", *self._secrets)


def _cause(exc: BaseException, secrets: Sequence[str]) -> BaseException | None:
    """The foreign error to chain with ``from``; ``None`` when its text would show a secret
    (a traceback prints the chained error's message too)."""
    text = f"{exc} {exc.args!r}"
    return None if any(secret in text for secret in secrets if secret) else exc


def _no_proxy_hosts() -> list[str]:
    """The hosts an explicit proxy is skipped for: only those in ``NO_PROXY``.

    websocket-client before 1.9 also skips the proxy for localhost and 127.0.0.1 when this
    list is empty; a non-empty list that matches no host gives every version 1.9's rule."""
    value = os.environ.get("no_proxy", os.environ.get("NO_PROXY", "")).replace(" ", "")
    return [host for host in value.split(",") if host] or ["\x00"]


def _shutdown(sock: Any) -> None:
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
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


def _query_secrets(url: str) -> tuple[str, ...]:
    """Token values in the URL's query, so they are scrubbed from error text too."""
    redacted = redact_url(url)
    if redacted == url:
        return ()
    out = []
    for part in url.partition("?")[2].split("&"):
        name, _, value = part.partition("=")
        if value and name.lower() in ("token", "t", "apikey", "api_key"):
            out.append(value)
    return tuple(out)
