"""Sphinx configuration: the jupyter_par documentation site.

Built in CI with warnings as errors (``bash scripts/docs.sh``). Two pages are generated
here at build time so they cannot drift from the code: the magic's flags (from the
``%%parallel`` argument parser) and the demo notebooks (copied from ``demo_notebooks/``
and executed by myst-nb, so the site shows their real outputs).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS))

from _magic_flags import write_magic_reference  # noqa: E402

import jupyter_par  # noqa: E402

project = "jupyter_par"
author = "jupyter_par contributors"
copyright = "jupyter_par contributors"
release = version = jupyter_par.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]
html_theme = "furo" if __import__("importlib").util.find_spec("furo") else "alabaster"
html_title = f"jupyter_par {release}"
html_static_path: list[str] = []
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": False}
napoleon_numpy_docstring = True
napoleon_google_docstring = False
# No intersphinx: the build must not need the network.

# The demo notebooks, executed at build time (they take about a minute together).
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_output_stderr = "show"
# Progress views are shown in their text form: widget state is not saved by the build's
# execution, and the lab extension's own MIME type is for JupyterLab only.
# (Sphinx's myst-nb renders every type of a bundle before choosing one, and warns for the
# extension's own type, which no page can draw: that one warning kind is silenced.)
suppress_warnings = ["mystnb.unknown_mime_type"]
nb_mime_priority_overrides = [
    ("*", "application/vnd.jupyter.widget-view+json", None),
    ("*", "application/vnd.jupyter-par.progress+json", None),
]

NOTEBOOKS = ["01_api", "02_magic", "03_progress_and_panel", "04_dask",
             "05_files_and_tasks"]


def _copy_notebooks() -> None:
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    for name in NOTEBOOKS:
        shutil.copyfile(ROOT / "demo_notebooks" / f"{name}.ipynb", target / f"{name}.ipynb")


_copy_notebooks()
write_magic_reference(DOCS / "reference" / "magic-flags.md")
