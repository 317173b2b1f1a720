"""Fixtures for the fault-injection suite: leak checks and a table of time-to-report.

Every fault test must leave nothing behind: no child process (the autouse fixture of
``tests/conftest.py`` checks that) and no shared-memory segment. How long each
fault took to be reported is collected here and printed at the end of the run, so a
regression towards "hangs" shows as a number.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

SHM = Path("/dev/shm")

#: (test id, seconds from the call, or from the injected fault, to the error).
_REPORT_TIMES: list[tuple[str, float]] = []


def shm_entries(pid: int | None = None) -> set[str]:
    """Segments in /dev/shm owned by ``pid`` (default: this process).

    jupyter_par names every segment ``jupyter_par-<owner pid>-...``, the owner being the
    process that starts the run (workers name their result segments after it), so
    this sees exactly this process's segments, not those of other programs sharing
    the machine's /dev/shm.
    """
    if not SHM.is_dir():
        return set()
    prefix = f"jupyter_par-{pid or os.getpid()}-"
    return {name for name in os.listdir(SHM) if name.startswith(prefix)}


@pytest.fixture
def no_shm_leak():
    """Fail a test that leaves a new shared-memory segment in /dev/shm."""
    before = shm_entries()
    yield
    deadline = time.monotonic() + 2.0
    while (new := shm_entries() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not new, f"shared-memory segments left behind: {sorted(new)}"


#: README: a worker that dies "ends the run within seconds". The bound each report is held
#: to: those seconds, with the margin a machine at load 10 on 2 CPUs needs.
REPORT_WITHIN = 10.0


@pytest.fixture
def report_time(request):
    """Record how long a fault took to be reported, and fail above ``within`` seconds:
    ``report_time(seconds, label=None, within=REPORT_WITHIN)``."""

    def record(seconds: float, label: str | None = None,
               within: float = REPORT_WITHIN) -> None:
        name = f"{request.node.name} {label or ''}".strip()
        _REPORT_TIMES.append((name, seconds))
        assert seconds <= within, (  # NaN (not measured) fails too
            f"{name}: reported after {seconds:.1f} s, README promises seconds (<= {within} s)")

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _REPORT_TIMES:
        return
    terminalreporter.section("time to report each fault")
    for name, seconds in _REPORT_TIMES:
        terminalreporter.write_line(f"{seconds:8.3f} s  {name}")
