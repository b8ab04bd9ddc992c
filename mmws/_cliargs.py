"""The arguments of the ``mmws`` command (:mod:`mmws.cli`): the parser of every command,
the checks of option values, and usage errors as one line with a hint (the likely
spelling of a misspelt command or option, else the ``--help`` to read)."""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import textwrap
from collections.abc import Sequence
from typing import NoReturn

from mmws._secret import redact
from mmws._version import __version__
from mmws.mm._engine import DEFAULT_URL
from mmws.mm.protocol import CHANNELS

__all__ = ["KEY_ENV", "Parser", "UsageError", "build_parser", "check_command",
           "check_unrecognized"]  # fmt: skip

KEY_ENV = "MMWS_API_KEY"


class UsageError(Exception):
    """A usage error: ``main`` prints ``mmws: error: <message>`` and exits 2."""


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (``mmws: error: ... (see 'mmws listen --help')``), not
    usage plus error."""

    commands: dict[str, Parser]  # the top-level parser's subcommands

    def error(self, message: str) -> NoReturn:
        self.fail(message)

    def fail(self, message: str, hint: str = "") -> NoReturn:
        """``message``, then ``hint`` (a suggestion) or where help is, in parentheses."""
        # argparse quotes unrecognised arguments: a key pasted by mistake must not echo.
        message = UUID_RE.sub("***", redact(message, os.environ.get(KEY_ENV, "")))
        hint = hint or f"see '{self.prog} --help'"
        raise UsageError(f"{message} ({hint})")


UUID_RE = re.compile(r"[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}")


def suggest(word: str, choices: Sequence[str]) -> str:
    """``did you mean 'demo'?`` for ``demoo``; empty when nothing is close."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def check_command(parser: Parser, argv: Sequence[str]) -> None:
    """An unknown command as a usage error that suggests the likely one. The top level has
    no option that takes a value, so the first argument not starting with '-' is the command."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    names = [*parser.commands]
    if command is not None and command not in names:
        hint = suggest(command, names)
        choose = "" if hint else f"; choose from {', '.join(names)}"
        parser.fail(f"unknown command {command!r}{choose}", hint)


def check_unrecognized(parser: Parser, extra: Sequence[str]) -> None:
    """What the command's parser did not recognise, reported by that parser (so the help
    hint names the command), with the likely option for a misspelt one."""
    options = [name for action in parser._actions for name in action.option_strings]
    spelt = [arg.split("=", 1)[0] for arg in extra if arg.startswith("--")]
    hint = next(filter(None, (suggest(arg, options) for arg in spelt)), "")
    parser.fail(f"unrecognized arguments: {' '.join(extra)}", hint)


def channels(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    bad = [name for name in names if name not in CHANNELS]
    if bad or not names:
        problem = f"unknown channel {bad[0]!r}" if bad else "no channel given"
        raise argparse.ArgumentTypeError(f"{problem}; choose from {','.join(CHANNELS)}")
    return names


def number(text: str, *, zero_ok: bool, wanted: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 0 if zero_ok else value > 0) or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
    return value


def positive(text: str) -> float:
    return number(text, zero_ok=False, wanted="a positive number")


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def rate(text: str) -> float:
    return number(text, zero_ok=True, wanted="0 or more events per second")


DESCRIPTION = """\
mmws: the 55-tech MM WebSocket (and the Soccer Football Info feed) from a terminal.

One line per event. The API key is read from the MMWS_API_KEY environment variable and
never printed."""

EPILOG = """\
examples:
  mmws demo --duration 5                     the bundled simulator, no key needed
  export MMWS_API_KEY=...                    your key (a UUID)
  mmws listen --channels orders,bets         the live stream, one line per event
  mmws listen --jsonl | jq .                 JSON lines for scripts
  mmws record today.jsonl.gz --duration 3600
  mmws replay today.jsonl.gz --speed 10

'mmws COMMAND --help' describes each command."""


def wrap(text: str) -> str:
    """A description paragraph filled to the width argparse uses for options."""
    return textwrap.fill(text, width=78)


def build_parser() -> Parser:
    """The ``mmws`` parser: ``args.command`` names the command to run."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = Parser(prog="mmws", description=DESCRIPTION, epilog=EPILOG, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"mmws {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    verbose = Parser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", help="also log what the client does to stderr"
    )
    output = Parser(add_help=False, parents=[verbose])
    output.add_argument(
        "--jsonl", action="store_true", help="print JSON lines instead of readable lines"
    )
    live_or_simulated = Parser(add_help=False)  # a server, else the bundled simulator
    live_or_simulated.add_argument(
        "--url", help="the server's WebSocket URL (default: an in-process simulator)"
    )
    running = Parser(add_help=False)
    running.add_argument(
        "--duration",
        type=positive,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C)",
    )
    simulated = Parser(add_help=False)
    simulated.add_argument(
        "--rate",
        type=rate,
        default=20.0,
        metavar="N",
        help="simulator events per second (default: 20)",
    )
    simulated.add_argument(
        "--seed", type=int, default=0, help="simulator seed: same seed, same events (default: 0)"
    )
    server = Parser(add_help=False)
    server.add_argument(
        "--channels",
        type=channels,
        default=CHANNELS,
        metavar="LIST",
        help=f"comma-separated channels (default: {','.join(CHANNELS)})",
    )
    server.add_argument(
        "--api-key",
        metavar="KEY",
        help="the API key; visible in process lists, so prefer the variable "
        f"(default: the {KEY_ENV} environment variable)",
    )

    demo = commands.add_parser(
        "demo",
        parents=[output, running, simulated],
        formatter_class=fmt,
        help="watch a simulated session: no key, no network",
        description=wrap(
            "Start the bundled simulator in this process, connect an MMClient to it and "
            "print one line per event, then a summary (events per channel, reconnects, "
            "arrival-to-print latency). Runs until Ctrl-C or --duration."
        ),
        epilog="examples:\n  mmws demo --duration 5 --feed\n  mmws demo --duration 5 --state",
    )
    demo.add_argument(
        "--feed", action="store_true", help="also connect a FeedClient to the simulated feed"
    )
    demo.add_argument(
        "--state",
        action="store_true",
        help="keep the state (MMClient(state=True)) and show open orders and balances at "
        "the end",
    )

    commands.add_parser(
        "sim",
        add_help=False,
        help="run the simulator server (as python -m mmws.sim; see 'mmws sim --help')",
    )

    listen = commands.add_parser(
        "listen",
        parents=[output, running, server],
        formatter_class=fmt,
        help="print a live MM stream",
        description=wrap(
            f"Connect to an MM WebSocket server and print one line per event (or JSON "
            f"lines with --jsonl). The key comes from {KEY_ENV}. Reconnects by itself; "
            "events broadcast while disconnected are lost (MM has no replay)."
        ),
        epilog=f"example:\n  {KEY_ENV}=... mmws listen --channels orders,bets --jsonl",
    )
    listen.add_argument(
        "--url", default=DEFAULT_URL, help=f"the server's WebSocket URL (default: {DEFAULT_URL})"
    )

    record = commands.add_parser(
        "record",
        parents=[output, running, server, simulated, live_or_simulated],
        formatter_class=fmt,
        help="print a stream and record it to FILE",
        description=wrap(
            "Like listen, and write every frame the server sends to FILE (JSON lines; gzip "
            "when FILE ends in .gz) for 'mmws replay'. Without --url the bundled simulator "
            "is started in-process and recorded. The API key is never written. FILE is "
            "checked before anything starts; an existing FILE is replaced."
        ),
        epilog="examples:\n  mmws record demo.jsonl --duration 10\n"
        f"  {KEY_ENV}=... mmws record live.jsonl.gz --url {DEFAULT_URL}",
    )
    record.add_argument("file", metavar="FILE", help="where to write the recording")

    replay_cmd = commands.add_parser(
        "replay",
        parents=[output],
        formatter_class=fmt,
        help="print a recording made by 'mmws record'",
        description=wrap(
            "Decode a recording with the same code as a live client and print the same "
            "lines. As fast as possible unless --speed is given."
        ),
        epilog="example:\n  mmws replay demo.jsonl --speed 1",
    )
    replay_cmd.add_argument("file", metavar="FILE", help="a recording from 'mmws record'")
    replay_cmd.add_argument(
        "--speed",
        type=positive,
        metavar="X",
        help="keep the recorded pacing, X times faster (default: no waiting)",
    )

    relay = commands.add_parser(
        "relay",
        parents=[running, server, simulated, live_or_simulated, verbose],
        formatter_class=fmt,
        help="publish an MM stream into a Redis stream for other processes",
        description=wrap(
            "Connect to an MM WebSocket server and publish every event (lifecycle events "
            "included) into a Redis stream, where mmws.RedisSource reads it on any host. "
            "Without --url the bundled simulator is started in-process and relayed. Needs "
            "the 'redis' extra. A status line every 5 seconds; Ctrl-C stops it."
        ),
        epilog="examples:\n  mmws relay --duration 10\n"
        f"  {KEY_ENV}=... mmws relay --url {DEFAULT_URL} --state --lines 2",
    )
    relay.add_argument(
        "--redis", default="redis://127.0.0.1:6379/0", metavar="URL",
        help="the Redis server (default: redis://127.0.0.1:6379/0)",
    )  # fmt: skip
    relay.add_argument(
        "--stream", default="mmws:mm", metavar="NAME", help="the stream (default: mmws:mm)"
    )
    relay.add_argument(
        "--maxlen", type=count, default=1_000_000, metavar="N",
        help="keep about N entries (default: 1000000)",
    )  # fmt: skip
    relay.add_argument(
        "--state", action="store_true",
        help="keep the state and publish snapshots for late joiners (RedisSource(state=True))",
    )  # fmt: skip
    relay.add_argument(
        "--lines", type=count, default=1, metavar="N",
        help="hot standby: N connections merged into one stream (default: 1)",
    )  # fmt: skip

    watch_cmd = commands.add_parser(
        "watch",
        parents=[running, server, simulated, live_or_simulated, verbose],
        formatter_class=fmt,
        help="a live view of open orders, balances, scores and the connection",
        description=wrap(
            "Keep the state of an MM stream and show it live: the connection's health, the "
            "emergency switch, open orders, balances and scores. Full screen on a terminal "
            "(the 'watch' extra, rich); a plain summary every few seconds in a pipe. Without "
            "--url the bundled simulator is started in-process. Ctrl-C ends it."
        ),
        epilog=f"examples:\n  mmws watch --rate 50\n  {KEY_ENV}=... mmws watch --url {DEFAULT_URL}",
    )
    watch_cmd.add_argument(
        "--every", type=positive, default=5.0, metavar="S",
        help="without a terminal: seconds between summaries (default: 5)",
    )  # fmt: skip
    parser.commands = dict(commands.choices)
    return parser
