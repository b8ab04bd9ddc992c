"""Every ```` ```python ```` block of the docs and of README.md runs here, page by page.

The blocks of one page share a namespace and run top to bottom, as a reader pasting them
would; each page starts the simulator it needs in its own code, so the examples run as
written. A block whose previous non-blank line is ``<!-- docs-test: skip -->`` is not run
(it needs the production server); such blocks are counted and must stay rare.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import pytest

import mmws
from mmws._handle import ClientHandle
from mmws.sim import Simulator

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [*sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts), ROOT / "README.md"]
SKIP = "<!-- docs-test: skip -->"
OPEN = re.compile(r"^(`{3,})python\s*$")


@attrs.frozen
class Block:
    path: Path
    line: int  # of the first code line, 1-based
    code: str
    skipped: bool


def blocks(path: Path) -> list[Block]:
    """The ```` ```python ```` blocks of a page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    previous = ""
    index = 0
    while index < len(lines):
        opened = OPEN.match(lines[index])
        if opened is None:
            if lines[index].strip():
                previous = lines[index].strip()
            index += 1
            continue
        fence = opened.group(1)
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != fence:
            end += 1
        assert end < len(lines), f"{path}:{index + 1}: code block never closed"
        code = "\n".join(lines[index + 1 : end])
        found.append(Block(path, index + 2, code, previous == SKIP))
        previous = ""
        index = end + 1
    return found


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


CODE_PAGES = [page for page in PAGES if blocks(page)]


def close_everything(namespace: dict[str, Any]) -> None:
    """Close what a failed page left open, so one failure does not leak threads or a
    redis-server."""
    from mmws.redis import RedisRelay, RedisSource
    from mmws.testing import RedisServer

    values = list(namespace.values())
    for kind in (RedisRelay, RedisSource):
        for value in values:
            if isinstance(value, kind):
                value.close()
    for value in values:
        if isinstance(value, ClientHandle):
            value.close()
    for value in values:
        if isinstance(value, RedisServer):
            value.close()
    for value in values:
        if isinstance(value, Simulator):
            value.close()


@pytest.mark.parametrize("page", CODE_PAGES, ids=name)
def test_the_code_on_the_page_runs(page: Path) -> None:
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    try:
        for block in blocks(page):
            if not block.skipped:
                exec(compile(block.code, f"{page}:{block.line}", "exec"), namespace)
    finally:
        close_everything(namespace)


def test_the_pages_hold_code_and_skips_are_rare() -> None:
    every = [block for page in PAGES for block in blocks(page)]
    skipped = [f"{name(b.path)}:{b.line}" for b in every if b.skipped]
    assert len(every) >= 40
    assert len(skipped) <= 3, skipped
    for page in ("quickstart.md", "guides/queue.md", "guides/feed.md", "guides/testing.md"):
        assert DOCS / page in CODE_PAGES


def test_no_python_block_hides_under_another_spelling() -> None:
    # ```py, ```python3 or a {code-block} would not run here; the pages use ```python only.
    other = re.compile(r"^`{3,}\s*(py|python3|pycon|\{code-block\}\s*python|\{code\}\s*python)\b")
    offenders = [
        f"{name(page)}:{number}"
        for page in PAGES
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if other.match(line)
    ]
    assert offenders == []


def test_the_reference_documents_every_public_name() -> None:
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. auto\w+:: (\w+)\s*$", text, re.M))
    assert documented >= set(mmws.__all__), sorted(set(mmws.__all__) - documented)


def test_the_readme_gives_the_two_commands_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'python -m pip install ".[sim]" && mmws demo --duration 5' in readme
    # CI runs the README's test command: the line after its "README command" banner.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    banner = next(n for n, line in enumerate(ci) if "(the README command)" in line)
    command = ci[banner + 1].strip()
    assert command.startswith("python -m pip install -e \".[test]\" && ")
    assert f"\n{command}\n" in readme
