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
