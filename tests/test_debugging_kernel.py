"""README: ``--jobs 1`` (or ``--backend inline``) runs in the kernel, so ``breakpoint()`` and
``%debug`` work. Checked in a real kernel, driven message by message with stdin answered
as a notebook user would type at the debugger's prompt.
"""

from __future__ import annotations

import pytest
from kernel_driver import Kernel

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]

SETUP = """
%load_ext jupyter_par
import pdb, sys
import pandas as pd
# ipykernel points breakpoint() at debugpy, which stops only with JupyterLab's visual
# debugger attached; a kernel without it (and this test) uses pdb, as a plain cell would.
sys.breakpointhook = pdb.set_trace
df = pd.DataFrame({"a": [1, 2, 3, 4]})

def stop_at_three(row):
    if row["a"] == 3:
        breakpoint()
    return row["a"] * 10

def fails_at_three(row):
    marker = f"row-{row['a']}"
    if row["a"] == 3:
        raise ValueError("three")
    return row["a"]
"""



@pytest.fixture
def kernel():
    k = Kernel()
    try:
        reply, printed, _ = k.answered(SETUP)
        assert reply["status"] == "ok", printed
        yield k
    finally:
        k.close()


@pytest.mark.parametrize("flags", ["--jobs 1", "--backend inline"])
def test_breakpoint_stops_in_the_users_function(kernel, flags):
    reply, printed, prompts = kernel.answered(
        f"%%parallel {flags} --no-progress --out out df\ndf.apply(stop_at_three, axis=1)",
        answers=["p ('seen', int(row['a']))", "c"])
    assert reply["status"] == "ok", printed
    assert prompts and prompts[0].strip() in ("(Pdb)", "ipdb>"), prompts
    assert "('seen', 3)" in printed  # the debugger stood in the function, at row 3
    reply, printed, _ = kernel.answered("print(out.tolist())")
    assert "[10, 20, 30, 40]" in printed


def test_debug_after_a_failure_opens_the_users_frame(kernel):
    reply, printed, _ = kernel.answered(
        "%%parallel --jobs 1 --no-progress --out out df\ndf.apply(fails_at_three, axis=1)")
    assert "ValueError: three" in printed, printed
    reply, printed, prompts = kernel.answered("%debug", answers=["p ('marker', marker)", "q"])
    assert reply["status"] == "ok", printed
    assert prompts, "the post-mortem debugger never asked for input"
    assert "('marker', 'row-3')" in printed, printed  # the failing row's own frame
