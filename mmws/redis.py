"""Relay one client's typed stream to many processes and hosts through Redis Streams.

Needs the optional extra ``mmws[redis]`` (the ``redis`` package)::

    relay = mmws.RedisRelay(client, url="redis://127.0.0.1:6379/0", stream="mmws:mm")
    relay.start()                      # the relay is now the client's consumer
    ...
    src = mmws.RedisSource("redis://127.0.0.1:6379/0", stream="mmws:mm")
    event = src.get(timeout=1.0)       # the same typed events, decoded by the same core

:class:`RedisRelay` publishes every event the client delivers, lifecycle events included,
as one stream entry each: the raw wire frame of a broadcast, or the event as tagged JSON,
plus an envelope (see :mod:`mmws._relaywire`). It never blocks the client: a pump thread
takes events from the client's queue into a bounded buffer, a publisher thread writes the
buffer to Redis in batches and retries with backoff while Redis is unreachable. When the
buffer overflows, the events that did not fit are counted and the stream gets a
:class:`RelayLoss` in their place.

:class:`RedisSource` reads the stream: with an independent cursor (every reader sees every
entry) or in a consumer group (entries shared, acknowledged, an unacknowledged entry of a
dead consumer claimed by a live one). With ``state=True`` it starts from the relay's last
state snapshot and keeps ``src.state`` equal to the relay's.
"""

from __future__ import annotations

from mmws._relay import RedisRelay
from mmws._relaywire import RelayLoss
from mmws._source import Entry, RedisSource

__all__ = ["Entry", "RedisRelay", "RedisSource", "RelayLoss"]
