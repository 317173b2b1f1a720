"""A 64 MB /dev/shm (Docker's default): frames and shared objects far larger than it.

pandarallel's users hit "No space left on device" and Bus errors there. jupyter_par
asks /dev/shm for room before each segment (a tmpfs allocates pages only as they are
written, so a segment larger than the free space fails half-way, and a mapping touched
beyond it dies of SIGBUS); what does not fit moves through the pipes, with one warning.

The test needs a private mount namespace whose /dev/shm is a 64 MB tmpfs: the body
runs as a subprocess under ``unshare --mount`` (root, or a user namespace, is needed);
where that is not permitted the test skips with one line saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SHM_MB = 64
CALLS = {"map_partitions", "apply columns", "apply series", "map series", "groupby_apply",
         "shared", "magic"}
#: Rows of the big frame: 7 float64 columns + 1 int64 key = 8 x 8 bytes a row.
ROWS = 6_500_000

BODY = textwrap.dedent(f"""
    import json, os, sys, warnings
    import numpy as np, pandas as pd
    import jupyter_par as jp
    from jupyter_par.progress import timings
    from jupyter_par.wire.shared_memory import SharedMemoryWarning

    warnings.simplefilter("error")  # anything but the one expected warning fails the run
    report = {{"shm_mb": os.statvfs("/dev/shm").f_blocks * os.statvfs("/dev/shm").f_frsize
               / 2**20, "calls": {{}}}}
    rows = {ROWS}
    df = pd.DataFrame({{f"c{{i}}": np.arange(rows, dtype="float64") * (i + 1) for i in range(7)}})
    df["g"] = np.arange(rows) % 97
    report["frame_mb"] = float(df.memory_usage().sum() / 2**20)
    opts = dict(jobs=2, progress=False, inline_fallback=False,
                start_method=os.environ["JP_START"])

    only = os.environ.get("JP_CALLS")

    def call(name, run, want):
        if only and name not in only.split(","):
            return
        timings.remember(None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SharedMemoryWarning)
            got = run()
        ran = jp.last_run().ran if jp.last_run() is not None else "nowhere"
        if isinstance(want, pd.DataFrame):
            pd.testing.assert_frame_equal(got, want)
        else:
            pd.testing.assert_series_equal(got, want)
        shm = [w for w in caught if issubclass(w.category, SharedMemoryWarning)]
        report["calls"][name] = {{"warnings": len(shm), "ran": ran,
                                 "other": [str(w.message) for w in caught if w not in shm]}}

    call("map_partitions", lambda: jp.map_partitions(df, lambda p: p * 2, **opts), df * 2)
    call("apply columns", lambda: jp.apply(df, lambda c: c * 2, **opts),
         df.apply(lambda c: c * 2))
    big = pd.Series(np.arange(2 * rows, dtype="float64"), name="big")  # ~100 MB
    # Functions, not a ufunc or a lookup Series: those are handed to pandas whole and never
    # reach the workers, so they could not show whether the workers' data moved right.
    call("apply series", lambda: jp.apply(big, abs, **opts), big.apply(abs))
    keys = pd.Series(np.arange(2 * rows) % 1000, name="k")
    call("map series", lambda: jp.map(keys, float, **opts), keys.map(float))
    call("groupby_apply", lambda: jp.groupby_apply(df, "g", lambda g: g.sum(), **opts),
         df.groupby("g").apply(lambda g: g.sum()))
    table = np.arange(rows * 4, dtype="float64")  # ~200 MB shared, far above the free space
    small = pd.DataFrame({{"i": np.arange(0, rows * 4, rows // 4)}})
    want = small["i"].map(lambda i: float(table[i:].sum()))
    call("shared", lambda: jp.map_partitions(
        small, lambda p: p["i"].map(lambda i: float(jp.shared["table"][i:].sum())),
        shared={{"table": table}}, **opts), want)

    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_par")
    shell.user_ns["df"] = df
    jp.set_defaults(inline_fallback=False)  # the magic has no flag for it
    method = os.environ["JP_START"]
    call("magic", lambda: (shell.run_cell_magic(
        "parallel", f"--jobs 2 --no-progress --start {{method}} --out doubled df", "df = df * 2"),
        shell.user_ns["doubled"])[1], df * 2)

    jp.shutdown()
    report["left_in_shm"] = sorted(os.listdir("/dev/shm"))
    print("REPORT " + json.dumps(report))
""")


def _namespace_command(start_method: str) -> list[str] | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    script = (f"mount -t tmpfs -o size={SHM_MB}m tmpfs /dev/shm && "
              f'exec "{sys.executable}" -c "$JP_BODY"')
    return [unshare, "--mount", "--propagation", "private", "sh", "-c", script]


def _can_make_namespace() -> str | None:
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               f"mount -t tmpfs -o size={SHM_MB}m tmpfs /dev/shm"]
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1]
    return None


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_frames_and_shared_objects_far_above_a_64mb_dev_shm(start_method):
    why = _can_make_namespace()
    if why is not None:
        pytest.skip(f"cannot mount a {SHM_MB} MB /dev/shm in a private mount namespace "
                    f"(needs root or user namespaces): {why}")
    command = _namespace_command(start_method)
    # Under spawn only the calls whose workers differ by start method: the rest is the same.
    calls = "map_partitions,shared,magic" if start_method == "spawn" else ""
    env = {**os.environ, "JP_BODY": BODY, "JP_START": start_method, "JP_CALLS": calls,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=840,
                          check=False)
    output = done.stdout + done.stderr
    assert "Bus error" not in output and "No space left" not in output, output[-3000:]
    assert done.returncode == 0, output[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    report = json.loads(line[len("REPORT "):])
    print(json.dumps(report, indent=1))
    assert report["shm_mb"] == SHM_MB
    assert report["frame_mb"] > 5 * SHM_MB
    assert report["left_in_shm"] == [], "segments left in /dev/shm"
    # Every call moved far more than /dev/shm holds through the workers: each says so
    # exactly once, and still gives pandas' result.
    assert set(calls.split(",") if calls else CALLS) == set(report["calls"])
    for name, seen in report["calls"].items():
        assert seen["ran"] == "workers", f"{name} ran in {seen['ran']}, not in the workers"
        assert seen["warnings"] == 1, f"{name}: {seen['warnings']} /dev/shm warnings, want one"
        assert not seen["other"], f"{name}: unexpected warnings {seen['other']}"
