"""Sphinx configuration of the recforge documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` (warnings are errors). The
pages are MyST markdown; the API reference is generated with autodoc from the installed
package, whose docstrings use the NumPy style (napoleon). Notebooks are rendered with myst-nb
but never executed while building.
"""

from __future__ import annotations

import datetime as _dt
from importlib.metadata import PackageNotFoundError, version

project = "recforge"
author = "recforge developers"
copyright = f"{_dt.date.today().year}, {author}"
try:
    release = version("recforge")
except PackageNotFoundError:  # building from a checkout without installing
    release = "0+unknown"
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",  # MyST markdown pages and notebooks (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# MyST: $...$ and $$...$$ math, ::: fences, definition lists, {attribution} etc.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "substitution"]
myst_heading_anchors = 3

# myst-nb: notebooks are committed without outputs and are never run by the docs build.
nb_execution_mode = "off"

# autodoc / napoleon
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_preprocess_types = False

# Type hints name NumPy, SciPy and pandas classes whose docs are not cross-linked here
# (no network access at build time for intersphinx), so unresolved references are not errors.
nitpicky = False

html_theme = "furo"
html_title = f"recforge {release}"
html_static_path: list[str] = []
html_theme_options = {"navigation_with_keys": True}
