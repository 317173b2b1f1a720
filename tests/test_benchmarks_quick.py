"""The benchmark harness keeps working: a quick run completes and every result is correct.

No timing is asserted here (timings belong in benchmarks/results); what can break
silently is the harness itself, or a method that starts returning something other
than what serial pandas returns.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
METHODS = ("serial", "recipe", "jupyter_par")


@pytest.mark.slow
@pytest.mark.kernel
def test_quick_benchmark_runs_and_every_result_matches_serial_pandas(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--jobs", "2",
         "--methods", ",".join(METHODS), "--sweep", "1,2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=REPO, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    rows = report["rows"] + report["sweep"]
    failed = [r for r in rows if "error" in r or not r.get("correct")]
    assert failed == []
    ran = {(r["workload"], r["method"]) for r in report["rows"]}
    assert ran >= {(n, m) for n in range(1, 8) for m in METHODS}
    assert any("%%parallel" in r["method"] for r in report["rows"])
    table = (tmp_path / "latest.md").read_text()
    assert table.count("| yes |") == len(report["rows"])
    assert (tmp_path / "speedup.png").stat().st_size > 0
