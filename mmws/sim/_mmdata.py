"""What the simulator broadcasts on the MM endpoint, the ground truth those broadcasts build
(:mod:`mmws.sim._truth`), and the faults that open a gap between the two."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import attrs

from mmws._codec import model_codec
from mmws.errors import ConfigError
from mmws.mm.protocol import CHANNELS
from mmws.mm.state import StateSnapshot
from mmws.sim._conn import _Tally
from mmws.sim._state import SimState
from mmws.sim._truth import snapshot
from mmws.sim.actions import encode
from mmws.sim.faults import check_count
from mmws.sim.mm import MMServerSession, burst_frames, encode_broadcast
from mmws.sim.scenario import ScenarioEvent
from mmws.sim.snapshots import BurstResult

__all__ = ["MMData", "NotDelivered", "UnreachedWarning"]


class NotDelivered(RuntimeError):
    """``publish(..., require=True)`` reached no client."""


class UnreachedWarning(UserWarning):
    """A broadcast reached no client (``Simulator(warn_unreached=True)``)."""


class MMData(SimState):
    """The MM data part of :class:`~mmws.sim.server.Simulator` (it mixes this in)."""

    warn_unreached = False

    # -- broadcasts -------------------------------------------------------------------------

    def publish(
        self,
        channel: str,
        event: str,
        payload: Mapping[str, Any] | Any,
        old: Mapping[str, Any] | None = None,
        api_key: str | None = None,
        *,
        require: bool = False,
    ) -> int:
        """Broadcast on an MM channel; the number of connections it was queued for.

        ``payload`` is a camelCase wire dict or a model (``mmws.mm.Order`` ...). Client
        channels go to every subscribed connection, or with ``api_key`` only to connections of
        that key's client; ``scores`` and ``emergency`` go to every subscriber. The ground
        truth (:meth:`truth`, the REST API) takes the broadcast too: a client channel without
        ``api_key`` changes every client's.

        A broadcast that reaches no connection (no client has subscribed to the channel
        yet: see :meth:`~mmws.sim.Simulator.wait_subscribed`) returns 0; with
        ``require=True`` it raises :class:`NotDelivered` instead, and a simulator made with
        ``warn_unreached=True`` (the ``mmws_sim`` fixture's) warns.

        Args:
            channel: ``"orders"``, ``"bets"``, ``"accounts"``, ``"scores"`` or
                ``"emergency"``.
            event: ``"INSERT"`` or ``"UPDATE"`` (or an :class:`~mmws.EventKind`).
            payload: The payload: a camelCase wire dict such as
                ``{"orderId": 1, "orderStatus": "FILLED"}``, or a model instance.
            old: The previous values of the changed fields, camelCase, for an UPDATE;
                ``None`` (the default) sends none.
            api_key: Send a client channel only to this key's client; ``None`` (the
                default) sends it to every subscribed connection.
            require: Raise :class:`NotDelivered` when no connection receives it (default
                ``False``: return 0).
        """
        if channel not in CHANNELS:
            raise ConfigError(f"unknown MM channel {channel!r}")
        if not isinstance(payload, Mapping):
            if not attrs.has(type(payload)):
                raise TypeError("payload must be a wire dict or an mmws model instance")
            payload = model_codec(type(payload)).unstructure(payload)
        client = None
        if api_key is not None:
            client = self._api_keys.get(api_key)
            if client is None:
                raise ConfigError("api_key is not one of the simulator's keys")
        kind = event.value if isinstance(event, Enum) else str(event)
        sent = self._deliver_mm(channel, encode_broadcast(channel, kind, payload, old), client)
        if sent == 0 and (require or self.warn_unreached):
            text = (
                f"publish({channel!r}, {kind!r}) reached no client: no MM connection is "
                f"subscribed to {channel!r} (connect a client first; sim.wait_subscribed() "
                "waits for its subscription)"
            )
            if require:
                raise NotDelivered(text)
            warnings.warn(text, UnreachedWarning, stacklevel=2)
        return sent

    def step(self, count: int = 1) -> list[ScenarioEvent]:
        """Generate and send the next ``count`` scenario events now (any ``rate``).

        Args:
            count: How many scenario events to send (default 1).

        Returns:
            The events sent, in order.
        """
        out = []
        for _ in range(count):
            # Generated and queued in one go: two threads stepping cannot swap two events
            # (an order's UPDATE before its INSERT).
            with self._gen_lock:
                event = self._scenario.next_event()
                self._deliver_mm(event.channel, encode(event.frame()), event.client)
            out.append(event)
        return out

    def burst(
        self,
        count: int,
        channel: str = "orders",
        rate: float | None = None,
        api_key: str | None = None,
        event: str = "UPDATE",
    ) -> int:
        """Send ``count`` pre-encoded order-fill broadcasts (``orderId`` 1..count) to every
        connection of ``api_key`` (default: :attr:`api_key`) subscribed to ``orders``; block
        until written; return the frames written (all connections together).

        ``event``: ``"UPDATE"`` (with ``old``) or ``"INSERT"`` (without): a client with a
        state cache sees an UPDATE of an order it does not know as a gap, so benchmark one
        with INSERTs. The ground truth of the key's client takes every frame as it is queued.
        :meth:`skip_broadcasts` and :meth:`duplicate_broadcasts` do not apply to bursts.

        Without ``rate`` the frames are written in 256 KiB chunks as fast as each socket takes
        them; with ``rate`` (events/s) one at a time on schedule (see :class:`BurstResult`).
        Blocks until every frame is written or its connection has ended (during a
        :meth:`stall`, until :meth:`resume`). A reader keeps up best with websocket-client's
        ``skip_utf8_validation=True``.

        Args:
            count: How many broadcasts to send (``orderId`` 1 to ``count``).
            channel: Must be ``"orders"`` (the default): bursts are order fills.
            rate: Broadcasts per second, paced; ``None`` (the default) as fast as the
                sockets take them.
            api_key: Whose connections receive them; ``None`` (the default) uses
                :attr:`api_key`.
            event: ``"UPDATE"`` (the default, with ``old``) or ``"INSERT"``.
        """
        if channel != "orders":
            raise ConfigError("burst sends order fills: channel must be 'orders'")
        key = next(iter(self._api_keys)) if api_key is None else api_key
        if key not in self._api_keys:
            raise ConfigError("api_key is not one of the simulator's keys")
        if rate is not None and not rate > 0:
            raise ConfigError(f"rate must be > 0, got {rate!r}")
        texts = burst_frames(count, event=event)
        client = self._api_keys[key]
        kind = json.loads(texts[0])["event"] if texts else "UPDATE"
        template: dict[str, Any] = json.loads(texts[0])["payload"] if texts else {}

        def queued(start: int, stop: int) -> None:  # frame i is orderId i + 1
            self._truth.apply_burst(client, kind, template, range(start + 1, stop + 1))

        with self._lock:
            targets = [
                c
                for c in self._conns.values()
                if isinstance(c.session, MMServerSession)
                and c.session.api_key == key
                and c.session.wants(channel, None)
                and not c.closing
                and not c.half_open
            ]
        tally = _Tally()
        started = time.monotonic()
        self._write_burst(targets, texts, rate, tally, queued)
        result = BurstResult(tally.frames, len(targets), started, time.monotonic(), rate)
        with self._lock:
            self._last_burst = result
        return tally.frames

    # -- ground truth -----------------------------------------------------------------------

    @property
    def scenario_start(self) -> datetime:
        """The start of the scenario's simulated clock (UTC): its first timestamps are a
        moment after it (the ``scenario_start`` option; by default when the simulator
        started, to the second, so REST date filters such as ``fromDate=<yesterday>`` find
        the scenario's orders as they would on the real server)."""
        return self._scenario_start

    def truth(self, api_key: str | None = None) -> StateSnapshot:
        """The ground truth of ``api_key``'s client (default: :attr:`api_key`): every MM
        broadcast the simulator queued so far (:meth:`publish`, :meth:`step`, :meth:`burst`,
        the scenario), merged, plus the client's initial accounts; what the REST API answers.

        Consistent (taken under the lock under which broadcasts are queued), ``synced=True``
        and comparable with a client's ``client.state.snapshot()``: the same attributes and
        types, decoded with the client's own codecs. A broadcast left out by
        :meth:`skip_broadcasts` is in the truth all the same.

        Args:
            api_key: Whose client's truth; ``None`` (the default) uses :attr:`api_key`.
        """
        key = next(iter(self._api_keys)) if api_key is None else api_key
        client = self._api_keys.get(key)
        if client is None:
            raise ConfigError("api_key is not one of the simulator's keys")
        with self._lock:
            view = self._truth.view(client)
        return snapshot(view)

    # -- gap faults -------------------------------------------------------------------------

    def skip_broadcasts(self, count: int, connection_id: int | None = None) -> None:
        """Leave the next ``count`` MM broadcasts that would be queued to connection
        ``connection_id`` out (a gap without a disconnect); ``None``: each MM connection
        open now leaves out its own next ``count``. The ground truth changes all the same.
        Replaces a count still pending on that connection (0 cancels it). The broadcasts
        left out are counted in ``ConnectionInfo.skipped``. Bursts are not affected.
        With the per-connection faults: a skipped broadcast is never queued, so a
        :meth:`delay_connection` does not matter to it (the broadcasts after it keep their
        delay); broadcasts pass a :meth:`half_open` connection by without using up its count.

        Raises ``TypeError`` / ``ValueError`` for a ``count`` that is not an int >= 0, and
        :class:`~mmws.errors.ConfigError` when ``connection_id`` is not an open MM
        connection.

        Args:
            count: How many broadcasts to leave out (0 cancels a pending count).
            connection_id: The connection (see :meth:`mm_connections`); ``None`` (the
                default) for each MM connection open now.
        """
        check_count("count", count)
        if connection_id is not None and (
            isinstance(connection_id, bool) or not isinstance(connection_id, int)
        ):
            raise TypeError(
                f"connection_id must be an int or None, got {type(connection_id).__name__}"
            )
        with self._lock:
            conns = [
                c
                for c in self._conns.values()
                if c.endpoint == "mm"
                and c.closed_at is None
                and (connection_id is None or c.id == connection_id)
            ]
            if connection_id is not None and not conns:
                raise ConfigError(f"connection_id {connection_id} is not an open MM connection")
            for conn in conns:
                conn.skip = count

    def duplicate_broadcasts(self, count: int = 1) -> None:
        """Queue each of the next ``count`` MM broadcasts twice to every connection it goes
        to (the ground truth changes once); a broadcast that reaches no connection does not
        count. Replaces a count still pending (0 cancels it). Bursts are not affected.
        ``TypeError`` / ``ValueError`` for a ``count`` that is not an int >= 0.

        Args:
            count: How many broadcasts to send twice (default 1; 0 cancels).
        """
        self._faults.duplicate_broadcasts(count)
