"""A client is a handle (what the user holds, documented) over an engine (what the threads
run). The handle forwards its arguments to the engine by name: the two signatures must
stay the same, or an option would be refused, or quietly take another default."""

from __future__ import annotations

import inspect

import pytest

import mmws
from mmws.feed._engine import FeedEngine
from mmws.mm._engine import MMEngine


@pytest.mark.parametrize(
    ("handle", "engine"), [(mmws.MMClient, MMEngine), (mmws.FeedClient, FeedEngine)]
)
def test_the_handle_and_its_engine_take_the_same_arguments(handle: type, engine: type) -> None:
    public = inspect.signature(handle.__init__).parameters
    inner = inspect.signature(engine.__init__).parameters
    assert list(public) == list(inner)
    for name, parameter in public.items():
        assert (parameter.kind, parameter.default) == (inner[name].kind, inner[name].default), name


def test_a_bad_option_is_refused_by_the_handle_with_its_name() -> None:
    with pytest.raises(mmws.ConfigError, match="lines must be an integer from 1 to 5"):
        mmws.MMClient("00000000-0000-0000-0000-000000000000", lines=9)
    with pytest.raises(mmws.ConfigError, match="scope_style"):
        mmws.FeedClient(url="ws://127.0.0.1:1/?token=t", scope_style="odd")  # type: ignore[arg-type]
