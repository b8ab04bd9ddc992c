"""Print one line for every fill of your orders: an update that raises the matched stake
(a partial fill, or the last one, which turns the order FILLED). A line names the order,
its exchange, the matched stake (and what this fill added) and the price:

    14:02:11 FILL order=100002 exchange=betfair matched=63.23 (+63.23 of 200.0) price=0.12

Lines that start with "#" are notes about the connection. The client keeps the state of
your orders (state=True) and reads it back from the REST API after a reconnect, so a fill
that happened while it was away is printed then, marked "[from REST]".

Against a simulator in this process (no key needed):

    python examples/fill_logger.py --duration 10

Against a server, with the key in the environment (never on the command line):

    MMWS_API_KEY=... python examples/fill_logger.py --url wss://HOST/ws/subscribe

--out FILE also appends every fill to FILE as a JSON line. Ctrl-C stops it cleanly.
"""

import argparse
import contextlib
import json
import os
import queue
import sys
import time
from datetime import datetime, timezone
from typing import TextIO

import mmws


def report(
    order: mmws.Order, matched: float, before: float, source: str, out: TextIO | None
) -> None:
    """Print one fill, and append it to ``out`` as JSON."""
    now, added = datetime.now(timezone.utc), round(matched - before, 2)
    print(f"{now:%H:%M:%S} FILL order={order.order_id} exchange={order.exchange} "
          f"matched={matched} (+{added} of {order.order_stake}) price={order.order_cents}"
          + (" [from REST]" if source == "rest" else ""), flush=True)
    if out is not None:
        out.write(json.dumps({
            "time": now.isoformat(timespec="seconds"), "order_id": order.order_id,
            "exchange": order.exchange, "matched_stake": matched, "added": added,
            "order_stake": order.order_stake, "price": order.order_cents, "source": source,
        }) + "\n")
        out.flush()


def note(text: str) -> None:
    print("# " + text, flush=True)


def log_fills(client: mmws.MMClient, duration: float | None, out: TextIO | None) -> int:
    deadline = time.monotonic() + duration if duration else float("inf")
    logged: dict[int, float] = {}    # order id -> matched stake printed last
    at_start: dict[int, float] = {}  # order id -> matched stake when we connected
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = client.get(timeout=min(left, 1.0))
        except queue.Empty:
            continue
        if isinstance(event, mmws.OrderEvent) and event.event == "UPDATE":
            if not {"matched_stake", "order_status"} & set(event.old):
                continue  # neither the stake nor the status changed: not a fill
            oid = event.payload.order_id
            # The update may be partial; the state has every field, this update merged in.
            order = client.state.orders.get(oid, event.payload)
            matched = event.payload.matched_stake
            matched = order.matched_stake if matched is None else matched
            before = event.old.get("matched_stake", logged.get(oid, at_start.get(oid, 0.0)))
            before = max(before or 0.0, logged.get(oid, 0.0))  # printed after a resync?
            if matched is not None and matched > before:
                report(order, matched, before, "stream", out)
                logged[oid] = matched
        elif isinstance(event, mmws.Resynced):
            note(f"synced from REST ({event.reason}): {event.orders} orders, "
                 f"{len(client.state.open_orders)} open")
            if event.reason == "connect":
                at_start = {o.order_id: o.matched_stake or 0.0
                            for o in client.state.orders.values()}
                continue
            # Fills we never saw an event for. The state may run a little ahead of the
            # queue; such a fill is printed here and not again when its event comes.
            for oid, order in client.state.orders.items():
                before, matched = logged.get(oid, at_start.get(oid, 0.0)), order.matched_stake
                if matched is not None and matched > before:
                    report(order, matched, before, "rest", out)
                    logged[oid] = matched
        elif isinstance(event, mmws.Disconnected):
            then = "reconnecting" if event.will_reconnect else "not reconnecting"
            note(f"disconnected: {event.reason}; {then}")
        elif isinstance(event, mmws.GapDetected):
            note(f"a broadcast was lost ({event.channel} {event.key}); resyncing")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print one line for every fill.")
    parser.add_argument("--url", help="MM WebSocket URL (default: a simulator in this process)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--out", help="also append every fill to this file as JSON lines")
    args = parser.parse_args(argv)
    key = os.environ.get("MMWS_API_KEY", "")
    if args.url and not key:
        parser.error("--url needs the API key in the environment variable MMWS_API_KEY")
    try:
        with contextlib.ExitStack() as stack:  # closes everything, in reverse order
            url = args.url
            if url is None:
                from mmws.sim import Simulator  # the "sim" extra

                sim = stack.enter_context(Simulator())
                key, url = sim.api_key, sim.mm_url
            out = stack.enter_context(open(args.out, "a", encoding="utf-8")) if args.out else None
            client = mmws.MMClient(key, url=url, channels=["orders"], state=True)
            stack.enter_context(client)  # connects, and waits for the first resync
            return log_fills(client, args.duration, out)
    except KeyboardInterrupt:
        note("stopped")
        return 0
    except mmws.MmwsError as exc:  # a refused key, an unreachable server, a fatal close
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
