"""How an event shows itself to a person: ``str(event)`` is one line (what the CLI prints),
IPython and Jupyter show a readable block; ``repr`` stays the exact attrs form.

The forms are written in :mod:`mmws.format`, above the events in the layering; it
registers them here when it is imported (``import mmws`` imports it), so no event module
imports it. Until then both fall back to ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Shown", "register"]

_forms: dict[str, Callable[[Any], str]] = {}


def register(one_line: Callable[[Any], str], block: Callable[[Any], str]) -> None:
    _forms["line"] = one_line
    _forms["block"] = block


class Shown:
    """Mixed into every event class (no slots of its own)."""

    __slots__ = ()

    def __str__(self) -> str:
        form = _forms.get("line")
        return form(self) if form is not None else repr(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's pretty printer: a readable block (one field per line)."""
        form = _forms.get("block")
        printer.text(repr(self) if cycle or form is None else form(self))
