"""``python -m mmws.sim``: run the simulator until Ctrl-C.

Prints the MM URL and API key (a local demo key), the feed URL and the REST URL, then serves
until SIGINT or SIGTERM, and exits 0 without a traceback. A bad option prints one error line
and exits non-zero, also without a traceback: 2 for what argparse refuses (``--port 99999``),
1 for what the simulator refuses (``--heartbeat-interval 0``) or a failure to start (port in
use). ``main(argv)`` is reused by the ``mmws sim`` command.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from mmws.errors import ConfigError

__all__ = ["build_parser", "main"]


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def build_parser(prog: str = "python -m mmws.sim") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the mmws MM + feed WebSocket simulator until Ctrl-C."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8765, help="port (0: any free port)")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="scenario seed")
    parser.add_argument(
        "--api-key", action="append", dest="api_keys", metavar="UUID",
        help="accepted MM API key (repeatable; default: a generated demo key)",
    )  # fmt: skip
    parser.add_argument(
        "--heartbeat-interval", type=float, default=60.0, help="seconds between heartbeats"
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m mmws.sim") -> int:
    """Parse ``argv``, run until interrupted; the exit status. ``prog`` names the command
    in ``--help`` (``mmws sim`` reuses this function)."""
    args = build_parser(prog).parse_args(argv)
    try:
        from mmws.sim.server import Simulator
    except ImportError as exc:
        print(f"the simulator needs the 'sim' extra: pip install 'mmws[sim]' ({exc})",
              file=sys.stderr)  # fmt: skip
        return 1
    api_keys = {key: "demo" for key in args.api_keys} if args.api_keys else None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sim = Simulator(
                args.host,
                args.port,
                api_keys=api_keys,
                seed=args.seed,
                rate=args.rate,
                heartbeat_interval=args.heartbeat_interval,
            )
        except (ConfigError, OSError) as exc:
            print(f"cannot start the simulator: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # anything unforeseen: one line, not a traceback
            print(f"cannot start the simulator: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        with sim:
            print(f"MM WebSocket:   {sim.mm_url}")
            print(f"MM API key:     {sim.api_key}")
            print(f"MM REST:        {sim.rest_url}/api/v1 (header X-API-Key)")
            print(f"Feed WebSocket: {sim.feed_url}")
            print(f"Feed REST:      {sim.rest_url}/v1/ws/new?t={sim.feed_api_token}")
            print("Press Ctrl-C to stop.", flush=True)
            while not stop.wait(0.5):
                pass
        print("simulator stopped", file=sys.stderr)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
