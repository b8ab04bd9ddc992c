"""The public surface is declared: ``mmws.__all__`` is exactly this sorted set."""

from __future__ import annotations

import importlib
import pkgutil

import mmws

EXPECTED = [
    "Account",
    "AccountEvent",
    "AuthenticationError",
    "BatchUpdate",
    "Bet",
    "BetEvent",
    "BetStatus",
    "Broadcast",
    "CertificateError",
    "ClientClosed",
    "Closed",
    "ConfigError",
    "ConnectError",
    "Connected",
    "ConnectionClosed",
    "ConnectionLimitError",
    "Disconnected",
    "Emergency",
    "EmergencyEvent",
    "EventKind",
    "FeedClient",
    "FeedError",
    "FeedEvent",
    "FeedPong",
    "FeedProtocol",
    "FeedSubscribed",
    "FeedUnsubscribed",
    "Health",
    "Heartbeat",
    "HeartbeatTimeout",
    "LifecycleEvent",
    "LocalProtocolError",
    "MMClient",
    "MMProtocol",
    "MalformedFrame",
    "MatchEvent",
    "MatchedStatus",
    "MmwsError",
    "Odds",
    "OddsRealtimeUpdate",
    "OddsUpdate",
    "Order",
    "OrderEvent",
    "OrderStatus",
    "Overflow",
    "Pong",
    "ProtocolError",
    "Reconnecting",
    "Recorder",
    "RemoteProtocolError",
    "RestTokenProvider",
    "Score",
    "ScoreEvent",
    "ServerError",
    "ServerErrorEvent",
    "SettlementStatus",
    "Stale",
    "StatPair",
    "StatsRealtimeUpdate",
    "StatsUpdate",
    "Subscribed",
    "SubscriptionError",
    "TransportError",
    "TransportTimeout",
    "UnknownMessage",
    "Unsubscribed",
    "__version__",
    "parse_odds",
    "parse_pair",
    "replay",
]


def test_all_is_exactly_the_intended_sorted_set() -> None:
    assert mmws.__all__ == EXPECTED
    assert sorted(mmws.__all__) == mmws.__all__


def test_every_exported_name_exists() -> None:
    missing = [name for name in mmws.__all__ if not hasattr(mmws, name)]
    assert missing == []


def test_server_error_names_do_not_collide() -> None:
    # mmws.ServerError is the exception; the event of the same wire message is separate.
    assert issubclass(mmws.ServerError, mmws.MmwsError)
    assert not issubclass(mmws.ServerErrorEvent, BaseException)


def test_every_public_module_declares_all() -> None:
    missing = []
    for info in pkgutil.walk_packages(mmws.__path__, "mmws."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("_") or info.name.startswith("mmws.sim"):
            continue
        module = importlib.import_module(info.name)
        if not hasattr(module, "__all__"):
            missing.append(info.name)
    assert missing == []
