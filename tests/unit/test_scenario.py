"""The simulator's generators are pure and deterministic: same seed, same sequence."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mmws._codec import model_codec
from mmws.mm.models import Account, Bet, Order, Score
from mmws.sim import MatchGenerator, Scenario
from mmws.sim.scenario import CLIENT_CHANNELS

CLIENTS = ["client-a", "client-b"]
CODECS = {"orders": Order, "bets": Bet, "accounts": Account, "scores": Score}


def test_same_seed_same_sequence() -> None:
    assert Scenario(7, CLIENTS).take(500) == Scenario(7, CLIENTS).take(500)


def test_different_seed_different_sequence() -> None:
    first = [(e.channel, e.event, e.payload) for e in Scenario(1, CLIENTS).take(100)]
    second = [(e.channel, e.event, e.payload) for e in Scenario(2, CLIENTS).take(100)]
    assert first != second


def test_feed_generator_is_deterministic() -> None:
    assert MatchGenerator(3).take(400) == MatchGenerator(3).take(400)
    assert MatchGenerator(3).take(50) != MatchGenerator(4).take(50)
    assert MatchGenerator(3).matches == MatchGenerator(3).matches


def test_every_channel_and_event_occurs() -> None:
    kinds = {(e.channel, e.event) for e in Scenario(0, CLIENTS).take(1000)}
    assert kinds == {
        ("orders", "INSERT"), ("orders", "UPDATE"), ("bets", "INSERT"), ("bets", "UPDATE"),
        ("accounts", "UPDATE"), ("scores", "UPDATE"), ("emergency", "UPDATE"),
    }  # fmt: skip


def test_client_channels_carry_a_client_and_global_ones_none() -> None:
    for event in Scenario(0, CLIENTS).take(500):
        if event.channel in CLIENT_CHANNELS:
            assert event.client in CLIENTS
        else:
            assert event.client is None and event.old is None


def test_payloads_decode_with_the_client_models() -> None:
    for event in Scenario(5, CLIENTS).take(800):
        model = CODECS.get(event.channel)
        if model is not None:
            codec = model_codec(model)
            codec.structure(event.payload)
            if event.old:
                codec.structure_old(event.old)


def _replay(events: list[Any]) -> dict[tuple[str, str], list[float]]:
    """Apply the events as a client would: ``old`` must match the cached previous values."""
    orders: dict[int, dict[str, Any]] = {}
    bets: dict[int, dict[str, Any]] = {}
    unpaid: dict[tuple[str, str], list[float]] = defaultdict(list)  # fill costs not yet booked
    seen: dict[tuple[str, str], float] = defaultdict(lambda: 50000.0)
    fills_since_bet: dict[int, int] = defaultdict(int)
    for event in events:
        p = event.payload
        if event.channel == "orders":
            if event.event == "INSERT":
                assert p["orderStatus"] == "PENDING_PLACEMENT" and event.old is None
                orders[p["orderId"]] = dict(p)
                continue
            cached = orders[p["orderId"]]
            for key, value in event.old.items():
                assert cached[key] == value, (key, cached[key], value)
                assert p[key] != value
            if cached["orderStatus"] == "PENDING_PLACEMENT":
                assert p["orderStatus"] == "PLACED"
            matched = p.get("matchedStake", cached["matchedStake"])
            if matched != cached["matchedStake"]:
                assert matched > cached["matchedStake"]
                fills_since_bet[p["orderId"]] += 1
                account = (cached["exchange"], cached["account"])
                delta = round(matched - cached["matchedStake"], 2)
                cost = round(delta * cached["orderCents"], 2)
                unpaid[account].append(cost)
            cached.update(p)
            if cached["orderStatus"] == "FILLED":
                assert cached["matchedStake"] == cached["orderStake"]
        elif event.channel == "accounts":
            key = (p["exchange"], p["username"])
            assert event.old == {"balance": seen[key]}  # old = the previous balance
            paid = round(seen[key] - p["balance"], 2)
            assert paid in unpaid[key]  # the cost of a fill on this account
            unpaid[key].remove(paid)
            seen[key] = p["balance"]
        elif event.channel == "bets":
            if event.event == "INSERT":
                assert p["betStatus"] in ("placed", "pending")
                assert p["settlementStatus"] == "undecided"
                assert fills_since_bet[p["orderId"]] > 0  # a bet only after a fill
                fills_since_bet[p["orderId"]] -= 1
                bets[p["betId"]] = dict(p)
            else:
                cached = bets[p["betId"]]
                for key, value in event.old.items():
                    assert cached[key] == value
                cached.update(p)
                assert cached["settlementStatus"] in ("undecided", "won", "lost")
    return unpaid


def test_lifecycle_is_consistent() -> None:
    """INSERT PENDING_PLACEMENT -> PLACED -> fills; old = previous values; balances follow
    the fills; a hedge bet INSERT follows each fill; bets settle to won/lost."""
    unpaid = _replay(Scenario(11, CLIENTS).take(2000))
    assert sum(len(costs) for costs in unpaid.values()) <= 6  # at most the orders in flight


def test_some_updates_are_partial() -> None:
    updates = [e for e in Scenario(0, CLIENTS).take(500) if e.channel == "orders"]
    sizes = {len(e.payload) for e in updates if e.event == "UPDATE"}
    assert min(sizes) < 6 < max(sizes)
