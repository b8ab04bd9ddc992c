"""The Soccer Football Info WebSocket feed: events, the protocol core, tokens and the client."""

from typing import TYPE_CHECKING

from mmws._ratelimit import SlidingWindow as SlidingWindow  # importable here as before
from mmws.feed.client import *  # noqa: F403
from mmws.feed.events import *  # noqa: F403
from mmws.feed.protocol import *  # noqa: F403
from mmws.feed.tokens import *  # noqa: F403

if not TYPE_CHECKING:
    # Each name is listed once, in the module that defines it (see mmws.mm).
    from mmws.feed import client as _client
    from mmws.feed import events as _events
    from mmws.feed import protocol as _protocol
    from mmws.feed import tokens as _tokens

    __all__ = [*_client.__all__, *_events.__all__, *_protocol.__all__, *_tokens.__all__]
