"""``python -m mmws.sim``: run the simulator until Ctrl-C.

Prints the MM URL and API key (a local demo key; keys given with ``--api-key`` are not
echoed, only their last four characters), the feed URL and the REST URL, then serves until
SIGINT or SIGTERM, and exits 0 without a traceback. Errors are one line on stderr in
the ``mmws`` command's form, ``mmws: error: <message>``, also without a traceback: status 2
for a usage error (``--port 99999``, ``--heartbeat-interval 0``, a misspelt option, with the
likely spelling), 1 for a failure to start (the port in use, a host that does not resolve, a
key that is not a UUID). ``main(argv)`` is reused by the ``mmws sim`` command.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import signal
import sys
import textwrap
import threading
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from mmws._secret import Secret
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


def _number(text: str, *, zero_ok: bool) -> float:
    """An argparse type: a finite number, > 0 (or >= 0 with ``zero_ok``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 0 if zero_ok else value > 0) or math.isinf(value):
        wanted = "0 or more" if zero_ok else "a positive number"
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
    return value


def _rate(text: str) -> float:
    return _number(text, zero_ok=True)


def _seconds(text: str) -> float:
    return _number(text, zero_ok=False)


# A key pasted where an argument was expected is not echoed in the error.
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, as the ``mmws`` command writes them: ``mmws: error: ...``
    then a hint, the likely option for a misspelt one or where help is; status 2."""

    def error(self, message: str, hint: str = "") -> NoReturn:
        hint = hint or f"see '{self.prog} --help'"
        self.exit(2, f"mmws: error: {_UUID_RE.sub('***', message)} ({hint})\n")



def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parse_args``, and for a misspelt option the likely one (as ``mmws`` does)."""
    parsed, extra = parser.parse_known_args(argv)
    if extra:
        options = [name for action in parser._actions for name in action.option_strings]
        spelt = [arg.split("=", 1)[0] for arg in extra if arg.startswith("--")]
        close = [m for arg in spelt for m in difflib.get_close_matches(arg, options, 1)]
        message = f"unrecognized arguments: {' '.join(extra)}"
        if close and isinstance(parser, _Parser):
            parser.error(message, f"did you mean {close[0]!r}?")
        parser.error(message)
    return parsed


def build_parser(prog: str = "python -m mmws.sim") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description=textwrap.fill(
            "Run the mmws MM + feed WebSocket simulator until Ctrl-C. It prints the URLs to "
            "connect to and the API key to use (a local demo key), and stops cleanly on "
            "Ctrl-C or SIGTERM.",
            width=78,
        ),
        epilog=f"example:\n  {prog} --port 0 --rate 50 --seed 7",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="the interface to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=8765, help="the port; 0 picks a free one (default: 8765)"
    )
    parser.add_argument(
        "--rate", type=_rate, default=20.0, metavar="N",
        help="events per second; 0 sends none (default: 20)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N",
        help="scenario seed: same seed, same events (default: 0)",
    )  # fmt: skip
    parser.add_argument(
        "--api-key", action="append", dest="api_keys", metavar="UUID",
        help="an MM API key to accept; repeatable (default: a generated demo key)",
    )  # fmt: skip
    parser.add_argument(
        "--heartbeat-interval", type=_seconds, default=60.0,
        metavar="S", help="seconds between heartbeats (default: 60)",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m mmws.sim") -> int:
    """Parse ``argv``, run until interrupted; the exit status. ``prog`` names the command
    in ``--help`` (``mmws sim`` reuses this function)."""
    args = _parse(build_parser(prog), argv)
    try:
        from mmws.sim.server import Simulator
    except ImportError as exc:
        print(f"mmws: error: the simulator needs the 'sim' extra (in a checkout of mmws: "
              f"python -m pip install '.[sim]') ({exc})", file=sys.stderr)  # fmt: skip
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
            print(f"mmws: error: cannot start the simulator: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # anything unforeseen: one line, not a traceback
            print(f"mmws: error: cannot start the simulator: {type(exc).__name__}: {exc}",
                  file=sys.stderr)  # fmt: skip
            return 1
        with sim:
            print(f"MM WebSocket:   {sim.mm_url}")
            if args.api_keys:  # the caller's own keys: not echoed, only told apart
                given = ", ".join(Secret(key).hint for key in args.api_keys)
                print(f"MM API key:     as given with --api-key ({given})")
            else:
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
