"""The Soccer Football Info WebSocket feed: events, the protocol core, tokens and the client."""

from mmws.feed.client import FeedClient
from mmws.feed.events import (
    BatchUpdate,
    FeedError,
    FeedEvent,
    FeedPong,
    FeedSubscribed,
    FeedUnsubscribed,
    MatchEvent,
    Odds,
    OddsRealtimeUpdate,
    OddsUpdate,
    StatPair,
    StatsRealtimeUpdate,
    StatsUpdate,
    parse_odds,
    parse_pair,
)
from mmws.feed.protocol import FEED_CHANNELS, FeedProtocol, SlidingWindow
from mmws.feed.tokens import RestTokenProvider

__all__ = [
    "FEED_CHANNELS",
    "BatchUpdate",
    "FeedClient",
    "FeedError",
    "FeedEvent",
    "FeedPong",
    "FeedProtocol",
    "FeedSubscribed",
    "FeedUnsubscribed",
    "MatchEvent",
    "Odds",
    "OddsRealtimeUpdate",
    "OddsUpdate",
    "RestTokenProvider",
    "SlidingWindow",
    "StatPair",
    "StatsRealtimeUpdate",
    "StatsUpdate",
    "parse_odds",
    "parse_pair",
]
