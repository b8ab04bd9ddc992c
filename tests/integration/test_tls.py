"""wss:// against the simulator with a locally issued certificate (trustme).

Verification is on by default: the right CA is accepted, the system CAs alone refuse the
local certificate, and turning verification off takes an explicit argument and logs a warning.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator

import pytest
import trustme
from clientutil import KEY, collect_until, of_type

import mmws
from mmws.sim import Simulator


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_sim(ca: trustme.CA) -> Iterator[Simulator]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    with Simulator(api_keys={KEY: "a"}, rate=0, ssl_context=server_ctx) as sim:
        yield sim


def test_verified_with_the_right_ca(tls_sim: Simulator, ca: trustme.CA) -> None:
    assert tls_sim.mm_url.startswith("wss://")
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with mmws.MMClient(KEY, url=tls_sim.mm_url, ssl_context=client_ctx) as client:
        tls_sim.publish("orders", "INSERT", {"orderId": 1})
        event = collect_until(client, of_type(mmws.OrderEvent))[-1]
        assert event.payload.order_id == 1


def test_verified_with_a_ca_file(tls_sim: Simulator, ca: trustme.CA) -> None:
    with ca.cert_pem.tempfile() as ca_file, \
            mmws.MMClient(KEY, url=tls_sim.mm_url, ca_file=ca_file) as client:
        assert collect_until(client, of_type(mmws.Subscribed))


def test_refused_without_the_ca(tls_sim: Simulator) -> None:
    with pytest.raises(mmws.ConnectError, match="certificate verification failed"):
        mmws.MMClient(KEY, url=tls_sim.mm_url, connect_timeout=5).connect()


def test_disabling_verification_is_explicit_and_loud(
    tls_sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with mmws.MMClient(KEY, url=tls_sim.mm_url, verify_tls=False) as client:
        assert collect_until(client, of_type(mmws.Subscribed))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("verify_tls=False" in w for w in warnings)
    assert any("DISABLED" in w for w in warnings)
