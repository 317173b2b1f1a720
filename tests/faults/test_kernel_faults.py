"""Faults in a real kernel, through the Python API and ``%%parallel``, under fork and spawn.

One kernel per start method runs every fault as its own cell, as a notebook user
would (the functions live in the notebook's ``__main__`` and travel by value), then
a check cell: the notebook's variables are exactly as before, no worker holds a
task, no shared-memory segment of the kernel is left, and the next run (API and
magic) works. Cell timings from nbclient give the time to report each fault.
"""

from __future__ import annotations

import textwrap
from datetime import datetime

import pytest
from notebook_runner import outputs_text, run_cells

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(240)]

SETUP = """
%load_ext jupyter_par
import ctypes, faulthandler, os, signal, socket, threading, time
import numpy as np, pandas as pd
import jupyter_par as jp
from jupyter_par import backends

df = pd.DataFrame({"a": np.arange(200)}, index=pd.Index([f"r{i}" for i in range(200)]))
snapshot = df.copy(deep=True)
CONNECTION = socket.socket()
SHM_PREFIX = f"jupyter_par-{os.getpid()}-"

def raises(row):
    if row["a"] == 77:
        raise ValueError("bad value 77")
    return row["a"]

def exits(row):
    if row["a"] == 77:
        os._exit(1)
    return row["a"]

def segfaults(row):
    if row["a"] == 77:
        faulthandler.disable()
        ctypes.string_at(0)
    return row["a"]

def out_of_memory(row):
    if row["a"] == 77:
        bytearray(1 << 60)
    return row["a"]

def loops(row):
    while row["a"] == 77:
        pass
    return row["a"]

def unsendable(row):
    return (i for i in range(3)) if row["a"] == 77 else row["a"]

def uses_socket(row):
    return row["a"] + CONNECTION.fileno()

def uses_missing_name(row):
    return row["a"] + NOT_DEFINED_ANYWHERE

def slow(row):
    time.sleep(0.01)
    return row["a"]

def arm_killer():
    # SIGKILL one worker from outside as soon as the next run keeps it busy.
    pool = backends.warm_backends()["processes"]
    victim = pool.pids()[0]

    def kill():
        deadline = time.monotonic() + 10
        while not pool.rows_done() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(victim, signal.SIGKILL)

    threading.Thread(target=kill, daemon=True).start()

def check():
    assert df.equals(snapshot) and list(df.columns) == ["a"], "df changed"
    assert "out" not in globals(), "a failed run stored a result"
    leftover = [n for n in os.listdir("/dev/shm") if n.startswith(SHM_PREFIX)]
    assert not leftover, leftover
    busy = [p.name for b in backends.warm_backends().values()
            for p in getattr(b, "_procs", []) if p is not None and p.task_id is not None]
    assert not busy, busy
    got = jp.apply(df, lambda r: r["a"] * 2, axis=1, {opts})
    assert got.equals(df["a"] * 2)
    get_ipython().run_cell_magic("parallel", "{flags} --out doubled df", "df['a'] * 2")
    assert globals().pop("doubled").equals(df["a"] * 2)
    print("CHECK OK")
"""

# fault -> (function, extra API keywords, extra magic flags, exception name, texts)
FAULTS = {
    "exception": ("raises", "", "", "ValueError", ["bad value 77", "partition 19 of 50"]),
    "os_exit": ("exits", "", "", "WorkerDiedError", ["partition 19 of 50", "exited"]),
    "segfault": ("segfaults", "", "", "WorkerDiedError", ["partition 19 of 50", "SIGSEGV"]),
    "memory_error": ("out_of_memory", "", "", "MemoryError", ["partition 19 of 50"]),
    "infinite_loop": ("loops", ", timeout=1", " --timeout 1", "PartitionTimeoutError",
                      ["partition 19 of 50", "timeout=1"]),
    "unsendable_result": ("unsendable", "", "", "ShippingError",
                          ["partition 19 of 50", "generator"]),
    "unshippable_function": ("uses_socket", "", "", "ShippingError", ["CONNECTION", "socket"]),
    "missing_name": ("uses_missing_name", "", "", "NameError",
                     ["NOT_DEFINED_ANYWHERE", "row label", " of 50"]),
    "sigkill": ("slow", "", "", "WorkerDiedError", ["SIGKILL", " of 50"]),
}


def _cells(method: str) -> tuple[list[str], list[tuple[str, int]]]:
    opts = f"jobs=2, start_method='{method}', partitions=50, progress=False"
    flags = f"--jobs 2 --start {method} --partitions 50 --no-progress"
    setup = SETUP.replace("{opts}", opts).replace("{flags}", flags)
    cells, faults = [setup, "check()"], []
    for name, (func, kwargs, more_flags, _, _) in FAULTS.items():
        arm = "arm_killer()\n" if name == "sigkill" else ""
        faults.append((f"api-{name}", len(cells)))
        cells += [f"{arm}out = jp.apply(df, {func}, axis=1, {opts}{kwargs})", "check()"]
        faults.append((f"magic-{name}", len(cells)))
        body = f"df['b'] = df.apply({func}, axis=1)"
        magic = (f"get_ipython().run_cell_magic('parallel', '{flags}{more_flags} df', {body!r})"
                 if arm else f"%%parallel {flags}{more_flags} df\n{body}")
        cells += [arm + magic, "check()"]
    cells.append(textwrap.dedent("""
        import psutil
        allowed = set(backends.warm_backends()["processes"].pids())
        extra = [p for p in psutil.Process().children(recursive=True)
                 if p.pid not in allowed and "resource_tracker" not in " ".join(p.cmdline())]
        assert not extra, extra
        CONNECTION.close()
        print("END OK")
    """))
    return cells, faults


def _seconds(cell) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return float("nan")
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_faults_in_a_kernel(method, report_time):
    cells, faults = _cells(method)
    nb = run_cells(cells, allow_errors=True, timeout=120)
    assert "CHECK OK" in outputs_text(nb.cells[1]), outputs_text(nb.cells[1])
    problems = []
    for label, index in faults:
        name = label.split("-", 1)[1]
        _, _, _, ename, texts = FAULTS[name]
        fault, after = nb.cells[index], nb.cells[index + 1]
        errors = [o for o in fault.outputs if o.output_type == "error"]
        text = outputs_text(fault)
        if not errors or errors[0].ename != ename:
            problems.append(f"{label}: expected {ename}, got {text[:400]!r}")
        problems += [f"{label}: {t!r} not shown" for t in texts if t not in text]
        if "CHECK OK" not in outputs_text(after):
            problems.append(f"{label}: state after the fault: {outputs_text(after)[-600:]}")
        report_time(_seconds(fault), label)
    assert "END OK" in outputs_text(nb.cells[-1]), outputs_text(nb.cells[-1])
    assert not problems, "\n".join(problems)
