"""Shared by the unit tests: the decoders' property tests run on both JSON parsers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mmws import _codec


@pytest.fixture(scope="module", params=["json", "orjson"])
def json_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Decode frames with the standard library's ``json``, then with ``orjson`` (the
    ``mmws[fast]`` extra): the module's tests run once with each."""
    chosen = _codec._loads_stdlib if request.param == "json" else _codec._loads_orjson
    assert chosen is not None, "orjson is part of the test extra"
    saved = _codec._loads
    _codec._loads = chosen
    try:
        yield request.param
    finally:
        _codec._loads = saved
