"""Tight memory: partitions in flight stay within the limit, and an OOM kill is named.

Each body runs as a subprocess under a real limit (see memory_limits.py): a memory
cgroup of its own where /sys/fs/cgroup is writable, else RLIMIT_AS; the tests skip
with one line where neither is possible. The figures (limit, budget seen at the start,
peak use of the group) are printed for the notes.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from memory_limits import Limit, memory_limit, run_body

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MB = 2**20
#: Under this limit two partitions of BUDGET_BODY in flight (about 500 MB each, on top
#: of a 200 MB frame and the interpreter) do not fit; one does.
BUDGET_LIMIT = 1100 * MB

BUDGET_BODY = textwrap.dedent("""
    import json, os, warnings
    import numpy as np, pandas as pd
    import jupyter_par as jp
    from jupyter_par.machine import limits
    from jupyter_par.machine.budget import MemoryBudgetWarning
    from jupyter_par.planning.partition import split_rows

    rows = 6_250_000
    df = pd.DataFrame({f"c{i}": np.arange(rows, dtype="float64") + i for i in range(4)})

    def hungry(part):
        x = part.to_numpy()
        y = np.concatenate([x] * 8)  # temporaries of 8x the partition: 400 MB
        return float(y.sum())

    free, source = limits.available_memory()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = jp.map_partitions(df, hungry, jobs=2, partitions=4, progress=False,
                                inline_fallback=False, start_method="fork")
    jp.shutdown()
    want = [hungry(p.data) for p in split_rows(df, 4)]
    print("REPORT " + json.dumps({
        "equal": got == want, "free_at_start": free, "source": source,
        "frame_mb": float(df.memory_usage().sum() / 2**20),
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}))
""")

OOM_BODY = textwrap.dedent("""
    import json, os, time, warnings
    import numpy as np, pandas as pd, psutil
    import jupyter_par as jp

    limit = int(os.environ["JP_LIMIT"])
    df = pd.DataFrame({"a": np.arange(4_000_000, dtype="float64")})  # 32 MB

    def explodes(part):
        if part.index[0] >= 2_000_000:
            block = np.ones(2 * limit // 8)  # twice the limit, every page touched
            return float(block.sum())
        return float(part["a"].sum())

    started = time.monotonic()
    try:
        jp.map_partitions(df, explodes, jobs=2, partitions=4, progress=False,
                          inline_fallback=False, start_method=os.environ["JP_START"])
        error = None
    except Exception as exc:
        error = " ".join([f"{type(exc).__name__}: {exc}", *getattr(exc, "__notes__", [])])
    seconds = time.monotonic() - started
    after = jp.map_partitions(df, lambda p: float(p["a"].sum()), jobs=2, partitions=4,
                              progress=False, inline_fallback=False,
                              start_method=os.environ["JP_START"])
    prefix = f"jupyter_par-{os.getpid()}-"
    time.sleep(0.5)
    left = [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
    jp.shutdown()
    time.sleep(0.5)
    # multiprocess's resource tracker (spawn) lives as long as the interpreter, by design
    children = [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)
                if p.status() != psutil.STATUS_ZOMBIE
                and "resource_tracker" not in " ".join(p.cmdline())]
    print("REPORT " + json.dumps({
        "error": error, "seconds": seconds,
        "next_run_ok": sum(after) == float(df["a"].sum()),
        "left_in_shm": left, "children": children}))
""")


def _report(done) -> dict:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


def _skip_unless(where: Limit | str, *kinds: str) -> Limit:
    if isinstance(where, str):
        pytest.skip(f"no real memory limit can be set here: {where}")
    if kinds and where.kind not in kinds:
        pytest.skip(f"needs a memory cgroup (/sys/fs/cgroup not writable here); "
                    f"only {where.kind} is available")
    return where


def test_partitions_in_flight_stay_within_a_cgroup_limit() -> None:
    with memory_limit(BUDGET_LIMIT) as where:
        limit = _skip_unless(where, "cgroup v2", "cgroup v1")
        report = _report(run_body(BUDGET_BODY, limit))
        peak = limit.peak()
        kills = limit.oom_kills()
    print(f"\n{limit.kind}: limit {BUDGET_LIMIT / MB:.0f} MB, free at start "
          f"{report['free_at_start'] / MB:.0f} MB ({report['source']}), peak "
          f"{(peak or 0) / MB:.0f} MB, frame {report['frame_mb']:.0f} MB, OOM kills {kills}")
    assert report["equal"]
    assert kills == 0
    assert "cgroup limit" in report["source"]
    assert peak is not None and peak <= BUDGET_LIMIT
    budget = [w for w in report["warnings"] if w.startswith("MemoryBudgetWarning")]
    # The throttle is said once. Where the group's free memory dips below one partition's
    # need at a dispatch (its page cache and /dev/shm pages count against the limit, and
    # vary from run to run), that is said too: a true notice, not a second throttle.
    throttled = [w for w in budget if "1 partition(s) at a time instead of 2" in w]
    assert len(throttled) == 1, report["warnings"]
    assert all(w in throttled or "may need about" in w for w in budget), report["warnings"]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_worker_killed_for_memory_is_named_and_the_run_ends_cleanly(start_method) -> None:
    limit_bytes = 1000 * MB
    with memory_limit(limit_bytes) as where:
        limit = _skip_unless(where)
        report = _report(run_body(OOM_BODY, limit, JP_LIMIT=str(limit_bytes),
                                  JP_START=start_method))
        kills = limit.oom_kills()
    print(f"\n{limit.kind}: {report['error']} (reported after {report['seconds']:.1f} s)")
    error = report["error"]
    assert error is not None
    assert "partition 2 of 4" in error or "partition 3 of 4" in error, error
    assert report["next_run_ok"]
    assert report["left_in_shm"] == []
    assert report["children"] == [], "processes left behind after shutdown"
    if limit.kind == "RLIMIT_AS":
        # Past RLIMIT_AS an allocation fails: the worker's MemoryError, not a kill.
        assert error.startswith("MemoryError"), error
        # What this test is for (the kernel's OOM killer, named as such) needs a cgroup:
        # say it was not checked, rather than pass (CI lists no such skip).
        pytest.skip("the OOM-killer report needs a memory cgroup; only RLIMIT_AS here")
    assert kills >= 1
    assert error.startswith("WorkerDiedError"), error
    assert "(SIGKILL)" in error and "out-of-memory killer" in error, error
    assert "MB of input" in error and "try partitions=16" in error, error


def test_a_worker_out_of_address_space_under_rlimit_as() -> None:
    """The fallback where cgroups cannot be written: MemoryError, named, run ends cleanly."""
    limit_bytes = 6 * 2**30  # address space, not memory: the interpreter maps a lot
    with memory_limit(limit_bytes, allow_cgroup=False) as where:
        limit = _skip_unless(where, "RLIMIT_AS")
        report = _report(run_body(OOM_BODY, limit, JP_LIMIT=str(limit_bytes),
                                  JP_START="fork"))
    assert report["error"] is not None and report["error"].startswith("MemoryError")
    assert "partition 2 of 4" in report["error"] or "partition 3 of 4" in report["error"]
    assert report["next_run_ok"] and report["left_in_shm"] == [] and report["children"] == []
