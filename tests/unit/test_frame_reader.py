"""The transport's frame parser (RFC 6455 section 5), fed through a real socket pair."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from mmws._transport import _FrameReader, _ProtocolViolation

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = False,
          ext: int | None = None) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    length = len(payload)
    if ext == 127 or length > 0xFFFF:
        head = struct.pack("!BBQ", first, 127 | (0x80 if mask else 0), length)
    elif ext == 126 or length > 125:
        head = struct.pack("!BBH", first, 126 | (0x80 if mask else 0), length)
    else:
        head = struct.pack("!BB", first, length | (0x80 if mask else 0))
    return head + (b"\0\0\0\0" if mask else b"") + payload


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.settimeout(2)
    yield a, b
    a.close()
    b.close()


def reader(sock: socket.socket, pongs: list[bytes] | None = None) -> _FrameReader:
    return _FrameReader(sock, (pongs if pongs is not None else []).append)


def test_text_frames_of_every_length_encoding(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, server = pair
    payloads = [b"x" * 5, b"y" * 300, b"z" * 70_000]
    server.sendall(b"".join(frame(TEXT, p) for p in payloads))
    r = reader(ours)
    assert [r.next() for _ in payloads] == [(TEXT, p) for p in payloads]


def test_frame_ready_tells_whether_a_whole_frame_is_buffered(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, server = pair
    data = frame(TEXT, b"one") + frame(TEXT, b"two")
    server.sendall(data[:-2])  # the second frame is incomplete
    r = reader(ours)
    assert not r.frame_ready()
    assert r.next() == (TEXT, b"one")
    assert not r.frame_ready()
    server.sendall(data[-2:])
    assert r.next() == (TEXT, b"two")


def test_fragmented_message_is_reassembled_and_pings_are_answered(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, server = pair
    pongs: list[bytes] = []
    server.sendall(frame(TEXT, b"hel", fin=False) + frame(PING, b"p1") + frame(CONT, b"lo ",
                   fin=False) + frame(PONG, b"") + frame(CONT, b"world"))
    assert reader(ours, pongs).next() == (TEXT, b"hello world")
    assert pongs == [b"p1"]


def test_binary_and_close_frames_are_returned(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, server = pair
    server.sendall(frame(BINARY, b"\x00\x01") + frame(CLOSE, struct.pack("!H", 1001) + b"bye"))
    r = reader(ours)
    assert r.next() == (BINARY, b"\x00\x01")
    assert r.next() == (CLOSE, struct.pack("!H", 1001) + b"bye")


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (frame(TEXT, b"hi", mask=True), 1002, "masked"),
        (frame(TEXT, b"hi", rsv=0x40), 1002, "RSV"),
        (frame(0x3, b"hi"), 1002, "opcode 3"),
        (frame(CONT, b"hi"), 1002, "continuation"),
        (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002, "inside a fragmented"),
        (struct.pack("!BBQ", 0x81, 127, 65 * 1024 * 1024), 1009, "64 MiB"),
    ],
)
def test_protocol_violations_name_the_problem(
    pair: tuple[socket.socket, socket.socket], data: bytes, code: int, words: str
) -> None:
    ours, server = pair
    server.sendall(data)
    with pytest.raises(_ProtocolViolation, match=words) as info:
        reader(ours).next()
    assert info.value.code == code


def test_eof_is_a_connection_error(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, server = pair
    server.sendall(frame(TEXT, b"last"))
    server.shutdown(socket.SHUT_WR)
    r = reader(ours)
    assert r.next() == (TEXT, b"last")
    with pytest.raises(ConnectionResetError):
        r.next()


def test_a_timeout_keeps_the_partial_frame(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, server = pair
    ours.settimeout(0.01)
    data = frame(TEXT, b"patience")
    server.sendall(data[:4])
    r = reader(ours)
    with pytest.raises(TimeoutError):
        r.next()
    server.sendall(data[4:])
    assert r.next() == (TEXT, b"patience")


def test_a_control_frame_behind_the_last_data_frame_does_not_claim_more_data(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Otherwise the reader would hold its decoded batch until the next data frame."""
    ours, server = pair
    pongs: list[bytes] = []
    server.sendall(frame(TEXT, b"fill") + frame(PING, b"p") + frame(PONG, b""))
    r = reader(ours, pongs)
    assert r.next() == (TEXT, b"fill")
    assert r.frame_ready() is False
    assert pongs == [b"p"]  # answered while checking


def test_frame_ready_is_false_for_a_fragment_and_true_for_close(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, server = pair
    server.sendall(frame(TEXT, b"part", fin=False))
    r = reader(ours)
    assert r.frame_ready() is False  # the continuation may still be on the way
    server.sendall(frame(CONT, b"2") + frame(CLOSE, b""))
    assert r.next() == (TEXT, b"part2")
    assert r.frame_ready() is True


@pytest.mark.parametrize(
    "data",
    [frame(PING, b"x" * 126), frame(PING, b"x", fin=False), frame(PONG, b"", rsv=0x20)],
)
def test_malformed_control_frames_are_violations(
    pair: tuple[socket.socket, socket.socket], data: bytes
) -> None:
    ours, server = pair
    server.sendall(data)
    r = reader(ours)
    r.frame_ready()  # must not consume or crash on it
    with pytest.raises(_ProtocolViolation) as info:
        r.next()
    assert info.value.code == 1002
