"""Sphinx configuration: MyST markdown pages, the furo theme, autodoc for the reference."""

from __future__ import annotations

import sys
from pathlib import Path

# Build from a checkout even when mmws is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmws import __version__

project = "mmws"
author = "the mmws authors"
copyright = "2026, the mmws authors"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# The reference is generated from docstrings; attrs classes and their annotations stay as
# they are written, so type hints go in the description, not the signature.
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_class_signature = "separated"
nitpicky = False

html_theme = "furo"
html_title = f"mmws {release}"
pygments_style = "friendly"
