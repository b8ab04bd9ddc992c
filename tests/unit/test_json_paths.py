"""The two JSON parsers (``orjson`` from the ``mmws[fast]`` extra, the standard library's
``json``) accept the same frames and give the same values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmws import _codec
from mmws.errors import RemoteProtocolError

fast = _codec._loads_orjson
stdlib = _codec._loads_stdlib

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = (
    st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**400])
    | st.floats()
    | st.sampled_from([1e308, 5e-324, -0.0, 0.1, 1e-7, 123456789012345678.5])
)
texts = st.text(max_size=12) | st.sampled_from(["\ud800", "\udfff x", "\x00", "é€𝄞", "\\"])
values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=25,
)


def outcome(loads: Any, text: str | bytes) -> tuple[str, str]:
    """What a parser made of ``text``: its value's repr (NaN equals itself there) or that it
    refused it, the way :func:`mmws._codec.load_object` catches refusals."""
    try:
        return "value", repr(loads(text))
    except (ValueError, RecursionError):
        return "refused", ""


def test_orjson_is_installed_for_the_tests() -> None:
    assert fast is not None


@SETTINGS
@given(value=values, ascii_only=st.booleans(), as_bytes=st.booleans())
def test_every_json_text_decodes_the_same_on_both(
    value: Any, ascii_only: bool, as_bytes: bool
) -> None:
    text: str | bytes = json.dumps(value, ensure_ascii=ascii_only)
    if as_bytes:
        text = text.encode("utf-8", "surrogatepass")
    assert outcome(fast, text) == outcome(stdlib, text)


@SETTINGS
@given(text=st.text(max_size=60) | st.from_regex(r"\A[\[\]{}\d.eE+\-\":, ntrufalsNI]{0,40}\Z"))
def test_any_text_is_accepted_or_refused_alike(text: str) -> None:
    assert outcome(fast, text) == outcome(stdlib, text)


@SETTINGS
@given(data=st.binary(max_size=60))
def test_any_bytes_are_accepted_or_refused_alike(data: bytes) -> None:
    assert outcome(fast, data) == outcome(stdlib, data)


@pytest.mark.parametrize(
    "text",
    [
        '{"orderId": 18446744073709551616}',  # 2**64: json keeps it an int
        '{"n": 123456789012345678901234567890}',
        '{"price": NaN}',
        '{"x": 1e400}',
        '{"s": "\\ud800"}',
        "[" * 2000 + "]" * 2000,
    ],
)
def test_what_orjson_would_change_or_refuse_goes_to_json(text: str) -> None:
    assert outcome(fast, text) == outcome(stdlib, text)
    assert outcome(fast, text.encode()) == outcome(stdlib, text.encode())


def test_load_object_uses_the_selected_parser_and_names_the_problem() -> None:
    assert _codec.JSON_BACKEND in ("orjson", "json")
    assert _codec.load_object(b'{"type": "pong"}') == {"type": "pong"}
    with pytest.raises(RemoteProtocolError, match="not valid JSON"):
        _codec.load_object(b'{"type": ')
    with pytest.raises(RemoteProtocolError, match="not an object"):
        _codec.load_object("[1]")


@pytest.mark.parametrize(("setting", "expected"), [("stdlib", "json"), ("", "orjson")])
def test_mmws_json_stdlib_turns_the_accelerator_off(setting: str, expected: str) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "MMWS_JSON": setting}
    done = subprocess.run(
        [sys.executable, "-c", "import mmws._codec as c; print(c.JSON_BACKEND, c._loads.__name__)"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    name = "loads_orjson" if expected == "orjson" else "_loads_stdlib"
    assert done.stdout.split() == [expected, name]
