"""The default ``jobs`` follows the CPUs this kernel may use: its affinity (``taskset``) and
a container's CPU quota (a cgroup's ``cpu.max`` / ``cpu.cfs_quota_us``), with the workers
really started (README: "CPU quotas of containers included").

Each case runs a script in a fresh process under the limit and reports how many jobs the
run used, where it ran, and the distinct worker processes that computed the rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_par.machine import limits

ROOT = Path(__file__).resolve().parents[2]

BODY = """
import json, os
import pandas as pd
import jupyter_par as jp
from jupyter_par.machine.limits import usable_cpus
df = pd.DataFrame({"a": range(200)})
pids = jp.apply(df, lambda row: os.getpid(), axis=1, progress=False, inline_fallback=False)
run = jp.last_run()
print("REPORT " + json.dumps({"cpus": usable_cpus(), "jobs": run.jobs, "ran": run.ran,
                              "workers": sorted(set(pids) - {os.getpid()}),
                              "kernel_rows": int((pids == os.getpid()).sum())}))
jp.shutdown()
"""


def _report(command: list[str], **popen) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")])}
    env.update(popen.pop("env", {}))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,
                          check=False, **popen)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


def _taskset(cpus: str) -> dict:
    if shutil.which("taskset") is None:
        pytest.skip("taskset is not installed")
    return _report(["taskset", "-c", cpus, sys.executable, "-c", BODY])


def test_one_cpu_by_affinity_runs_in_the_kernel():
    report = _taskset("0")
    assert report["cpus"] == 1 and report["jobs"] == 1, report
    assert report["ran"] == "kernel" and report["workers"] == [], report


def test_two_cpus_by_affinity_start_two_workers():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this machine lets the tests use one CPU")
    first_two = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:2])
    report = _taskset(first_two)
    assert report["cpus"] == 2 and report["jobs"] == 2, report
    assert report["ran"] == "workers" and len(report["workers"]) == 2, report
    assert report["kernel_rows"] == 0, report


@contextlib.contextmanager
def cpu_quota(cpus: float):
    """A fresh cgroup whose CPU quota is ``cpus`` CPUs (v2 ``cpu.max`` or v1 CFS)."""
    name = f"jupyter_par-test-{os.getpid()}-{time.monotonic_ns()}"
    period = 100_000
    made = None
    for _, point, fstype, options in limits._mounts():
        top = Path(point)
        with contextlib.suppress(OSError):
            if fstype == "cgroup2" and "cpu" in (top / "cgroup.controllers").read_text().split():
                if "cpu" not in (top / "cgroup.subtree_control").read_text().split():
                    (top / "cgroup.subtree_control").write_text("+cpu")
                made = top / name
                made.mkdir()
                (made / "cpu.max").write_text(f"{int(cpus * period)} {period}")
                break
            if fstype == "cgroup" and "cpu" in options.split(","):
                made = top / name
                made.mkdir()
                (made / "cpu.cfs_period_us").write_text(str(period))
                (made / "cpu.cfs_quota_us").write_text(str(int(cpus * period)))
                break
        if made is not None and made.exists():
            with contextlib.suppress(OSError):
                made.rmdir()
        made = None
    if made is None:
        pytest.skip("no writable cpu cgroup here (needs root)")
    try:
        yield made
    finally:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                made.rmdir()
                break
            time.sleep(0.1)


def _under_quota(cpus: float) -> dict:
    with cpu_quota(cpus) as group:
        return _report(["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && '
                                    f'exec "{sys.executable}" -c "$JP_BODY"'],
                       env={"JP_BODY": BODY})


def test_a_one_cpu_quota_runs_in_the_kernel_whatever_the_affinity():
    report = _under_quota(1.0)
    assert report["cpus"] == 1 and report["jobs"] == 1, report
    assert report["ran"] == "kernel" and report["workers"] == [], report


def test_a_quota_of_one_and_a_half_cpus_starts_two_workers():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this machine lets the tests use one CPU")
    report = _under_quota(1.5)
    assert report["cpus"] == 2 and report["jobs"] == 2, report
    assert report["ran"] == "workers" and len(report["workers"]) == 2, report
