"""Run code in a real IPython kernel through nbclient, as a notebook user would.

Tests that need the real ``__main__`` of a notebook, the magic, kernel interrupts
or widget state use these helpers; each starts its own kernel and shuts it down.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent


def make_notebook(cells: list[str]) -> nbformat.NotebookNode:
    """A notebook with one code cell per string."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python",
    }
    return nb


def kernel_env() -> dict[str, str]:
    """Environment for the kernel: this interpreter's venv first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def run_cells(cells: list[str], *, timeout: int = 120, allow_errors: bool = False,
              store_widget_state: bool = True, cwd: str | None = None,
              ) -> nbformat.NotebookNode:
    """Execute ``cells`` in a fresh kernel; return the executed notebook.

    Raises ``CellExecutionError`` on the first failing cell unless ``allow_errors``.
    """
    nb = make_notebook(cells)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
        store_widget_state=store_widget_state, resources={"metadata": {"path": cwd or str(REPO)}},
    )
    client.execute(env=kernel_env())
    return nb


def run_notebook(path: str | Path, *, timeout: int = 600) -> nbformat.NotebookNode:
    """Execute a notebook file end to end, in its own directory."""
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute(
                       env=kernel_env())
    return nb


def outputs_text(cell: Any) -> str:
    """All text a cell printed or returned (stream, results, errors)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}\n" + "\n".join(out.traceback))
    return "".join(parts)


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """All text the notebook's code cells printed or returned, cell after cell."""
    return "\n".join(outputs_text(c) for c in nb.cells if c.cell_type == "code")


__all__ = ["CellExecutionError", "make_notebook", "notebook_text", "outputs_text", "run_cells",
           "run_notebook"]
