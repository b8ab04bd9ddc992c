"""What the parts of the simulator share: the attributes :class:`~mmws.sim.server.Simulator`
sets up, declared once so that its mixed-in parts (:class:`~mmws.sim._hub.Hub`, the
connection machinery, and :class:`~mmws.sim._http.HttpRoutes`, the request routing) are
type-checked against them, and the few methods one part calls on another."""

from __future__ import annotations

import itertools
import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any

from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection

from mmws.sim.faults import Faults
from mmws.sim.feed import TokenStore
from mmws.sim.scenario import FeedUpdate, MatchGenerator, Scenario, ScenarioEvent

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable, Iterable
    from datetime import datetime

    from mmws.sim._conn import _Conn, _Tally
    from mmws.sim._hub import _Listener, _Registry
    from mmws.sim._timer import _Timer
    from mmws.sim._truth import Truth
    from mmws.sim.snapshots import BurstResult, RestRequest

__all__ = ["SimState"]


class SimState:
    """Declarations only: every value is set by ``Simulator.__init__``."""

    host: str
    port: int
    seed: int
    rate: float
    feed_rate: float
    heartbeat_interval: float | None
    auth_timeout: float | None
    max_connections_per_key: int
    legacy_field_names: bool
    error_close_code: int
    send_error_frames: bool
    feed_max_connections: int
    feed_max_subscribe_per_connection: int
    feed_max_commands_per_second: int | None
    feed_batch_interval: float | None
    max_size: int
    max_send_queue: int
    close_timeout: float
    open_timeout: float
    ssl_context: ssl.SSLContext | None
    max_recorded_messages: int
    max_recorded_size: int
    max_closed_connections: int

    _api_keys: dict[str, str]
    _feed_api_tokens: dict[str, str]
    _tokens: TokenStore
    _ws_scheme: str
    _secrets: frozenset[str]
    _lock: threading.RLock
    _changed: threading.Condition
    _gen_lock: threading.Lock
    _restart_lock: threading.Lock
    _faults: Faults
    _stop: threading.Event
    _closed: bool
    _local: threading.local
    _ids: itertools.count[int]
    _sub_ids: itertools.count[int]
    _batch_ids: itertools.count[int]
    _conns: dict[int, _Conn]
    _history: list[_Conn]
    _closed_in_history: int
    _handshaking: dict[int, socket.socket]
    _threads: set[threading.Thread]
    _opened: int
    _frames_sent: int
    _commands: int
    _rejected: int
    _http: int
    _restarts: int
    _last_burst: BurstResult | None
    _revoked: set[str]
    _listener: _Listener | None
    _registry: _Registry
    _scenario: Scenario
    _matches: MatchGenerator
    _timer: _Timer
    _scenario_thread: threading.Thread | None
    _scenario_start: datetime
    _truth: Truth
    _rest_log: deque[RestRequest]

    # -- what one part calls on another (each is defined once, in its own part) -------------

    def _accept(
        self,
        ws: ServerConnection,
        request: Request,
        endpoint: str,
        token: str,
        plan: str = "",
    ) -> None:
        raise NotImplementedError

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        raise NotImplementedError

    def _expire_tokens(self) -> None:
        raise NotImplementedError

    def _note_secret(self, secret: str) -> None:
        raise NotImplementedError

    def step(self, count: int = 1) -> list[ScenarioEvent]:
        raise NotImplementedError

    def step_feed(self, count: int = 1) -> list[FeedUpdate]:
        raise NotImplementedError

    def issue_feed_token(self, api_token: str) -> str:
        raise NotImplementedError

    def _deliver_feed(self, update: FeedUpdate) -> int:
        raise NotImplementedError

    def _info(self, c: _Conn) -> Any:
        raise NotImplementedError

    def _cut(self, conn: _Conn, *, reset: bool, force: bool = False) -> None:
        raise NotImplementedError

    def _deliver_mm(self, channel: str, text: str, client: str | None) -> int:
        raise NotImplementedError

    def _write_burst(
        self,
        targets: list[_Conn],
        texts: Iterable[str],
        rate: float | None,
        tally: _Tally,
        queued: Callable[[int, int], None] | None = None,
    ) -> None:
        raise NotImplementedError

    def _api(self, request: Request, path: str, query: str) -> tuple[int, Any, list[Any]]:
        raise NotImplementedError
