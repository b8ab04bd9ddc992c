"""The typed stream, as a user's type checker sees it: ``mypy --strict`` on a user script.

``reveal_type(client.get())`` is the union of the events the client can deliver, narrowing
with ``isinstance`` reaches the payload's fields, and a misspelt attribute or constructor
keyword is a type error (and a ``TypeError`` naming the class at run time).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mmws

KEY = "6f1c1c4e-2f62-4a3e-9d7a-0b3f2a1e9c11"

GOOD = textwrap.dedent('''
    import mmws

    client = mmws.MMClient("k", channels=["orders"], ping_interval=3, io_timeout=5.0)
    event = client.get(timeout=1)
    reveal_type(event)
    if isinstance(event, mmws.OrderEvent):
        reveal_type(event.payload)
        stake: float | None = event.payload.matched_stake
        status: mmws.OrderStatus | str | None = event.payload.order_status
    for item in client:
        if isinstance(item, mmws.Closed):
            break
    feed = mmws.FeedClient(url="wss://x/?token=t")
    reveal_type(feed.get_nowait())

    def on_event(e: mmws.MMStreamEvent) -> None:
        pass

    mmws.MMClient("k", on_event=on_event)

    stateful = mmws.MMClient("k", state=True, audit_interval=None)
    snap = stateful.state.snapshot()
    reveal_type(snap.orders[1])
    balance: float | None = snap.accounts[("kalshi", "0x1")].balance
    if isinstance(event, mmws.GapDetected):
        field: str | None = event.field
''')

BAD = textwrap.dedent('''
    import mmws

    client = mmws.MMClient("k", ping_intervall=3)
    event = client.get()
    if isinstance(event, mmws.OrderEvent):
        print(event.payload.matched_stak)
    print(event.payload)
''')


def _mypy(tmp_path: Path, code: str) -> str:
    script = tmp_path / "user_script.py"
    script.write_text(code, encoding="utf-8")
    # mypy cannot follow an editable install's import hook: point it at the package
    env = {**os.environ, "MYPYPATH": str(Path(mmws.__file__).resolve().parent.parent)}
    result = subprocess.run(
        # --follow-imports=silent: mmws is checked as an installed package would be (its
        # own findings, which depend on the versions installed, are not the user's)
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--follow-imports=silent", "--cache-dir", str(tmp_path / ".mypy_cache"), str(script)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    tmp = tmp_path_factory.mktemp("typing")
    (tmp / "good").mkdir()
    (tmp / "bad").mkdir()
    return _mypy(tmp / "good", GOOD), _mypy(tmp / "bad", BAD)


def test_get_is_the_union_and_narrowing_reaches_the_model(reports: tuple[str, str]) -> None:
    good, _ = reports
    revealed = [line for line in good.splitlines() if "Revealed type" in line]
    assert len(revealed) == 4, good
    assert "mmws.mm.events.OrderEvent" in revealed[0] and "mmws.lifecycle.Closed" in revealed[0]
    assert "Any" not in revealed[0]
    assert "mmws.mm.models.Order" in revealed[1]
    assert "mmws.feed.events.FeedEvent" in revealed[2]
    assert "mmws.mm.events.OrderEvent" not in revealed[2]  # the feed's own union
    assert "mmws.mm.models.Order" in revealed[3]  # the state holds the same models
    assert "mmws.mm.events.GapDetected" in revealed[0]
    errors = [line for line in good.splitlines()
              if line.startswith("user_script.py") and ": error:" in line]
    assert errors == [], good


def test_misspellings_are_type_errors(reports: tuple[str, str]) -> None:
    _, bad = reports
    assert 'Unexpected keyword argument "ping_intervall" for "MMClient"' in bad, bad
    assert '"Order" has no attribute "matched_stak"' in bad, bad
    assert "has no attribute \"payload\"" in bad, bad  # not narrowed: not every event has one


def test_a_misspelt_keyword_is_a_type_error_naming_the_class_at_run_time() -> None:
    with pytest.raises(TypeError, match=r"MMClient.*ping_intervall"):
        mmws.MMClient(KEY, ping_intervall=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"FeedClient.*proxy_hots"):
        mmws.FeedClient(url="ws://x/?token=t", proxy_hots="h")  # type: ignore[call-arg]


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        raise mmws.ProtocolError("no")
    assert isinstance(mmws.RemoteProtocolError("x"), mmws.ProtocolError)
    assert isinstance(mmws.LocalProtocolError("x"), mmws.ProtocolError)
