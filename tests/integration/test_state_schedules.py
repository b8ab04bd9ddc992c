"""Random fault schedules against the simulator: whatever happens (scenario steps, skipped
and repeated broadcasts, dropped connections, restarts, REST 429/500 bursts), once the
schedule goes quiet the client's state equals the simulator's ground truth and is synced.

50 examples in the normal suite; more with ``MMWS_SCHEDULE_EXAMPLES=500 pytest -m slow
tests/integration/test_state_schedules.py``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from clientutil import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_state_client import FAST, equal, rest_for

from mmws import GapDetected, MMClient, Resynced
from mmws.sim import Simulator

EXAMPLES = int(os.environ.get("MMWS_SCHEDULE_EXAMPLES", "50"))

ACTIONS = st.one_of(
    st.tuples(st.just("step"), st.integers(1, 60)),
    st.tuples(st.just("skip"), st.integers(1, 3)),
    st.tuples(st.just("duplicate"), st.integers(1, 5)),
    st.tuples(st.just("drop"), st.just(0)),
    st.tuples(st.just("restart"), st.just(0)),
    st.tuples(st.just("rest_429"), st.integers(1, 3)),
    st.tuples(st.just("rest_500"), st.integers(1, 3)),
)


def run(sim: Simulator, action: str, n: int) -> None:
    if action == "step":
        sim.step(n)
    elif action == "skip":
        sim.skip_broadcasts(n)
    elif action == "duplicate":
        sim.duplicate_broadcasts(n)
    elif action == "drop":
        sim.drop_connections()
    elif action == "restart":
        sim.restart(down_for=0.02)
    elif action == "rest_429":
        sim.rest_errors(429, count=n, retry_after=0.01)
    else:
        sim.rest_errors(500, count=n)


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 10_000), schedule=st.lists(ACTIONS, min_size=1, max_size=12))
def test_after_any_schedule_the_state_equals_the_truth(
    seed: int, schedule: list[tuple[str, int]]
) -> None:
    with Simulator(rate=0, seed=seed, heartbeat_interval=None) as sim:
        sim.step(20)
        rest = rest_for(sim, retries=1, max_retry_after=0.02)
        options: dict[str, Any] = {**FAST, "audit_interval": 0.1, "rest": rest}
        with MMClient(sim.api_key, url=sim.mm_url, state=True, **options) as client:
            for action, n in schedule:
                run(sim, action, n)
            sim.step(3)  # the quiet begins: what comes now goes through
            wait_until(lambda: sim.listening, 5, "the simulator to listen again")

            def settled() -> bool:
                return client.state.synced and equal(client.state.snapshot(), sim.truth())

            wait_until(settled, 20, f"the state to settle after {schedule}")
            seen = []
            while True:
                try:
                    seen.append(client.get_nowait())
                except Exception:
                    break
            # a gap is reported only where a broadcast really was left out
            if not any(a == "skip" for a, _ in schedule):
                assert not [e for e in seen if isinstance(e, GapDetected)]
            assert any(isinstance(e, Resynced) for e in seen)
            # every subscription after a disconnect is followed by a resync
            kinds = [type(e).__name__ for e in seen]
            for index, kind in enumerate(kinds):
                if kind == "Subscribed" and "Disconnected" in kinds[:index]:
                    later = seen[index + 1 :]
                    assert any(isinstance(e, Resynced) for e in later), kinds
