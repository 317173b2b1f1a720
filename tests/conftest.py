"""Shared fixtures: no test may leave a process behind, and hangs print stacks.

Warm workers are expected to outlive a test (that is the point of keeping them warm),
so the check allows the pids of the warm backends and fails on any other child
process still alive a few seconds after the test.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

import jupyter_par
from jupyter_par import backends
from jupyter_par.run import verdicts

# Ctrl-C as in a terminal or a kernel, however the suite was started: a shell without job
# control starts its background jobs (``cmd &``) with SIGINT ignored, Python then keeps it
# ignored, and so does every process the tests start. The interrupt tests (a SIGINT to
# this process, to a child on a terminal, to a Dask worker) would see nothing arrive.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The start_method fixture's methods; CI's other interpreters each run one
# (JP_TEST_START_METHODS="forkserver", see scripts/test.sh).
START_METHODS = os.environ.get("JP_TEST_START_METHODS", "fork spawn forkserver").split()


def _warm_pids() -> set[int]:
    pids: set[int] = set()
    for backend in backends.warm_backends().values():
        pids.update(backend.describe().get("pids", []))
    return pids


def _helper_pids() -> set[int]:
    """multiprocess's own long-lived helpers: the forkserver and the resource tracker."""
    pids = set()
    # multiprocess's own, and the stdlib's (started by a Dask LocalCluster's spawned workers)
    for package in ("multiprocess", "multiprocessing"):
        try:
            forkserver = __import__(f"{package}.forkserver", fromlist=["_"])
            tracker = __import__(f"{package}.resource_tracker", fromlist=["_"])
        except ImportError:
            continue
        pids.add(getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None))
        pids.add(getattr(getattr(tracker, "_resource_tracker", None), "_pid", None))
    return {pid for pid in pids if pid}


def _spawned_by(process: psutil.Process, older: set[int]) -> bool:
    """Whether a process descends from one that was already running before the test.

    Session fixtures (the browser, the JupyterLab server) start helpers of their own
    at any time; those are the fixture's to stop, not the test's.
    """
    try:
        return any(parent.pid in older for parent in process.parents())
    except psutil.Error:
        return False


def _stray_children(before: set[int], grace: float = 5.0) -> list[psutil.Process]:
    deadline = time.monotonic() + grace
    while True:
        me = psutil.Process(os.getpid())
        allowed = before | _warm_pids() | _helper_pids()
        stray = [
            p for p in me.children(recursive=True)
            if p.pid not in allowed and not _spawned_by(p, before)
            and p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        ]
        if not stray or time.monotonic() > deadline:
            return stray
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def fresh_verdicts():
    """Each test starts as a new kernel would: no fallback verdict remembered from another
    test's call of the same function (tests/test_verdicts.py checks the memory itself)."""
    verdicts.forget()
    yield
    verdicts.forget()


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Fail a test that leaves a child process (other than warm workers) running."""
    before = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    yield
    stray = _stray_children(before)
    if stray:
        details = ", ".join(f"{p.pid} {' '.join(p.cmdline()[:4])}" for p in stray)
        for p in stray:
            p.kill()
        pytest.fail(f"test left child processes behind: {details}")


@pytest.fixture(params=START_METHODS)
def start_method(request) -> str:
    """Each start method in turn."""
    return request.param


@pytest.fixture
def fresh_workers():
    """Start and end a test with no warm workers."""
    jupyter_par.shutdown()
    yield
    jupyter_par.shutdown()


#: Skips CI accepts, each with its reason (``nodeid prefix | reason``). On CI (``CI=true``)
#: any other skip fails the run: a test skipped there is a promise nobody checked.
ALLOWED_SKIPS = Path(os.environ.get("JP_ALLOWED_SKIPS",
                                    Path(__file__).parent / "allowed_skips.txt"))
_skips: list[tuple[str, str]] = []


def allowed_skips(path: Path = ALLOWED_SKIPS) -> dict[str, str]:
    """Node id prefix -> reason, from ``tests/allowed_skips.txt``."""
    allowed: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        prefix, _, reason = (part.strip() for part in line.partition(" | "))
        if not prefix or not reason:
            msg = f"{path}:{number}: expected 'nodeid prefix | reason', got {line!r}"
            raise pytest.UsageError(msg)
        allowed[prefix] = reason
    return allowed


def unlisted_skips(skips: list[tuple[str, str]], allowed: dict[str, str]
                   ) -> list[tuple[str, str]]:
    """The skips that no allowed prefix covers."""
    return [(nodeid, why) for nodeid, why in skips
            if not any(nodeid.startswith(prefix) for prefix in allowed)]


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        why = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _skips.append((report.nodeid, why))


def pytest_sessionfinish(session, exitstatus):
    jupyter_par.shutdown()
    if os.environ.get("CI", "").lower() != "true":
        return
    unlisted = unlisted_skips(_skips, allowed_skips())
    if unlisted:
        lines = "\n".join(f"  {nodeid}: {why}" for nodeid, why in unlisted)
        print(f"\n{len(unlisted)} test(s) skipped on CI, not listed with a reason in "
              f"{ALLOWED_SKIPS.name}:\n{lines}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="module")
def shell():
    """An in-process IPython shell with the magic loaded (no kernel: fast, same process)."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_par")
    yield ip
    ip.run_line_magic("unload_ext", "jupyter_par")
