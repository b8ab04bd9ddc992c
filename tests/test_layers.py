"""Imports run downward only: every module imports only modules of a lower layer (or, for
a package's ``__init__``, what it re-exports). Imports under ``if TYPE_CHECKING`` are
annotations, not dependencies, and are not counted.

The layers, lowest first (docs/design.md draws the same picture)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "mmws"

LAYERS: list[set[str]] = [
    {"errors", "_version", "_secret", "_display", "sim.faults", "sim.scenario", "sim.snapshots",
     "sim._timer", "testing", "_pmap", "mm._arbiter"},
    {"_frozen", "_keepalive", "_backoff", "_ratelimit", "lifecycle", "sim.actions", "_relaybuffer",
     "sim._logfilter", "_redisconn"},
    {"_codec", "mm.models", "feed.events", "_transport", "_recorder", "_urlsource",
     "_delivery", "feed.tokens"},
    {"mm.events", "_options", "_session", "mm._restwire"},
    {"mm.protocol", "feed.protocol", "_commands", "mm.state"},
    {"_client", "_handle", "record", "format", "sim.mm", "sim._config", "mm.rest", "_relaywire"},
    {"mm._resync", "mm._lines"},
    {"mm._engine", "feed._engine", "sim.feed"},
    {"mm.client", "feed.client"},
    {"_relay", "_source"},
    {"mm", "feed", "sim._conn", "sim._truth", "redis", "watch"},
    {"sim._state"},
    {"sim._http", "sim._hub", "sim._rest", "sim._mmdata", "sim._linefaults"},
    {"sim.server"},
    {"sim", "sim.__main__"},
    {"_cliargs"},
    {"", "cli"},
    {"__main__"},
]


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    if isinstance(test, ast.UnaryOp):
        test = test.operand
    return isinstance(node, ast.If) and isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if _type_checking(node):
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mmws"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mmws"):
            module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if (ROOT.parent / (candidate.replace(".", "/") + ".py")).exists():
                    found.add(candidate)  # "from mmws.mm import client": the submodule
                else:
                    found.add(module)
    return {name.removeprefix("mmws").removeprefix(".") for name in found}


def _layer(name: str) -> int:
    for index, layer in enumerate(LAYERS):
        if name in layer:
            return index
    raise AssertionError(f"module mmws.{name} is in no layer: add it to LAYERS")


MODULES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p) or "mmws")
def test_every_import_goes_down(path: Path) -> None:
    name = _name(path)
    mine = _layer(name)
    upward = sorted(dep for dep in _imports(path) if dep != name and _layer(dep) >= mine)
    assert upward == [], f"mmws.{name} (layer {mine}) imports upward or sideways: {upward}"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule can fail: a core importing a client is caught."""
    fake = ROOT / "mm" / "protocol.py"
    source = fake.read_text(encoding="utf-8") + "\nfrom mmws.mm.client import MMClient\n"
    copy = tmp_path / "protocol.py"
    copy.write_text(source, encoding="utf-8")
    assert "mm.client" in _imports(copy)
    assert _layer("mm.client") >= _layer("mm.protocol")
