"""The server side of the Soccer Football Info feed WebSocket (protocols.md part B). Pure.

:class:`FeedServerSession` answers one connection's commands with actions (the same
:class:`~mmws.sim.mm.Send` / :class:`~mmws.sim.mm.Pong` / :class:`~mmws.sim.mm.Close` as the MM
endpoint); :class:`TokenStore` issues and expires WebSocket tokens; :func:`render` turns a
generated :class:`~mmws.sim.scenario.FeedUpdate` into the frame one subscription receives.
Time is always passed in (``now``: ``time.monotonic()``; ``wall``: ``time.time()``).

Connecting: ``ws://HOST:PORT/?token=T`` (``/feed?token=T`` works too). A missing token refuses
the upgrade with HTTP 401, an unknown or expired one with 403; the body is
``{"status":401|403,"errors":["..."],"pagination":[],"result":[]}``. More than
``max_connections`` open connections with one token: the new one gets
``{"type":"error","code":"CONNECTION_LIMIT","message":...}`` and a close 1008. When a token
expires, its connections are closed with 1008 ``token expired``.

Commands (at most ``max_commands_per_second``, default 10, per connection in any sliding
one-second window; a command beyond that is not executed and answered with
``{"type":"error","code":"RATE_LIMITED",...}``; refused commands do not count toward the
window; the arrival times of the last ``max_recorded`` commands, 10 000 by default, are
kept in ``command_times``):

==============================================  =============================================
client sends                                    server answers
==============================================  =============================================
``{"action":"subscribe","channel":C,            ``{"type":"subscribed","channel":C,
"scope":"match:12345"}`` (seed form) or          "scope":"match","id":"12345",
``"scope":"match","id":"12345"`` (current)      "topicKey":"C:match:12345",
or ``"scope":"all"``                            "message":"Successfully subscribed"}``
                                                (``id`` null for ``all``); both forms name the
                                                same subscription; subscribing twice answers
                                                ``subscribed`` again and uses one slot
``{"action":"unsubscribe",...}`` (either form)  ``{"type":"unsubscribed",...}`` (same fields,
                                                ``"Successfully unsubscribed"``), frees a slot
``{"action":"ping"}``                           ``{"type":"pong","ts":<server time in ms>}``
==============================================  =============================================

Errors are ``{"type":"error","code":C,"message":M}`` with no topic fields (as documented):

- ``INVALID_CHANNEL``: channel missing or not one of MAIN, STATS, ODDS, STATS_REALTIME,
  ODDS_REALTIME, MAIN_REALTIME (checked first);
- ``INVALID_SCOPE``: scope missing or not a string; not ``all``/``match``/``league``; an id that
  is missing, empty, not a string, longer than 64 or not ``[A-Za-z0-9_-]``; an ``id`` given with
  ``all``; both ``match:1`` and a different ``id``;
- ``CHANNEL_NOT_ALLOWED``: the token's plan does not include the channel;
- ``SUBSCRIPTION_LIMIT``: the connection has ``max_subscribe_per_connection`` subscriptions;
- ``NOT_SUBSCRIBED``: unsubscribe from a subscription this connection does not have;
- ``INVALID_COMMAND``: not JSON, not an object, no ``action`` or an unknown one, binary frame;
- ``RATE_LIMITED``: see above.

Plans (protocols.md B.3): BASIC none, PRO MAIN, ULTRA MAIN+STATS+ODDS, MEGA all six.

Data frames (:func:`render`): MAIN, MAIN_REALTIME, STATS_REALTIME and ODDS_REALTIME use shape 1
(``{"type":<event>,"channel","matchId","leagueId","ts","data"}``) and go, once per connection,
to subscriptions ``C:all``, ``C:match:<matchId>`` and ``C:league:<leagueId>``. STATS and ODDS
use shape 2 (``{"type":"event","channel","scope","id","eventType","eventId","ts","data"}``)
and go to ``C:match:<id>`` and ``C:league:<id>`` immediately, one frame per matching
subscription, with that subscription's scope and id; ``C:all`` gets a ``batch_update`` every
``batch_interval`` seconds instead, ``data`` = ``{"matches":[{"matchId","leagueId","data"}]}``.

REST (same port): ``GET /v1/ws/new?t=API_TOKEN`` returns the active token of that API token
(``is_new: false``) or issues one (``is_new: true``), expiring ``ttl`` seconds later.
``GET /v1/ws/renew?t=API_TOKEN`` keeps the same token and moves ``expires_at`` to now + ttl
(``is_new: false``); with no active token it answers 404. A bad API token answers 401.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Final

import attrs

from mmws.sim.actions import Action, Close, Pong, Send, encode
from mmws.sim.scenario import FeedUpdate

__all__ = [
    "CHANNELS",
    "PLANS",
    "FeedServerSession",
    "IssuedToken",
    "TokenStore",
    "Topic",
    "parse_topic",
    "render",
]

CHANNELS: Final = ("MAIN", "STATS", "ODDS", "STATS_REALTIME", "ODDS_REALTIME", "MAIN_REALTIME")
PLANS: Final[Mapping[str, tuple[str, ...]]] = {
    "BASIC": (),
    "PRO": ("MAIN",),
    "ULTRA": ("MAIN", "STATS", "ODDS"),
    "MEGA": CHANNELS,
}
_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


@attrs.frozen
class Topic:
    """A subscription: ``channel``, ``scope`` (all/match/league) and ``id`` (None for all)."""

    channel: str
    scope: str
    id: str | None

    @property
    def key(self) -> str:
        """``STATS:match:12345`` / ``MAIN:all``: the ``topicKey`` of the replies."""
        if self.id is None:
            return f"{self.channel}:{self.scope}"
        return f"{self.channel}:{self.scope}:{self.id}"

    def reply(self, kind: str) -> dict[str, Any]:
        verb = "subscribed" if kind == "subscribed" else "unsubscribed"
        return {
            "type": kind,
            "channel": self.channel,
            "scope": self.scope,
            "id": self.id,
            "topicKey": self.key,
            "message": f"Successfully {verb}",
        }


def parse_topic(msg: Mapping[str, Any]) -> Topic | tuple[str, str]:
    """The topic of a subscribe/unsubscribe command, or ``(code, message)``."""
    channel = msg.get("channel")
    if not isinstance(channel, str) or channel not in CHANNELS:
        shown = channel if isinstance(channel, str) else json.dumps(channel)
        return "INVALID_CHANNEL", f"Invalid channel: {shown[:40]}"
    scope = msg.get("scope")
    given_id = msg.get("id")
    if not isinstance(scope, str):
        return "INVALID_SCOPE", "scope must be 'all', 'match:{id}' or 'league:{id}'"
    if scope == "all":
        if given_id is not None:
            return "INVALID_SCOPE", "scope 'all' takes no id"
        return Topic(channel, "all", None)
    kind, sep, inline_id = scope.partition(":")
    if kind not in ("match", "league"):
        return "INVALID_SCOPE", f"Invalid scope: {scope[:40]}"
    if sep:
        if given_id is not None and given_id != inline_id:
            return "INVALID_SCOPE", "scope id and id field differ"
        sid: Any = inline_id
    else:
        sid = given_id
    if not isinstance(sid, str) or not _ID_RE.fullmatch(sid):
        return "INVALID_SCOPE", f"scope '{kind}' needs an id (letters, digits, '-', '_')"
    return Topic(channel, kind, sid)


def _error(code: str, message: str) -> Send:
    return Send(encode({"type": "error", "code": code, "message": message}))


class FeedServerSession:
    """One feed connection, server side. Only the connection's own thread calls
    :meth:`receive`; ``topics`` is replaced, never mutated, so other threads can read it."""

    def __init__(
        self,
        token: str,
        allowed_channels: Iterable[str],
        *,
        max_subscriptions: int = 20,
        max_commands_per_second: int | None = 10,
        max_recorded: int = 10_000,
    ) -> None:
        self.token = token
        self.allowed = frozenset(allowed_channels)
        self.max_subscriptions = max_subscriptions
        self.max_commands_per_second = max_commands_per_second
        self.topics: Mapping[str, Topic] = {}
        self.command_times: deque[float] = deque(maxlen=max_recorded)
        self.rate_limited = 0
        self._window: deque[float] = deque()

    def receive(self, data: str | bytes, now: float) -> list[Action]:
        """The actions answering one command that arrived at ``now`` (monotonic seconds)."""
        self.command_times.append(now)
        limit = self.max_commands_per_second
        if limit is not None:
            window = self._window
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                self.rate_limited += 1
                return [
                    _error("RATE_LIMITED", f"Too many commands: at most {limit} per second")
                ]
            window.append(now)
        if not isinstance(data, str):
            return [_error("INVALID_COMMAND", "Binary frames are not supported")]
        try:
            msg = json.loads(data)
        except (ValueError, RecursionError):
            return [_error("INVALID_COMMAND", "Invalid JSON")]
        if type(msg) is not dict:
            return [_error("INVALID_COMMAND", "Command must be a JSON object")]
        action = msg.get("action")
        if action == "ping":
            return [Pong()]
        if action == "subscribe":
            return self._subscribe(msg)
        if action == "unsubscribe":
            return self._unsubscribe(msg)
        if action is None:
            return [_error("INVALID_COMMAND", "Missing action")]
        shown = action if isinstance(action, str) else json.dumps(action)
        return [_error("INVALID_COMMAND", f"Unknown action: {shown[:40]}")]

    def _subscribe(self, msg: Mapping[str, Any]) -> list[Action]:
        topic = parse_topic(msg)
        if not isinstance(topic, Topic):
            return [_error(*topic)]
        if topic.channel not in self.allowed:
            return [
                _error(
                    "CHANNEL_NOT_ALLOWED",
                    f"Channel {topic.channel} is not available for your plan",
                )
            ]
        if topic.key not in self.topics:
            if len(self.topics) >= self.max_subscriptions:
                return [
                    _error(
                        "SUBSCRIPTION_LIMIT",
                        f"Maximum subscriptions reached ({self.max_subscriptions})",
                    )
                ]
            self.topics = {**self.topics, topic.key: topic}
        return [Send(encode(topic.reply("subscribed")))]

    def _unsubscribe(self, msg: Mapping[str, Any]) -> list[Action]:
        topic = parse_topic(msg)
        if not isinstance(topic, Topic):
            return [_error(*topic)]
        if topic.key not in self.topics:
            return [_error("NOT_SUBSCRIBED", f"Not subscribed to {topic.key}")]
        self.topics = {k: v for k, v in self.topics.items() if k != topic.key}
        return [Send(encode(topic.reply("unsubscribed")))]


def connection_limit(max_connections: int) -> list[Action]:
    text = f"Maximum connections ({max_connections}) reached for this token"
    return [_error("CONNECTION_LIMIT", text), Close(1008, "connection limit exceeded")]


def render(update: FeedUpdate, topic: Topic | None, ts: int) -> dict[str, Any]:
    """The frame for ``update``: shape 1 (``topic`` ignored) or shape 2 echoing ``topic``."""
    if update.shape == "match":
        return {
            "type": update.event_type,
            "channel": update.channel,
            "matchId": update.match_id,
            "leagueId": update.league_id,
            "ts": ts,
            "data": update.data,
        }
    assert topic is not None
    return {
        "type": "event",
        "channel": update.channel,
        "scope": topic.scope,
        "id": topic.id,
        "eventType": update.event_type,
        "eventId": update.event_id,
        "ts": ts,
        "data": update.data,
    }


def topic_keys(update: FeedUpdate) -> tuple[str, ...]:
    """The subscriptions an update goes to (``all`` only for shape 1)."""
    ch = update.channel
    keys = (f"{ch}:match:{update.match_id}", f"{ch}:league:{update.league_id}")
    return keys if update.shape == "event" else (f"{ch}:all", *keys)


# -- tokens ---------------------------------------------------------------------------------


@attrs.frozen
class IssuedToken:
    """A WebSocket token: which API token and plan it belongs to, and when it expires."""

    token: str
    api_token: str
    plan: str
    expires_at: float  # monotonic
    expires_wall: float  # time.time()

    def expires_text(self) -> str:
        when = datetime.fromtimestamp(self.expires_wall, tz=timezone.utc)
        return when.strftime("%Y-%m-%d %H:%M:%S")


class TokenStore:
    """Feed tokens per API token. Not thread-safe: the server holds its lock around calls."""

    def __init__(
        self,
        api_tokens: Mapping[str, str],
        ttl: float,
        *,
        new_token: Callable[[], str] = lambda: secrets.token_hex(24),
    ) -> None:
        for api_token, plan in api_tokens.items():
            if plan not in PLANS:
                raise ValueError(f"unknown feed plan {plan!r} (one of {', '.join(PLANS)})")
            if not api_token:
                raise ValueError("a feed API token must not be empty")
        self.api_tokens = dict(api_tokens)
        self.ttl = ttl
        self._new_token = new_token
        self._by_token: dict[str, IssuedToken] = {}
        self._active: dict[str, str] = {}  # api token -> its current token

    def issue(self, api_token: str, now: float, wall: float) -> tuple[IssuedToken, bool] | None:
        """``/v1/ws/new``: the active token (and False) or a new one (and True); None if the
        API token is unknown."""
        plan = self.api_tokens.get(api_token)
        if plan is None:
            return None
        active = self.active(api_token, now)
        if active is not None:
            return active, False
        issued = IssuedToken(self._new_token(), api_token, plan, now + self.ttl, wall + self.ttl)
        self._by_token[issued.token] = issued
        self._active[api_token] = issued.token
        return issued, True

    def renew(self, api_token: str, now: float, wall: float) -> IssuedToken | None:
        """``/v1/ws/renew``: the same token with a new expiry; None if none is active."""
        active = self.active(api_token, now)
        if active is None:
            return None
        renewed = attrs.evolve(active, expires_at=now + self.ttl, expires_wall=wall + self.ttl)
        self._by_token[renewed.token] = renewed
        return renewed

    def active(self, api_token: str, now: float) -> IssuedToken | None:
        token = self._active.get(api_token)
        issued = self._by_token.get(token) if token is not None else None
        return issued if issued is not None and issued.expires_at > now else None

    def check(self, token: str, now: float) -> IssuedToken | None:
        """The token if it exists and has not expired."""
        issued = self._by_token.get(token)
        return issued if issued is not None and issued.expires_at > now else None

    def known(self, token: str) -> bool:
        return token in self._by_token

    def result(
        self, issued: IssuedToken, is_new: bool, server: str, limits: Mapping[str, int]
    ) -> dict[str, Any]:
        """The REST body of ``/v1/ws/new`` and ``/v1/ws/renew``."""
        return {
            "status": 200,
            "errors": [],
            "pagination": [],
            "result": [
                {
                    "is_new": is_new,
                    "token": issued.token,
                    "server": f"{server}/?token={issued.token}",
                    "max_connections": limits["max_connections"],
                    "max_subscribe_per_connection": limits["max_subscribe_per_connection"],
                    "allowed_channels": list(PLANS[issued.plan]),
                    "expires_at": issued.expires_text(),
                }
            ],
        }


def rest_error(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "errors": [message], "pagination": [], "result": []}
