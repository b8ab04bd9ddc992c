"""Seeded, deterministic event generators for the simulator. Pure: no I/O, no threads, no clock.

Two generators, each driven by its own ``random.Random(seed)`` (never the global one), so the
same seed gives the same sequence of channels, events, ids and values, and a different seed a
different one. The simulator's scenario thread only paces them; tests can call them directly.

:class:`Scenario` (MM endpoint) -- ``Scenario(seed, clients).next_event()`` returns a
:class:`ScenarioEvent` ``(channel, event, payload, old, client)``. Per client it plays the
market-making lifecycle:

- order ``INSERT`` with ``orderStatus`` ``PENDING_PLACEMENT``, then an ``UPDATE`` to ``PLACED``
  (which also assigns ``exchangeOrderId``); about one order in ten is then ``CANCELLED``;
- ``UPDATE``\\ s with zero to two partial fills (``PARTIALLY_MATCHED``, orderStatus stays
  ``PLACED``) and then the full fill (``FILLED`` / ``FULLY_MATCHED``);
- after each fill (as that order's next step; other events may come between): an ``accounts``
  ``UPDATE`` whose ``balance`` drops by the filled stake (rounded to cents) times
  ``orderCents``; later a hedge bet ``INSERT`` (``betStatus`` ``"placed"`` or ``"pending"``,
  ``settlementStatus`` ``"undecided"``), later bet ``UPDATE``\\ s: ``pending`` -> ``placed`` (or
  ``declined``), then settlement to ``"won"`` / ``"lost"`` with ``settledAt``.

Global channels: ``scores`` for a few fixtures (minute by minute, goals, half time, full time,
then a new fixture) and ``emergency`` switched on and off now and then.

Wire rules the events follow (the ones the docs show):

- payloads and ``old`` are camelCase wire dicts; INSERT carries no ``old`` (``old is None``);
- an ``UPDATE``'s ``old`` holds the previous values of exactly the fields that changed, leaving
  out fields that had no previous value (the docs' fill example leaves out ``matchedAt``);
- about 40 % of ``UPDATE`` payloads are partial: the identity keys plus the changed fields;
- ``scores`` and ``emergency`` UPDATEs carry no ``old`` (as in the docs' examples);
- timestamps come from a simulated clock starting at ``start`` (default 2026-02-15T10:00:00Z;
  the simulator passes its ``scenario_start``), never the wall clock.

Order ids start at 100001 and bet ids at 500001, so they never collide with the ids 1..count
of :meth:`mmws.sim.Simulator.burst`.

:class:`MatchGenerator` (feed endpoint) -- ``next_update()`` returns a :class:`FeedUpdate`: one
change of one match on one channel. The server turns it into wire frames per subscription
(see :mod:`mmws.sim.feed`). It plays a few live matches: ``match_start``, ``goal``,
``halftime``, ``second_half_start``, ``match_end`` (MAIN and MAIN_REALTIME, the latter under
the match's separate realtime id), ``stats_update`` / ``odds_update`` on change (STATS, ODDS)
with the matching ``stats_update_realtime`` (``changedStats``) and ``odds_update_realtime``
(``changedOdds``). :meth:`MatchGenerator.snapshot` gives the current STATS or ODDS data of every
live match, for ``batch_update``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Final

import attrs

__all__ = [
    "CLIENT_CHANNELS",
    "FeedUpdate",
    "MatchGenerator",
    "MatchInfo",
    "Scenario",
    "ScenarioEvent",
]

CLIENT_CHANNELS: Final = frozenset({"orders", "bets", "accounts"})
START: Final = datetime(2026, 2, 15, 10, 0, 0, tzinfo=timezone.utc)

_EXCHANGES: Final = ("polymarket", "kalshi", "novig", "sxbet", "betfair")
_BOOKMAKERS: Final = ("vertex", "pinnacle", "demo")
_OUTCOMES: Final = (111, 112, 121, 122, 131, 132, 141, 142, 151, 152, 161, 162, 171, 172)
_TEAMS: Final = (
    "Arsenal", "Liverpool", "Chelsea", "Everton", "Fulham", "Brentford", "Burnley",
    "Leeds United", "Aston Villa", "Newcastle", "Brighton", "Wolves",
)  # fmt: skip


@attrs.frozen
class ScenarioEvent:
    """One MM broadcast: ``client`` is the owning client for orders/bets/accounts, else None."""

    channel: str
    event: str
    payload: dict[str, Any]
    old: dict[str, Any] | None = None
    client: str | None = None

    def frame(self) -> dict[str, Any]:
        """The broadcast frame as a JSON-ready dict."""
        out: dict[str, Any] = {
            "type": "broadcast",
            "channel": self.channel,
            "event": self.event,
            "payload": self.payload,
        }
        if self.old is not None:
            out["old"] = self.old
        return out


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


class Scenario:
    """The MM market-making lifecycle for ``clients``, seeded. See the module docstring."""

    def __init__(
        self,
        seed: int = 0,
        clients: Sequence[str] = ("demo",),
        *,
        fixtures: int = 3,
        max_open_orders: int = 3,
        start: datetime = START,
    ) -> None:
        self._rng = random.Random(seed)
        self._clients = tuple(dict.fromkeys(clients))
        self._now = start
        self._max_open = max(1, max_open_orders) * max(1, len(self._clients))
        self._next_order = 100001
        self._next_bet = 500001
        self._processes: list[Iterator[ScenarioEvent]] = []
        self._pending: deque[ScenarioEvent] = deque()
        self._emergency = False
        rng = self._rng
        self._accounts: dict[str, list[dict[str, Any]]] = {
            client: [
                {
                    "exchange": exchange,
                    "username": "0x" + _hex(rng, 40),
                    "client": client,
                    "active": True,
                    "balance": 50000.0,
                    "maxOutcomeStake": 1000.0,
                }
                for exchange in rng.sample(_EXCHANGES, 2)
            ]
            for client in self._clients
        }
        self._fixtures = [self._new_fixture() for _ in range(max(1, fixtures))]

    # -- public -----------------------------------------------------------------------------

    @property
    def clients(self) -> tuple[str, ...]:
        return self._clients

    def accounts(self, client: str) -> list[dict[str, Any]]:
        """Copies of ``client``'s account rows as they are now (``[]`` for an unknown
        client). The scenario changes its own rows as it runs (balances move with fills),
        so these are what an ``accounts`` REST answer would give at this moment."""
        return [dict(row) for row in self._accounts.get(client, ())]

    def next_event(self) -> ScenarioEvent:
        """The next broadcast of the scenario (never ends)."""
        while not self._pending:
            self._step()
        return self._pending.popleft()

    def take(self, count: int) -> list[ScenarioEvent]:
        """The next ``count`` events."""
        return [self.next_event() for _ in range(count)]

    # -- private ----------------------------------------------------------------------------

    def _step(self) -> None:
        rng = self._rng
        self._now += timedelta(seconds=round(rng.uniform(0.2, 3.0), 3))
        roll = rng.random()
        if roll < 0.02:
            self._pending.append(self._toggle_emergency())
            return
        if roll < 0.12:
            self._pending.append(self._score_tick())
            return
        can_start = self._clients and len(self._processes) < self._max_open
        if can_start and (not self._processes or rng.random() < 0.25):
            self._processes.append(self._order_life(rng.choice(self._clients)))
        if not self._processes:
            self._pending.append(self._score_tick())
            return
        index = rng.randrange(len(self._processes))
        event = next(self._processes[index], None)
        if event is None:
            del self._processes[index]
        else:
            self._pending.append(event)

    def _update(
        self,
        channel: str,
        client: str | None,
        row: dict[str, Any],
        changes: Mapping[str, Any],
        identity: Sequence[str],
    ) -> ScenarioEvent:
        """Apply ``changes`` to ``row`` and build the UPDATE with ``old`` and maybe partial."""
        old = {k: row[k] for k, v in changes.items() if row.get(k) is not None and row[k] != v}
        row.update(changes)
        if self._rng.random() < 0.4:
            payload = {k: row[k] for k in identity}
            payload.update(changes)
        else:
            payload = dict(row)
        return ScenarioEvent(channel, "UPDATE", payload, old, client)

    def _order_life(self, client: str) -> Iterator[ScenarioEvent]:
        rng = self._rng
        order_id = self._next_order
        self._next_order += 1
        account = rng.choice(self._accounts[client])
        fixture = rng.choice(self._fixtures)
        cents = round(rng.uniform(0.05, 0.95), 2)
        stake = float(rng.choice((50, 100, 200, 250, 500)))
        back = rng.random() < 0.7
        price = round(1.0 / max(0.05, 1.0 - cents) + rng.uniform(0.0, 0.2), 3)
        created = _iso(self._now)
        row: dict[str, Any] = {
            "orderId": order_id,
            "fixtureId": fixture["fixtureId"],
            "outcomeId": rng.choice(_OUTCOMES),
            "playerId": 0,
            "exchange": account["exchange"],
            "account": account["username"],
            "exchangeOutcomeId": _hex(rng, 16),
            "orderStatus": "PENDING_PLACEMENT",
            "matchedStatus": "NOT_MATCHED",
            "orderCents": cents,
            "orderStake": stake,
            "matchedStake": 0.0,
            "back": back,
            "side": "buy" if back else "sell",
            "settlementStatus": "UNDECIDED",
            "bookmakerOutcomePrice": price,
            "bookmakerOutcomeLimit": float(rng.choice((500, 1000, 2000))),
            "bookmakerOutcomeActive": True,
            "createdAt": created,
        }
        yield ScenarioEvent("orders", "INSERT", dict(row), None, client)
        ident = ("orderId",)
        placed = {"orderStatus": "PLACED", "exchangeOrderId": "0x" + _hex(rng, 12)}
        yield self._update("orders", client, row, placed, ident)
        if rng.random() < 0.1:
            yield self._update("orders", client, row, {"orderStatus": "CANCELLED"}, ident)
            return
        partials = rng.choice((0, 1, 1, 2))
        for _ in range(partials + 1):
            last = partials == 0
            matched: float = row["matchedStake"]
            if last:
                new = stake
                changes: dict[str, Any] = {
                    "orderStatus": "FILLED",
                    "matchedStatus": "FULLY_MATCHED",
                    "matchedStake": new,
                    "matchedAt": _iso(self._now),
                }
            else:
                new = round(matched + (stake - matched) * rng.uniform(0.2, 0.6), 2)
                changes = {
                    "matchedStatus": "PARTIALLY_MATCHED",
                    "matchedStake": new,
                    "matchedAt": _iso(self._now),
                }
            partials -= 1
            yield self._update("orders", client, row, changes, ident)
            delta = round(new - matched, 2)
            cost = round(delta * cents, 2)
            balance = round(account["balance"] - cost, 2)
            ident_account = ("exchange", "username")
            yield self._update("accounts", client, account, {"balance": balance}, ident_account)
            self._processes.append(self._bet_life(client, order_id, delta))
            if last:
                return

    def _bet_life(self, client: str, order_id: int, stake: float) -> Iterator[ScenarioEvent]:
        rng = self._rng
        bet_id = self._next_bet
        self._next_bet += 1
        bookmaker = rng.choice(_BOOKMAKERS)
        price = round(rng.uniform(1.4, 3.2), 3)
        pending = rng.random() < 0.3
        row: dict[str, Any] = {
            "betId": bet_id,
            "orderId": order_id,
            "client": client,
            "bookmaker": bookmaker,
            "bookmakerBetId": str(rng.randrange(10**6, 10**7)),
            "placedPrice": price,
            "placedStake": stake,
            "betStatus": "pending" if pending else "placed",
            "settlementStatus": "undecided",
            "sentData": {
                "requestId": _hex(rng, 8),
                "eventId": rng.randrange(10000, 99999),
                "price": price,
                "amount": stake,
                "side": rng.choice(("1", "2")),
            },
            "receivedData": {"betId": str(rng.randrange(100, 999)), "status": "U"},
            "placedAt": _iso(self._now),
        }
        yield ScenarioEvent("bets", "INSERT", dict(row), None, client)
        ident = ("betId", "orderId")
        if pending:
            if rng.random() < 0.2:
                yield self._update("bets", client, row, {"betStatus": "declined"}, ident)
                return
            yield self._update("bets", client, row, {"betStatus": "placed"}, ident)
        outcome = "won" if rng.random() < 0.5 else "lost"
        settled = {"settlementStatus": outcome, "settledAt": _iso(self._now)}
        yield self._update("bets", client, row, settled, ident)

    def _new_fixture(self) -> dict[str, Any]:
        rng = self._rng
        return {
            "fixtureId": f"id{rng.randrange(10**15, 10**16)}",
            "live": True,
            "statusId": 1,
            "currentPeriod": "1st Half",
            "currentMinute": 0,
            "scores": {"home": 0, "away": 0, "period1Home": 0, "period1Away": 0},
        }

    def _score_tick(self) -> ScenarioEvent:
        rng = self._rng
        index = rng.randrange(len(self._fixtures))
        fixture = self._fixtures[index]
        if not fixture["live"]:
            fixture = self._fixtures[index] = self._new_fixture()
        minute = min(90, fixture["currentMinute"] + rng.randint(1, 4))
        scores = dict(fixture["scores"])
        if rng.random() < 0.2:
            side = rng.choice(("home", "away"))
            scores[side] += 1
            if minute <= 45:
                scores["period1Home" if side == "home" else "period1Away"] += 1
        fixture["currentMinute"] = minute
        fixture["scores"] = scores
        if minute >= 90:
            fixture.update(live=False, statusId=2, currentPeriod="Finished")
        elif minute > 45:
            fixture["currentPeriod"] = "2nd Half"
        payload = dict(fixture)
        payload["scores"] = dict(scores)
        return ScenarioEvent("scores", "UPDATE", payload)

    def _toggle_emergency(self) -> ScenarioEvent:
        self._emergency = not self._emergency
        reason = "Manual trigger" if self._emergency else "Manual resume"
        payload = {
            "emergency": self._emergency,
            "reason": reason,
            "triggeredAt": _iso(self._now),
        }
        return ScenarioEvent("emergency", "UPDATE", payload)


# -- feed -----------------------------------------------------------------------------------


@attrs.frozen
class FeedUpdate:
    """One change of one match on one feed channel.

    ``shape`` is ``"match"`` for MAIN, MAIN_REALTIME, STATS_REALTIME and ODDS_REALTIME (the
    frame has ``type`` = ``event_type`` and top-level ``matchId``/``leagueId``) and
    ``"event"`` for STATS and ODDS (``type: "event"``, ``eventType``, the subscription's
    ``scope``/``id`` echoed). ``match_id`` is the realtime id on MAIN_REALTIME.
    """

    channel: str
    event_type: str
    match_id: str
    league_id: str
    event_id: str
    data: dict[str, Any]

    @property
    def shape(self) -> str:
        return "event" if self.channel in ("STATS", "ODDS") else "match"


@attrs.frozen
class MatchInfo:
    """A live match of the feed generator: ids to subscribe to, and the teams."""

    match_id: str
    realtime_id: str
    league_id: str
    home: str
    away: str


_LEAGUES: Final = (
    ("Premier League", "England"),
    ("La Liga", "Spain"),
    ("Serie A", "Italy"),
)
_STAT_KEYS: Final = (
    "possession", "attacks", "dangerousAttacks", "shotsOnTarget", "shotsOffTarget",
    "totalShots", "shotsBlocked", "corners", "fouls", "yellowCards", "redCards", "yellowToRed",
    "substitutions", "throwIns", "injuries", "penalties", "offsides",
)  # fmt: skip


class _Match:
    def __init__(self, rng: random.Random, league: tuple[str, str, str]) -> None:
        home, away = rng.sample(_TEAMS, 2)
        self.info = MatchInfo(
            match_id=str(rng.randrange(10000, 99999)),
            realtime_id=_hex(rng, 16),
            league_id=league[0],
            home=home,
            away=away,
        )
        self.league = league
        self.started = False
        self.phase = "first"  # first, halftime, second, ended
        self.minute = 0
        self.goals = [0, 0]
        self.goals_1h: list[int] | None = None
        self.stats: dict[str, str | None] = {key: "0;0" for key in _STAT_KEYS}
        self.stats["possession"] = "50;50"
        self.stats["xg"] = "0.00;0.00"
        self.odds: dict[str, str] = {}

    def stats_data(self) -> dict[str, Any]:
        score = f"{self.goals[0]};{self.goals[1]}"
        status = {"first": "IN_PLAY", "halftime": "HALF_TIME", "second": "IN_PLAY"}
        first_half = f"{self.goals_1h[0]};{self.goals_1h[1]}" if self.goals_1h else None
        data: dict[str, Any] = {
            "timer": str(self.minute),
            "extraTimer": None,
            "status": status.get(self.phase, "ENDED"),
            "score": score,
            "score1h": first_half,
            "score2h": None,
        }
        data.update(self.stats)
        return data


def _two(rng: random.Random, low: float, high: float) -> tuple[float, float]:
    return round(rng.uniform(low, high), 2), round(rng.uniform(low, high), 2)


class MatchGenerator:
    """A few live soccer matches, seeded. See the module docstring."""

    def __init__(self, seed: int = 0, matches: int = 3) -> None:
        self._rng = random.Random(seed)
        rng = self._rng
        self._leagues = [(str(rng.randrange(10000, 99999)), name, c) for name, c in _LEAGUES]
        self._matches = [self._new_match() for _ in range(max(1, matches))]
        self._pending: deque[FeedUpdate] = deque()

    @property
    def matches(self) -> tuple[MatchInfo, ...]:
        return tuple(m.info for m in self._matches)

    def next_update(self) -> FeedUpdate:
        """The next change (never ends)."""
        while not self._pending:
            self._step()
        return self._pending.popleft()

    def take(self, count: int) -> list[FeedUpdate]:
        return [self.next_update() for _ in range(count)]

    def snapshot(self, channel: str) -> list[dict[str, Any]]:
        """``[{"matchId", "leagueId", "data"}]`` of every started match, for ``batch_update``."""
        out = []
        for match in self._matches:
            if not match.started:
                continue
            data = match.stats_data() if channel == "STATS" else dict(match.odds)
            out.append({"matchId": match.info.match_id, "leagueId": match.league[0], "data": data})
        return out

    # -- private ----------------------------------------------------------------------------

    def _new_match(self) -> _Match:
        match = _Match(self._rng, self._rng.choice(self._leagues))
        match.odds = self._initial_odds()
        return match

    def _initial_odds(self) -> dict[str, str]:
        rng = self._rng
        home, draw, away = (round(rng.uniform(1.5, 5.0), 2) for _ in range(3))
        over, under = _two(rng, 1.7, 2.1)
        ah_home, ah_away = _two(rng, 1.7, 2.1)
        x12 = f"{home:.2f};{draw:.2f};{away:.2f}"
        return {
            "kickoff1x2": x12,
            "live1x2": x12,
            "starting1x2": x12,
            "kickoffOU": f"{over:.2f};{under:.2f}|2.5",
            "liveOU": f"{over:.2f};{under:.2f}|2.5",
            "startingOU": f"{over:.2f};{under:.2f}|2.5",
            "kickoffAH": f"{ah_home:.2f};{ah_away:.2f}|-0.5",
            "liveAH": f"{ah_home:.2f};{ah_away:.2f}|-0.5",
            "startingAH": f"{ah_home:.2f};{ah_away:.2f}|-0.5",
            "dropping1x2": "+0.00;+0.00;+0.00",
        }

    def _emit(self, match: _Match, channel: str, event_type: str, data: dict[str, Any]) -> None:
        info = match.info
        match_id = info.realtime_id if channel == "MAIN_REALTIME" else info.match_id
        event_id = _hex(self._rng, 12)
        self._pending.append(
            FeedUpdate(channel, event_type, match_id, match.league[0], event_id, data)
        )

    def _main(self, match: _Match, event_type: str, data: dict[str, Any]) -> None:
        self._emit(match, "MAIN", event_type, data)
        self._emit(match, "MAIN_REALTIME", event_type, dict(data))

    def _score(self, match: _Match) -> str:
        return f"{match.goals[0]};{match.goals[1]}"

    def _step(self) -> None:
        rng = self._rng
        index = rng.randrange(len(self._matches))
        match = self._matches[index]
        info = match.info
        if match.phase == "ended":
            self._matches[index] = self._new_match()
            return
        if not match.started:
            match.started = True
            league_id, league_name, country = match.league
            self._main(
                match,
                "match_start",
                {
                    "teamA": {"id": str(rng.randrange(1000, 9999)), "name": info.home},
                    "teamB": {"id": str(rng.randrange(1000, 9999)), "name": info.away},
                    "championship": {
                        "id": league_id,
                        "name": league_name,
                        "country": country,
                        "seasonName": "2025/2026",
                    },
                    "startDate": "2026-02-15T15:00:00Z",
                },
            )
            return
        if match.phase == "halftime":
            match.phase = "second"
            self._main(match, "second_half_start", {"score": self._score(match)})
            return
        match.minute += rng.randint(1, 5)
        if match.phase == "first" and match.minute >= 45:
            match.minute = 45
            match.phase = "halftime"
            match.goals_1h = list(match.goals)
            self._main(match, "halftime", {"score": self._score(match), "timer": "45"})
            return
        if match.minute >= 90:
            match.minute = 90
            match.phase = "ended"
            score = self._score(match)
            self._main(match, "match_end", {"score": score, "timer": "90"})
            return
        roll = rng.random()
        if roll < 0.15:
            team = rng.randrange(2)
            match.goals[team] += 1
            self._main(
                match,
                "goal",
                {
                    "team": "teamA" if team == 0 else "teamB",
                    "timer": str(match.minute),
                    "score": self._score(match),
                },
            )
            self._stats_change(match, {})
        elif roll < 0.6:
            self._stats_change(match, self._random_stats(match))
        else:
            self._odds_change(match)

    def _random_stats(self, match: _Match) -> dict[str, str]:
        rng = self._rng
        changed: dict[str, str] = {}
        for key in rng.sample(_STAT_KEYS[1:], rng.randint(1, 3)):
            a, b = (int(x) for x in (match.stats[key] or "0;0").split(";"))
            if rng.random() < 0.5:
                a += 1
            else:
                b += 1
            changed[key] = f"{a};{b}"
        home = rng.randint(35, 65)
        changed["possession"] = f"{home};{100 - home}"
        return changed

    def _stats_change(self, match: _Match, changed: dict[str, str]) -> None:
        match.stats.update(changed)
        realtime = [{"stat": k, "value": v} for k, v in changed.items()]
        realtime.append({"stat": "score", "value": self._score(match)})
        self._emit(match, "STATS", "stats_update", match.stats_data())
        self._emit(match, "STATS_REALTIME", "stats_update_realtime", {"changedStats": realtime})

    def _odds_change(self, match: _Match) -> None:
        rng = self._rng
        home, draw, away = (round(rng.uniform(1.3, 6.0), 2) for _ in range(3))
        over, under = _two(rng, 1.6, 2.3)
        changed = {
            "live1x2": f"{home:.2f};{draw:.2f};{away:.2f}",
            "liveOU": f"{over:.2f};{under:.2f}|2.5",
        }
        if rng.random() < 0.5:
            line = rng.choice(("-0.5", "-0.25", "0", "+0.25"))
            ah_home, ah_away = _two(rng, 1.6, 2.3)
            changed["liveAH"] = f"{ah_home:.2f};{ah_away:.2f}|{line}"
        kick = [float(x) for x in match.odds["kickoff1x2"].split(";")]
        deltas = [home - kick[0], draw - kick[1], away - kick[2]]
        changed["dropping1x2"] = ";".join(f"{d:+.2f}" for d in deltas)
        match.odds.update(changed)
        self._emit(match, "ODDS", "odds_update", dict(match.odds))
        self._emit(
            match,
            "ODDS_REALTIME",
            "odds_update_realtime",
            {"changedOdds": [{"market": k, "value": v} for k, v in changed.items()]},
        )
