"""``%parallel_panel`` in a real kernel (README): it opens the panel as a widget, lists the
notebook's own DataFrames and functions, and a run from it goes through the workers and
stores its result in the notebook."""

from __future__ import annotations

import pytest
from notebook_runner import outputs_text, run_cells

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]

CELLS = [
    """
%load_ext jupyter_par
import os
import pandas as pd
import jupyter_par as jp
orders = pd.DataFrame({"a": range(40)})
def pid_and_double(row):
    return (os.getpid(), row["a"] * 2)
""",
    "panel = %parallel_panel\npanel",
    """
assert "orders" in panel.frame_picker.options, panel.frame_picker.options
assert "pid_and_double" in panel.func_picker.options, panel.func_picker.options
panel.frame_picker.value, panel.func_picker.value = "orders", "pid_and_double"
panel.jobs_slider.value = 2
panel.backend_picker.value = "processes"
panel.result_name.value = "from_panel"
panel.run()
panel.wait(120)
pids = {pid for pid, _ in from_panel}
assert [v for _, v in from_panel] == [a * 2 for a in orders["a"]]
assert os.getpid() not in pids and len(pids) == 2, pids
print("PANEL OK", jp.last_run().ran)
""",
]


def test_the_panel_magic_opens_the_panel_and_runs_in_the_workers():
    nb = run_cells(CELLS, timeout=150)
    shown = [o for o in nb.cells[1].outputs if o.output_type in ("execute_result", "display_data")]
    assert shown and "application/vnd.jupyter.widget-view+json" in shown[0]["data"], shown
    assert "PANEL OK workers" in outputs_text(nb.cells[2]), outputs_text(nb.cells[2])
