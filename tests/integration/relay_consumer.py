"""A consumer process for the relay's tests: reads a stream with RedisSource and prints one
JSON line per event (its entry id, the relay's number, redelivered, the event's type).

    python relay_consumer.py URL STREAM [--group G --consumer C --claim-idle S --ack-every N]

It runs until a line arrives on stdin (then it closes the source and exits 0). With
``--ack-every N`` a group consumer acknowledges in batches of N, so a SIGKILL leaves up to N
delivered entries (and everything read ahead) pending for the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from mmws.errors import ConfigError
from mmws.redis import RedisSource


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("stream")
    parser.add_argument("--group")
    parser.add_argument("--consumer")
    parser.add_argument("--start", default="0")
    parser.add_argument("--claim-idle", type=float, default=30.0)
    parser.add_argument("--ack-every", type=int, default=1)
    args = parser.parse_args()
    source = RedisSource(
        args.url, args.stream, group=args.group, consumer=args.consumer, start=args.start,
        claim_idle=args.claim_idle, block=0.2,
    )  # fmt: skip

    def stop_on_stdin() -> None:
        sys.stdin.readline()
        source.close()

    threading.Thread(target=stop_on_stdin, daemon=True).start()
    unacked: list[Any] = []
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for event in source:
        try:
            entry = source.entry(event)
            line = {"id": entry.id, "n": entry.number, "re": entry.redelivered}
        except ConfigError:  # a RelayLoss the reader made: no entry of its own
            line = {"id": None, "count": getattr(event, "count", None)}
        line["type"] = type(event).__name__
        out.write(json.dumps(line) + "\n")
        out.flush()
        if args.group:
            unacked.append(event)
            if len(unacked) >= args.ack_every:
                source.ack(*unacked)
                unacked.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
