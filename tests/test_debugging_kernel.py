"""README: ``--jobs 1`` (or ``--backend inline``) runs in the kernel, so ``breakpoint()`` and
``%debug`` work. Checked in a real kernel, driven message by message with stdin answered
as a notebook user would type at the debugger's prompt.
"""

from __future__ import annotations

import queue

import pytest
from jupyter_client.manager import KernelManager
from notebook_runner import REPO, kernel_env

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


class Kernel:
    """A kernel whose stdin requests are answered from a list of lines."""

    def __init__(self) -> None:
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=kernel_env(), cwd=str(REPO))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, answers: list[str] = (), timeout: float = 60
            ) -> tuple[dict, str, list[str]]:
        """Execute ``code``; answer each input request with the next of ``answers``.
        Returns the reply, all it printed, and the prompts it asked with."""
        answers = list(answers)
        prompts: list[str] = []
        printed: list[str] = []
        msg_id = self.client.execute(code, allow_stdin=True)
        while True:
            try:
                msg = self.client.get_stdin_msg(timeout=0.05)
            except queue.Empty:
                msg = None
            if msg is not None and msg["msg_type"] == "input_request":
                prompts.append(msg["content"]["prompt"])
                self.client.input(answers.pop(0) if answers else "c")
            try:
                io = self.client.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                io = None
            if io is not None and io["parent_header"].get("msg_id") == msg_id:
                content = io["content"]
                if io["msg_type"] == "stream":
                    printed.append(content["text"])
                elif io["msg_type"] == "error":
                    printed.append(f"{content['ename']}: {content['evalue']}")
                elif io["msg_type"] == "execute_result":
                    printed.append(content["data"].get("text/plain", ""))
                elif io["msg_type"] == "status" and content["execution_state"] == "idle":
                    break
        while (reply := self.client.get_shell_msg(timeout=timeout))[
                "parent_header"].get("msg_id") != msg_id:
            pass  # an earlier request's reply (kernel_info from wait_for_ready)
        return reply["content"], "".join(printed), prompts

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel():
    k = Kernel()
    try:
        reply, printed, _ = k.run(SETUP)
        assert reply["status"] == "ok", printed
        yield k
    finally:
        k.close()


@pytest.mark.parametrize("flags", ["--jobs 1", "--backend inline"])
def test_breakpoint_stops_in_the_users_function(kernel, flags):
    reply, printed, prompts = kernel.run(
        f"%%parallel {flags} --no-progress --out out df\ndf.apply(stop_at_three, axis=1)",
        answers=["p ('seen', int(row['a']))", "c"])
    assert reply["status"] == "ok", printed
    assert prompts and prompts[0].strip() in ("(Pdb)", "ipdb>"), prompts
    assert "('seen', 3)" in printed  # the debugger stood in the function, at row 3
    reply, printed, _ = kernel.run("print(out.tolist())")
    assert "[10, 20, 30, 40]" in printed


def test_debug_after_a_failure_opens_the_users_frame(kernel):
    reply, printed, _ = kernel.run(
        "%%parallel --jobs 1 --no-progress --out out df\ndf.apply(fails_at_three, axis=1)")
    assert "ValueError: three" in printed, printed
    reply, printed, prompts = kernel.run("%debug", answers=["p ('marker', marker)", "q"])
    assert reply["status"] == "ok", printed
    assert prompts, "the post-mortem debugger never asked for input"
    assert "('marker', 'row-3')" in printed, printed  # the failing row's own frame
