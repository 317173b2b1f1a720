"""A real IPython kernel driven message by message, for the tests that must act while a
cell runs (interrupt it, answer the debugger's prompts, read what a failed run printed).

nbclient (``notebook_runner``) runs whole notebooks; these tests need the kernel between
messages, so they share this one driver instead of each carrying its own.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence

from jupyter_client.manager import KernelManager
from notebook_runner import REPO, kernel_env


class Kernel:
    """A kernel started by the test (the repository's jupyter_par on its path); ``close()``
    shuts it down, and ``with Kernel() as kernel:`` does so on every exit."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env={**kernel_env(), **(env or {})}, cwd=str(REPO))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def run(self, code: str, timeout: float = 120) -> tuple[dict, str]:
        """Execute ``code``; return the reply's content and everything it printed (errors
        with their traceback)."""
        printed: list[str] = []

        def collect(msg: dict) -> None:
            printed.extend(_text(msg))

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=collect,
                                                stop_on_error=False)
        return reply["content"], "".join(printed)

    def ok(self, code: str, timeout: float = 120) -> str:
        """Execute ``code``, which must succeed; return what it printed."""
        reply, printed = self.run(code, timeout)
        assert reply["status"] == "ok", printed
        return printed

    def answered(self, code: str, answers: Sequence[str] = (), timeout: float = 60
                 ) -> tuple[dict, str, list[str]]:
        """Execute ``code``, answering each input request (``input()``, pdb's prompt) with
        the next of ``answers`` (then ``c``). Returns the reply, all it printed, and the
        prompts it asked with."""
        answers = list(answers)
        prompts: list[str] = []
        printed: list[str] = []
        msg_id = self.client.execute(code, allow_stdin=True, stop_on_error=False)
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
                continue
            if io["parent_header"].get("msg_id") != msg_id:
                continue
            if io["msg_type"] == "status" and io["content"]["execution_state"] == "idle":
                break
            printed.extend(_text(io))
        while (reply := self.client.get_shell_msg(timeout=timeout))[
                "parent_header"].get("msg_id") != msg_id:
            pass  # an earlier request's reply (kernel_info from wait_for_ready)
        return reply["content"], "".join(printed), prompts

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)  # lets jupyter_par stop its workers


def _text(msg: dict) -> list[str]:
    """What an iopub message shows a notebook user, as text."""
    content = msg["content"]
    kind = msg["msg_type"]
    if kind == "stream":
        return [content["text"]]
    if kind == "error":
        return [f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"])]
    if kind in ("execute_result", "display_data"):
        return [content["data"].get("text/plain", "")]
    return []
