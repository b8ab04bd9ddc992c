"""Keepalive bookkeeping: every answer is computed from explicit ``now`` values.

Seed sections: "Connection flow", 5. Keep alive, and "Connection limits" (client ping every
30 s, server heartbeat every 60 s).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from mmws._keepalive import Keepalive
from mmws.errors import ConfigError, HeartbeatTimeout, TransportTimeout


def started(now: float = 100.0, **kwargs: Any) -> Keepalive:
    keepalive = Keepalive(**kwargs)
    keepalive.start(now)
    return keepalive


def test_defaults_follow_the_connection_limits_table() -> None:
    """Connection limits: client ping interval 30 s (recommended)."""
    keepalive = Keepalive()
    assert keepalive.ping_interval == 30.0
    assert keepalive.pong_timeout == 10.0
    assert keepalive.heartbeat_timeout is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ping_interval", 0),
        ("ping_interval", -1.0),
        ("ping_interval", True),
        ("ping_interval", "30"),
        ("pong_timeout", None),
        ("pong_timeout", 0.0),
        ("pong_timeout", math.nan),
        ("heartbeat_timeout", -5),
        ("heartbeat_timeout", False),
    ],
)
def test_bad_intervals_are_config_errors_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Keepalive(**{field: value})
    assert str(info.value) == f"{field} must be a positive number of seconds, got {value!r}"


def test_none_disables_ping_and_heartbeat_limit() -> None:
    keepalive = started(0.0, ping_interval=None, heartbeat_timeout=None)
    assert not keepalive.ping_due(1e9)
    assert keepalive.dead(1e9) is None
    assert keepalive.next_deadline() == math.inf


def test_start_resets_the_clocks_and_forgets_an_outstanding_ping() -> None:
    keepalive = started(10.0)
    keepalive.ping_sent(20.0)
    keepalive.start(50.0)
    assert (keepalive.last_received, keepalive.last_ping) == (50.0, 50.0)
    assert keepalive.ping_outstanding_since is None
    assert keepalive.dead(1000.0) is None


def test_ping_due_after_the_interval_and_not_before() -> None:
    keepalive = started(100.0, ping_interval=30.0)
    assert not keepalive.ping_due(100.0)
    assert not keepalive.ping_due(129.999)
    assert keepalive.ping_due(130.0)
    keepalive.ping_sent(130.0)
    assert not keepalive.ping_due(159.0)
    assert keepalive.ping_due(160.0)


def test_dead_when_the_pong_is_overdue() -> None:
    keepalive = started(100.0, pong_timeout=10.0)
    keepalive.ping_sent(130.0)
    assert keepalive.dead(139.999) is None
    reason = keepalive.dead(140.0)
    assert isinstance(reason, HeartbeatTimeout)
    assert isinstance(reason, TransportTimeout) and isinstance(reason, TimeoutError)
    assert str(reason) == "no pong within 10 s of a ping"


def test_pong_in_time_clears_the_outstanding_ping_and_measures_rtt() -> None:
    keepalive = started(100.0)
    keepalive.ping_sent(130.0)
    assert keepalive.pong_received(130.2) == pytest.approx(0.2)
    assert keepalive.last_rtt == pytest.approx(0.2)
    assert keepalive.ping_outstanding_since is None
    assert keepalive.dead(200.0) is None


def test_a_second_ping_keeps_the_first_ping_time_for_the_pong_clock() -> None:
    keepalive = started(0.0)
    keepalive.ping_sent(30.0)
    keepalive.ping_sent(35.0)
    assert keepalive.last_ping == 35.0
    assert keepalive.ping_outstanding_since == 30.0
    assert keepalive.dead(40.0) is not None
    assert keepalive.pong_received(36.0) == 6.0


def test_pong_without_a_ping_has_no_rtt() -> None:
    keepalive = started(0.0)
    assert keepalive.pong_received(5.0) is None
    assert keepalive.last_rtt is None


def test_rtt_is_never_negative() -> None:
    keepalive = started(0.0)
    keepalive.ping_sent(10.0)
    assert keepalive.pong_received(9.5) == 0.0


def test_dead_when_the_server_heartbeat_goes_silent() -> None:
    """Connection limits: the server heartbeats every 60 s; silence past the limit is death."""
    keepalive = started(100.0, ping_interval=None, heartbeat_timeout=90.0)
    keepalive.received(150.0)  # a heartbeat
    assert keepalive.silent_for(200.0) == 50.0
    assert keepalive.dead(239.999) is None
    reason = keepalive.dead(240.0)
    assert isinstance(reason, HeartbeatTimeout)
    assert str(reason) == "nothing received from the server for 90 s"


def test_pong_timeout_is_reported_before_heartbeat_silence() -> None:
    keepalive = started(0.0, heartbeat_timeout=20.0)
    keepalive.ping_sent(5.0)
    reason = keepalive.dead(100.0)
    assert reason is not None and "no pong" in str(reason)


def test_silent_for_is_never_negative() -> None:
    keepalive = started(100.0)
    assert keepalive.silent_for(90.0) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "ping_at", "expected"),
    [
        ({"ping_interval": 30.0}, None, 130.0),
        ({"ping_interval": 30.0, "heartbeat_timeout": 20.0}, None, 120.0),
        ({"ping_interval": 30.0, "pong_timeout": 10.0}, 101.0, 111.0),
        ({"ping_interval": 5.0, "pong_timeout": 10.0}, 101.0, 106.0),
        ({"ping_interval": None, "heartbeat_timeout": 75.0}, None, 175.0),
        ({"ping_interval": None, "pong_timeout": 3.0}, 150.0, 153.0),
    ],
)
def test_next_deadline_is_the_earliest_clock(
    kwargs: dict[str, Any], ping_at: float | None, expected: float
) -> None:
    keepalive = started(100.0, **kwargs)
    if ping_at is not None:
        keepalive.ping_sent(ping_at)
    assert keepalive.next_deadline() == expected


def test_next_deadline_is_when_an_answer_changes() -> None:
    keepalive = started(100.0, ping_interval=30.0, pong_timeout=10.0, heartbeat_timeout=45.0)
    deadline = keepalive.next_deadline()
    assert deadline == 130.0
    assert not keepalive.ping_due(deadline - 0.001) and keepalive.ping_due(deadline)
    keepalive.ping_sent(130.0)
    keepalive.received(131.0)
    assert keepalive.next_deadline() == 140.0
    assert keepalive.dead(139.9) is None and keepalive.dead(140.0) is not None


def test_forgive_restarts_the_silence_clocks() -> None:
    """A reader blocked by our own full queue is not the server's silence."""
    keepalive = started(100.0, ping_interval=None, pong_timeout=10.0, heartbeat_timeout=60.0)
    keepalive.ping_sent(130.0)
    assert keepalive.dead(170.0) is not None
    keepalive.forgive(170.0)
    assert keepalive.last_received == 170.0
    assert keepalive.ping_outstanding_since == 170.0
    assert keepalive.dead(179.0) is None
    assert keepalive.next_deadline() == 180.0


def test_forgive_never_moves_clocks_backwards() -> None:
    keepalive = started(100.0)
    keepalive.received(200.0)
    keepalive.forgive(150.0)
    assert keepalive.last_received == 200.0
    assert keepalive.ping_outstanding_since is None
    keepalive.ping_sent(210.0)
    keepalive.forgive(205.0)
    assert keepalive.ping_outstanding_since == 210.0
