"""The 55-tech market-making WebSocket: models, events, the protocol core and the client."""

from typing import TYPE_CHECKING

from mmws.mm.client import *  # noqa: F403
from mmws.mm.events import *  # noqa: F403
from mmws.mm.models import *  # noqa: F403
from mmws.mm.protocol import *  # noqa: F403
from mmws.mm.rest import *  # noqa: F403
from mmws.mm.state import *  # noqa: F403

if not TYPE_CHECKING:
    # Each name is listed once, in the module that defines it. Type checkers read the
    # star imports above (they cannot follow a computed __all__); at run time this is it.
    from mmws.mm import client as _client
    from mmws.mm import events as _events
    from mmws.mm import models as _models
    from mmws.mm import protocol as _protocol
    from mmws.mm import rest as _rest
    from mmws.mm import state as _state
    from mmws.mm.events import ServerError as ServerError  # the event's older name

    __all__ = [
        *_client.__all__,
        *_events.__all__,
        *_models.__all__,
        *_protocol.__all__,
        *_rest.__all__,
        *_state.__all__,
    ]
