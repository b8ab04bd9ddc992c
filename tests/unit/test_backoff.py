"""Reconnect policy: full-jitter backoff with a seeded random source, and ``classify``."""

from __future__ import annotations

import math
import random

import pytest

from mmws._backoff import Backoff, Decision, classify
from mmws.errors import (
    AuthenticationError,
    CertificateError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    ConnectionLimitError,
    HeartbeatTimeout,
    LocalProtocolError,
    RemoteProtocolError,
    TransportTimeout,
)


def test_full_jitter_draws_uniform_zero_to_ceiling_per_attempt() -> None:
    backoff = Backoff(0.5, 30.0, random.Random(1234))
    reference = random.Random(1234)
    for attempt in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        delay = backoff.next_delay()
        assert delay == reference.uniform(0.0, ceiling)
        assert 0.0 <= delay <= ceiling
        assert backoff.attempt == attempt


def test_ceilings_double_then_stop_at_the_cap() -> None:
    """With a source that always draws the top, the delays are the ceilings themselves."""

    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    backoff = Backoff(1.0, 20.0, Top())
    assert [backoff.next_delay() for _ in range(8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0]


@pytest.mark.parametrize("attempt", [1, 2, 3, 5])
def test_each_attempt_uses_its_whole_range(attempt: int) -> None:
    base, cap = 1.0, 60.0
    ceiling = min(cap, base * 2 ** (attempt - 1))
    rng = random.Random(attempt)
    delays = []
    for _ in range(400):
        backoff = Backoff(base, cap, rng)
        for _ in range(attempt):
            delay = backoff.next_delay()
        delays.append(delay)
    assert all(0.0 <= d <= ceiling for d in delays)
    assert min(delays) < 0.05 * ceiling  # full jitter: down to ~0 ...
    assert max(delays) > 0.95 * ceiling  # ... up to the ceiling


def test_the_cap_holds_for_any_number_of_attempts() -> None:
    backoff = Backoff(0.1, 5.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(2000)]  # 2**1999 would overflow a float
    assert all(0.0 <= d <= 5.0 for d in delays)
    assert max(delays[100:]) > 4.5
    assert backoff.attempt == 2000


def test_reset_starts_over() -> None:
    backoff = Backoff(1.0, 100.0, random.Random(3))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempt == 0
    reference = random.Random(3)
    for _ in range(6):
        reference.uniform(0, 1)  # keep the reference in step with the draws above
    assert backoff.next_delay() == reference.uniform(0.0, 1.0)
    assert backoff.attempt == 1


def test_limit_waits_between_half_the_cap_and_the_cap() -> None:
    backoff = Backoff(0.5, 40.0, random.Random(99))
    delays = [backoff.next_delay(Decision.LIMIT) for _ in range(500)]
    assert all(20.0 <= d <= 40.0 for d in delays)
    assert min(delays) < 21.0 and max(delays) > 39.0
    assert backoff.attempt == 500
    # the first LIMIT wait is long too: no quick retry when the key has no free slot
    assert Backoff(0.5, 40.0, random.Random(1)).next_delay(Decision.LIMIT) >= 20.0


def test_the_default_random_source_works() -> None:
    backoff = Backoff(2.0, 8.0)
    assert 0.0 <= backoff.next_delay() <= 2.0
    assert 0.0 <= backoff.next_delay() <= 4.0


@pytest.mark.parametrize(
    ("base", "cap", "named"),
    [
        (0.0, 10.0, "backoff_base"),
        (-1.0, 10.0, "backoff_base"),
        (math.nan, 10.0, "backoff_base"),
        (2.0, 1.0, "backoff_cap"),
        (1.0, math.nan, "backoff_cap"),
        (1.0, -5.0, "backoff_cap"),
    ],
)
def test_bad_base_or_cap_is_a_config_error(base: float, cap: float, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Backoff(base, cap)


def test_cap_equal_to_base_is_allowed() -> None:
    backoff = Backoff(3.0, 3.0, random.Random(5))
    assert all(0.0 <= backoff.next_delay() <= 3.0 for _ in range(20))


@pytest.mark.parametrize(
    ("error", "decision"),
    [
        (AuthenticationError("invalid API key"), Decision.FATAL),
        (ConfigError("bad url"), Decision.FATAL),
        (LocalProtocolError("illegal in this state"), Decision.FATAL),
        (ConnectionLimitError("too many connections"), Decision.LIMIT),
        (ConnectError("upgrade refused", status=429), Decision.RETRY),
        (ConnectError("upgrade refused", status=503), Decision.RETRY),
        (ConnectError("upgrade refused", status=500), Decision.RETRY),
        (ConnectError("upgrade refused", status=408), Decision.RETRY),
        (ConnectError("upgrade refused", status=404), Decision.FATAL),
        (ConnectError("upgrade refused", status=401), Decision.FATAL),
        (ConnectError("upgrade refused", status=403), Decision.FATAL),
        (ConnectError("redirect, not followed", status=302), Decision.RETRY),
        (ConnectError("redirect, not followed", status=308), Decision.RETRY),
        (CertificateError("certificate verify failed"), Decision.FATAL),
        (ConnectError("connection refused"), Decision.RETRY),
        (ConnectionClosed(1001, "going away"), Decision.RETRY),
        (ConnectionClosed(1006), Decision.RETRY),
        (ConnectionClosed(1011, "internal error"), Decision.RETRY),
        (HeartbeatTimeout("no pong within 10 s"), Decision.RETRY),
        (TransportTimeout("read timed out"), Decision.RETRY),
        (RemoteProtocolError("not JSON"), Decision.RETRY),
        (ValueError("a bug"), Decision.FATAL),
        (KeyError("x"), Decision.FATAL),
        (OSError("not translated"), Decision.FATAL),
        (KeyboardInterrupt(), Decision.FATAL),
    ],
)
def test_classify(error: BaseException, decision: Decision) -> None:
    assert classify(error) is decision


def test_decisions_read_as_strings() -> None:
    for decision, text in (
        (Decision.RETRY, "retry"),
        (Decision.LIMIT, "limit"),
        (Decision.FATAL, "fatal"),
    ):
        assert isinstance(decision, str)
        assert str.__eq__(decision, text)
        assert Decision(text) is decision
