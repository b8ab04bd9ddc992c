"""Notebook conditions: importing mmws pulls in no asyncio, and a client works from inside a
running event loop (as in a Jupyter cell), connected and closed many times in one process."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_import_mmws_does_not_import_asyncio() -> None:
    code = "import sys, mmws; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_a_client_works_inside_a_running_event_loop() -> None:
    code = textwrap.dedent(
        """
        import asyncio, threading
        import mmws
        from mmws.sim import Simulator

        async def cell():
            # a notebook cell runs while the kernel's loop is running
            with Simulator(rate=0) as sim:
                for i in range(5):
                    with mmws.MMClient(sim.api_key, url=sim.mm_url) as client:
                        sim.publish("orders", "INSERT", {"orderId": i})
                        while True:
                            event = client.get(timeout=5)
                            if isinstance(event, mmws.OrderEvent):
                                assert event.payload.order_id == i
                                break
            return threading.active_count()

        print(asyncio.run(cell()))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"  # every thread, the simulator's included, has ended


def test_a_cell_run_again_warns_once_and_the_limit_error_counts_this_process() -> None:
    """A notebook cell that makes a client, run again: the first client still runs."""
    import warnings

    import pytest

    import mmws
    from mmws.mm import client as client_module
    from mmws.sim import Simulator

    client_module._WARNED.clear()
    with Simulator(rate=0, max_connections_per_key=2) as sim:
        first = mmws.MMClient(sim.api_key, url=sim.mm_url).connect()  # the first run
        assert mmws.MMClient.open_clients() == [first]
        with pytest.warns(mmws.DuplicateClientWarning) as caught:
            second = mmws.MMClient(sim.api_key, url=sim.mm_url)  # the cell, run again
        text = str(caught[0].message)
        assert "1 other MMClient(s) for this key and URL are still open" in text
        assert "mmws.MMClient.open_clients()" in text and sim.api_key not in text
        assert caught[0].filename == __file__  # it points at the user's line
        second.connect()
        with warnings.catch_warnings(record=True) as later:
            warnings.simplefilter("always")
            third = mmws.MMClient(sim.api_key, url=sim.mm_url)  # warned once already
            other_url = mmws.MMClient(sim.api_key, url=sim.mm_url + "?x=1")  # not the same
        assert [w for w in later if w.category is mmws.DuplicateClientWarning] == []
        with pytest.raises(mmws.ConnectionLimitError) as refused:
            third.connect()  # the key's limit is 2 here
        assert "this process holds 2 connection(s) for this key in 2 other open MMClient(s)" in (
            str(refused.value)
        )
        assert sim.api_key not in str(refused.value)
        assert set(mmws.MMClient.open_clients()) == {first, second}
        for client in mmws.MMClient.open_clients():
            client.close()
        assert mmws.MMClient.open_clients() == []
        third.close()
        other_url.close()
