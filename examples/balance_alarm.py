"""Print an ALARM when an exchange balance falls below a threshold, or when the emergency
switch turns on.

The client keeps the state of your accounts (state=True): it starts from the balances the
REST API reports, applies every balance update and reads them back after a reconnect.
Each (exchange, username) account alarms once when it falls below --below, and prints
"ok" when it is back at or above it:

    ALARM balance betfair 0xf1e2d3c4b5 49992.41 < 50000.00
    ok    balance betfair 0xf1e2d3c4b5 50010.00 >= 50000.00
    ALARM emergency switch ON: Manual trigger

Against a simulator in this process (no key needed):

    python examples/balance_alarm.py --below 49950 --duration 10

Against a server, with the key in the environment (never on the command line):

    MMWS_API_KEY=... python examples/balance_alarm.py --url wss://HOST/ws/subscribe --below 500

Ctrl-C stops it cleanly.
"""

import argparse
import contextlib
import os
import queue
import sys
import time

import mmws


def note(text: str) -> None:
    print("# " + text, flush=True)


class Alarm:
    def __init__(self, below: float) -> None:
        self.below = below
        self.low: set[tuple[str, str]] = set()  # the accounts below the threshold
        self.emergency = False

    def balance(self, key: tuple[str, str], balance: float | None) -> None:
        if balance is None:
            return
        name = f"{key[0]} {key[1][:12]}"  # exchange and the start of the username
        if balance < self.below and key not in self.low:
            self.low.add(key)
            print(f"ALARM balance {name} {balance:.2f} < {self.below:.2f}", flush=True)
        elif balance >= self.below and key in self.low:
            self.low.discard(key)
            print(f"ok    balance {name} {balance:.2f} >= {self.below:.2f}", flush=True)

    def switch(self, emergency: mmws.Emergency | None) -> None:
        on = bool(emergency and emergency.emergency)
        if on and not self.emergency:
            reason = emergency.reason if emergency else None
            print(f"ALARM emergency switch ON: {reason}", flush=True)
        elif self.emergency and not on:
            print("ok    emergency switch off", flush=True)
        self.emergency = on


def watch(client: mmws.MMClient, alarm: Alarm, duration: float | None) -> None:
    deadline = time.monotonic() + duration if duration else float("inf")
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = client.get(timeout=min(left, 1.0))
        except queue.Empty:
            continue
        if isinstance(event, mmws.AccountEvent):
            account = event.payload  # an update may leave the balance out: then see the state
            key = (account.exchange or "", account.username or "")
            balance = account.balance
            if balance is None and key in client.state.accounts:
                balance = client.state.accounts[key].balance
            alarm.balance(key, balance)
        elif isinstance(event, mmws.EmergencyEvent):
            alarm.switch(event.payload)
        elif isinstance(event, mmws.Resynced):  # at the start, and after every reconnect
            snapshot = client.state.snapshot()
            note(f"synced from REST ({event.reason}): watching {len(snapshot.accounts)} "
                 f"accounts, alarm below {alarm.below:.2f}")
            for key, account in snapshot.accounts.items():
                alarm.balance(key, account.balance)
            alarm.switch(snapshot.emergency)
        elif isinstance(event, mmws.Disconnected):
            note(f"disconnected: {event.reason}; balances are checked again after the resync")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Alarm on low balances and emergencies.")
    parser.add_argument("--below", type=float, required=True, help="the balance alarm level")
    parser.add_argument("--url", help="MM WebSocket URL (default: a simulator in this process)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
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
            channels = ["accounts", "emergency"]
            client = stack.enter_context(mmws.MMClient(key, url=url, channels=channels,
                                                       state=True))
            watch(client, Alarm(args.below), args.duration)
    except KeyboardInterrupt:
        note("stopped")
    except mmws.MmwsError as exc:  # a refused key, an unreachable server, a fatal close
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
