"""mmws: a synchronous, thread-based client for the 55-tech MM and Soccer Football Info
WebSockets. Typed, frozen events arrive in one ordered, bounded queue; no asyncio anywhere.

Start with :class:`MMClient` (market making) or :class:`FeedClient` (the match feed).
"""

import logging as _logging
from typing import TYPE_CHECKING

from mmws._relaywire import RelayLoss as RelayLoss
from mmws._session import Health as Health
from mmws._session import LineHealth as LineHealth
from mmws._version import __version__ as __version__
from mmws.errors import *  # noqa: F403
from mmws.feed import *  # noqa: F403
from mmws.format import to_dict as to_dict
from mmws.format import to_records as to_records
from mmws.lifecycle import *  # noqa: F403
from mmws.mm import *  # noqa: F403
from mmws.record import Recorder as Recorder
from mmws.record import replay as replay

if TYPE_CHECKING:
    from mmws.redis import RedisRelay as RedisRelay
    from mmws.redis import RedisSource as RedisSource

_OPTIONAL = {"RedisRelay": "mmws.redis", "RedisSource": "mmws.redis"}


def __getattr__(name: str) -> object:
    """``mmws.RedisRelay`` and ``mmws.RedisSource``, imported on first use: they need the
    optional ``redis`` package (``mmws[redis]``). Not in ``__all__``, so ``from mmws
    import *`` works without it."""
    module = _OPTIONAL.get(name)
    if module is None:
        raise AttributeError(f"module 'mmws' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


if not TYPE_CHECKING:
    # Each name is listed once, in the module that defines it; this is their union. Type
    # checkers read the star imports above instead (they cannot follow a computed
    # __all__), which export the same names.
    from mmws import errors as _errors
    from mmws import feed as _feed
    from mmws import lifecycle as _lifecycle
    from mmws import mm as _mm

    __all__ = [
        "Health",
        "LineHealth",
        "Recorder",
        "RelayLoss",
        "__version__",
        "to_dict",
        "to_records",
        "replay",
        *_errors.__all__,
        *_lifecycle.__all__,
        *_mm.__all__,
        *_feed.__all__,
    ]

# A library's logger stays silent unless the application configures logging: without this,
# Python's last-resort handler would print an unclosed client's reconnect warnings to stderr.
_logging.getLogger("mmws").addHandler(_logging.NullHandler())
