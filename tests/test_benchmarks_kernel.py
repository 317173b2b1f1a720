"""The kernel-share, dispatch and width benchmarks keep working (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str, timeout: int = 240) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| #")
            and not line.startswith(("| method", "| backend"))]


@pytest.mark.slow
def test_kernel_share_reports_every_part_and_correct_results():
    rows = _rows(_run("benchmarks/kernel_share.py", "--quick", "--workloads", "1,6"))
    assert [r[0] for r in rows] == ["1", "6"]
    for row in rows:
        assert row[-1] == "yes"
        split, shipping, tail, combine, kernel = (float(x) for x in row[6:11])
        assert kernel == pytest.approx(split + shipping + tail + combine, abs=0.2)
        first_ms, first_share = (x.strip() for x in row[14].split(","))
        assert float(first_ms) > 0 and first_share.endswith("%")  # the call sampled again
        assert 0 < float(row[15]) <= 1  # efficiency at 16 workers


@pytest.mark.slow
@pytest.mark.dask
def test_dispatch_compares_every_method_side_by_side():
    rows = _rows(_run("benchmarks/dispatch.py", "--partitions", "60", "--dask-partitions", "20"))
    names = [r[0] for r in rows]
    assert names[:3] == ["jupyter_par processes", "jupyter_par threads",
                         "multiprocess.Pool (chunksize=1)"]
    assert "jupyter_par dask (local cluster)" in names
    assert "distributed Client.map (local cluster)" in names
    measured = [r for r in rows if "skipped" not in r[3]]
    assert len(measured) >= 5
    assert all(r[5].endswith("µs") and float(r[5][:-3].replace(",", "")) > 0 for r in measured)


@pytest.mark.slow
def test_wide_runs_every_worker():
    # More workers than the per-CPU caps on a 2-CPU machine (oversubscribing on purpose).
    rows = _rows(_run("benchmarks/wide.py", "--processes", "16", "--threads", "96",
                      "--waves", "2", "--seconds", "0.2"))
    assert [(r[0], r[1], r[12], r[-1]) for r in rows] == [
        ("processes", "16", "16", "yes"), ("threads", "96", "96", "yes")]
