"""The one transport: a websocket-client connection, and the only place that catches
websocket-client, ``socket`` and ``ssl`` errors. Each is translated into the mmws tree and
chained, with every secret (API key, token) scrubbed from the text first.

Reads are buffered: the socket is read in chunks of up to 64 KiB instead of websocket-client's
header-then-payload reads, which saves two system calls per frame and lets the reader see
whether another whole frame is already here (:meth:`Transport.frame_ready`), so it can hand
a batch of events to the queue at once.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
from collections.abc import Sequence
from typing import Any

import attrs
import websocket
from websocket import ABNF

from mmws._secret import redact, redact_url
from mmws.errors import ConfigError, ConnectError, ConnectionClosed, TransportTimeout

__all__ = ["ConnectTimeout", "Transport", "TransportOptions"]

log = logging.getLogger("mmws.transport")

_CHUNK = 65536


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


class _BufferedWebSocket(websocket.WebSocket):
    """websocket-client's WebSocket, reading the socket in large chunks.

    websocket-client's frame buffer asks for exactly the bytes it needs and keeps any surplus
    for the next frame, so handing it more than it asked for is safe."""

    def _recv(self, bufsize: int) -> bytes:
        return super()._recv(_CHUNK if bufsize < _CHUNK else bufsize)  # type: ignore[no-untyped-call,no-any-return]


class Transport:
    """One open WebSocket connection. ``send`` is thread-safe; ``recv`` is for one reader."""

    def __init__(self, ws: Any, redacted_url: str, secrets: tuple[str, ...]) -> None:
        self._ws = ws
        self._buffer = ws.frame_buffer
        self.url = redacted_url
        self._secrets = secrets

    @classmethod
    def open(
        cls, url: str, options: TransportOptions, secrets: Sequence[str] = (), timeout: float = 0
    ) -> Transport:
        """Open a connection (TCP, TLS, WebSocket upgrade). Raises ``ConnectError``."""
        secrets = (*secrets, *_query_secrets(url))
        redacted = redact(url, *secrets)
        kwargs: dict[str, Any] = {
            "skip_utf8_validation": True,  # json.loads(bytes) validates UTF-8, in C
            "enable_multithread": True,
        }
        if url.startswith("wss:"):
            kwargs["sslopt"] = options.sslopt(redacted)
        elif not url.startswith("ws:"):
            raise ConfigError(f"URL must start with ws:// or wss://, got {redacted!r}")
        ws = _BufferedWebSocket(**kwargs)
        ws.settimeout(timeout or options.connect_timeout)
        connect_kwargs: dict[str, Any] = {"header": list(options.headers)}
        if options.proxy_host:
            connect_kwargs.update(
                http_proxy_host=options.proxy_host,
                http_proxy_port=options.proxy_port,
                http_proxy_auth=options.proxy_auth,
                proxy_type=options.proxy_type,
            )
        try:
            ws.connect(url, **connect_kwargs)  # type: ignore[no-untyped-call]
        except websocket.WebSocketBadStatusException as exc:
            _quiet_close(ws)
            status = exc.status_code
            raise ConnectError(
                f"the server refused the WebSocket upgrade at {redacted} with HTTP {status}",
                status=status,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            _quiet_close(ws)
            raise ConnectError(
                f"TLS certificate verification failed for {redacted}: "
                f"{redact(str(exc.verify_message or exc), *secrets)}"
            ) from None
        except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
            _quiet_close(ws)
            raise ConnectTimeout(
                f"connecting to {redacted} timed out: {redact(str(exc), *secrets)}"
            ) from None
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            _quiet_close(ws)
            raise ConnectError(
                f"cannot connect to {redacted}: {type(exc).__name__}: {redact(str(exc), *secrets)}"
            ) from None
        ws.settimeout(options.io_timeout)
        return cls(ws, redacted, secrets)

    def __repr__(self) -> str:
        return f"<Transport {self.url}>"

    def recv(self) -> bytes:
        """The next text (or binary) message. Raises ``ConnectionClosed`` when the connection
        ends (``code`` 1006 when no close frame came), ``TransportTimeout`` when nothing
        arrived within ``io_timeout``."""
        try:
            opcode, data = self._ws.recv_data()
        except websocket.WebSocketTimeoutException:
            raise TransportTimeout("no data within the read timeout") from None
        except (websocket.WebSocketException, OSError, ValueError, AttributeError) as exc:
            # AttributeError: websocket-client sets sock to None when another thread aborted.
            raise ConnectionClosed(1006, self._why(exc)) from None
        if opcode == ABNF.OPCODE_CLOSE:
            code, reason = _parse_close(data)
            raise ConnectionClosed(code, reason)
        return data  # type: ignore[no-any-return]

    def frame_ready(self) -> bool:
        """True when a whole frame is already buffered, so :meth:`recv` will not block."""
        chunks = self._buffer.recv_buffer
        if not chunks:
            return False
        buf = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self._buffer.header is not None:
            return False  # websocket-client is mid-frame; be conservative
        size = len(buf)
        if size < 2:
            return False
        length = buf[1] & 0x7F
        if length == 126:
            return size >= 4 and size >= 4 + struct.unpack_from("!H", buf, 2)[0]
        if length == 127:
            return size >= 10 and size >= 10 + struct.unpack_from("!Q", buf, 2)[0]
        return size >= 2 + length

    def send(self, text: str) -> None:
        try:
            self._ws.send(text)
        except websocket.WebSocketTimeoutException:
            raise TransportTimeout("sending timed out: the server is not reading") from None
        except (websocket.WebSocketException, OSError, ValueError, AttributeError) as exc:
            raise ConnectionClosed(1006, self._why(exc)) from None

    def settimeout(self, seconds: float | None) -> None:
        try:
            self._ws.settimeout(seconds)
        except (OSError, AttributeError):  # already closed
            pass

    def abort(self) -> None:
        """Shut the socket down at once: wakes a reader blocked in :meth:`recv`."""
        sock = self._ws.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

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
