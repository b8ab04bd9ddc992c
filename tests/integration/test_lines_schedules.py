"""Random faults on one line at a time, MMClient(lines=2): line A skips broadcasts, line B is
delayed 0-50 ms, one line is dropped or half-opened now and then (never both at once). The
merged stream holds every broadcast the server sent exactly once, and with ``state=True``
the state ends equal to the simulator's ground truth, and each field of each order, bet
and account changes in the server's order (a copy that does not follow on waits for the
other line), with no gap reported, unless the stream said so for that entity.

That last exception is what MM allows, with no sequence numbers: when line A skips a
broadcast and its next copy of the same entity is a partial update that does not show the
skipped change, nothing tells that copy is early; it goes out before the skipped one comes
from line B. The skipped one then contradicts the cache (in the strict mode of several
lines, a field it carries does), so the stream reports a ``GapDetected`` for the entity and
resyncs: a change out of order is never silent.

``MMWS_LINE_EXAMPLES=300 pytest -m slow tests/integration/test_lines_schedules.py`` runs more.
"""

from __future__ import annotations

import os
import queue
from collections import Counter
from typing import Any

import pytest
from clientutil import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lines import broadcasts, expected_events, per_field
from test_state_client import equal, rest_for

import mmws
from mmws import MMClient
from mmws.sim import Simulator
from mmws.sim.actions import encode

EXAMPLES = int(os.environ.get("MMWS_LINE_EXAMPLES", "50"))

ACTIONS = st.one_of(
    st.tuples(st.just("step"), st.integers(1, 40)),
    st.tuples(st.just("skip_a"), st.integers(1, 4)),
    st.tuples(st.just("delay_b"), st.integers(0, 50)),
    st.tuples(st.just("drop"), st.integers(0, 1)),
    st.tuples(st.just("half_open"), st.integers(0, 1)),
)

OPTIONS: dict[str, Any] = {
    "ping_interval": 0.1,
    "pong_timeout": 0.4,
    "backoff_base": 0.01,
    "backoff_cap": 0.05,
    "connect_timeout": 5.0,
}


def both_up(sim: Simulator, client: MMClient) -> tuple[int, int]:
    def healthy() -> list[Any]:
        return [c for c in sim.mm_connections() if not c.half_open]

    def ready() -> bool:
        return len(healthy()) == 2 and all(
            h.state == "connected" for h in client.health().lines
        )

    wait_until(ready, 10, "both lines to be up")
    first, second = healthy()
    return first.id, second.id


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    state=st.booleans(),
    schedule=st.lists(ACTIONS, min_size=1, max_size=8),
)
def test_the_merged_stream_is_what_the_server_sent_exactly_once(
    seed: int, state: bool, schedule: list[tuple[str, int]]
) -> None:
    with Simulator(rate=0, seed=seed, heartbeat_interval=None) as sim:
        options = dict(OPTIONS)
        if state:
            options.update(state=True, rest=rest_for(sim, retries=1), resync_backoff=0.01,
                           audit_interval=0.2, line_hold=2.0)  # fmt: skip
        with MMClient(sim.api_key, url=sim.mm_url, lines=2, **options) as client:
            a, b = both_up(sim, client)
            frames: list[str] = []
            got: list[Any] = []
            seen: list[Any] = []  # what else the stream said (GapDetected ...)
            for action, n in schedule:
                if action == "step":
                    frames += [encode(e.frame()) for e in sim.step(n)]
                elif action == "skip_a":
                    sim.skip_broadcasts(n, connection_id=a)
                elif action == "delay_b":
                    sim.delay_connection(b, n / 1000)
                else:
                    # never lost on both lines: what was sent has arrived, A skips no more
                    got += broadcasts(client, len(frames) - len(got), timeout=5, others=seen)
                    target = (a, b)[n]
                    sim.skip_broadcasts(0, connection_id=a)
                    if action == "drop":
                        sim.drop_connection(target)
                    else:
                        sim.half_open(target)
                    frames += [encode(e.frame()) for e in sim.step(5)]  # while it is down
                    a, b = both_up(sim, client)  # never both down at once
            frames += [encode(e.frame()) for e in sim.step(3)]
            expected = expected_events(frames)
            got += broadcasts(client, len(expected) - len(got), timeout=5, others=seen)
            assert Counter(map(hash, got)) == Counter(map(hash, expected))
            while True:  # and nothing more comes
                try:
                    extra = client.get(timeout=0.2)
                except queue.Empty:
                    break
                assert not isinstance(extra, mmws.Broadcast), extra
                seen.append(extra)
            if state:
                fields_got, fields_sent = per_field(got), per_field(expected)
                reordered = {entity for (entity, field), values in fields_sent.items()
                             if fields_got.get((entity, field)) != values}  # fmt: skip
                reported = {(g.channel, g.key) for g in seen if isinstance(g, mmws.GapDetected)}
                assert reordered <= reported, (reordered, reported, schedule)
                if not reordered:
                    assert client.state.gaps == 0, schedule
                wait_until(
                    lambda: client.state.synced
                    and equal(client.state.snapshot(), sim.truth()),
                    15,
                    f"the state to settle after {schedule}",
                )
