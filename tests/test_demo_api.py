"""The Python API demo notebook runs end to end in a real kernel (README's main command)."""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_runner import notebook_text, run_notebook

DEMO = Path(__file__).resolve().parent.parent / "demo_notebooks" / "01_api.ipynb"


@pytest.mark.kernel
def test_api_demo_notebook_runs_end_to_end():
    nb = run_notebook(DEMO, timeout=300)
    text = notebook_text(nb)
    assert "same result: True" in text
    assert "caught: suspicious order" in text and "partition" in text
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
