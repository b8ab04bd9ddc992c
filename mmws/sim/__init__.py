"""The bundled WebSocket simulator: the MM and feed endpoints on one local port.

Needs the ``sim`` extra (``pip install 'mmws[sim]'``, which brings ``websockets``)::

    from mmws.sim import Simulator

    with Simulator(port=0, seed=0, rate=20.0) as sim:
        print(sim.mm_url, sim.api_key, sim.feed_url)

``python -m mmws.sim`` runs one until Ctrl-C. The pieces: :mod:`mmws.sim.server` (the
:class:`Simulator`, threads, controls, faults), :mod:`mmws.sim.mm` and :mod:`mmws.sim.feed`
(what each endpoint answers), :mod:`mmws.sim.scenario` (the seeded generators),
:mod:`mmws.sim.faults` (what each fault does on the wire).
"""

from mmws.sim._mmdata import NotDelivered, UnreachedWarning
from mmws.sim.scenario import FeedUpdate, MatchGenerator, MatchInfo, Scenario, ScenarioEvent
from mmws.sim.server import (
    BurstResult,
    ConnectionInfo,
    ReceivedMessage,
    RestRequest,
    SimStats,
    Simulator,
)

__all__ = [
    "BurstResult",
    "ConnectionInfo",
    "FeedUpdate",
    "MatchGenerator",
    "MatchInfo",
    "NotDelivered",
    "ReceivedMessage",
    "RestRequest",
    "Scenario",
    "ScenarioEvent",
    "SimStats",
    "Simulator",
    "UnreachedWarning",
]
