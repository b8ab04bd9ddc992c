"""pytest plugin: a fresh mmws simulator for each test that asks for one.

Installed with mmws (entry point ``pytest11 = mmws = mmws.testing``), so every pytest run of
every project that has mmws installed loads this module. It therefore imports nothing beyond
pytest at import time: the simulator needs ``websockets`` (the ``sim`` extra) and is imported
only when a test requests the fixture.

Fixture ``mmws_sim``: a running :class:`mmws.sim.Simulator` on ``127.0.0.1``, port 0 (a free
port), ``rate=0`` (only what the test publishes is sent), ``seed=0``. It is closed after the
test, and every thread it started is joined. Options for one test go in a marker::

    import pytest

    @pytest.mark.mmws_sim(heartbeat_interval=0.1, rate=50.0)
    def test_reconnects(mmws_sim):
        client = MyClient(mmws_sim.mm_url, mmws_sim.api_key)
        mmws_sim.publish("orders", "INSERT", {"orderId": 1})
        ...

If the ``sim`` extra is not installed, a test using the fixture fails with a message saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mmws.sim import Simulator

__all__ = ["mmws_sim"]

_DEFAULTS: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "rate": 0.0, "seed": 0}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mmws_sim(**options): keyword arguments for the mmws_sim fixture's Simulator",
    )


@pytest.fixture
def mmws_sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """A running simulator (MM and feed endpoints) on a free local port, closed afterwards."""
    try:
        from mmws.sim import Simulator
    except ImportError as exc:  # websockets missing: the 'sim' extra is not installed
        pytest.fail(
            f"the mmws_sim fixture needs the simulator: pip install 'mmws[sim]' ({exc})",
            pytrace=False,
        )
    options = dict(_DEFAULTS)
    marker = request.node.get_closest_marker("mmws_sim")
    if marker is not None:
        options.update(marker.kwargs)
    with Simulator(**options) as sim:
        yield sim
