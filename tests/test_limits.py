"""Worker counts and native thread pools on a real machine (jupyter_par.machine.limits).

``--jobs 1000`` on 2 CPUs used to start 1,000 processes (46-61 s, ~10 GB); numpy's
BLAS started one thread per CPU in every worker. Here: negative jobs count from the
CPUs as in joblib, process workers are capped at a few per CPU with one warning
unless the caller insists, no more workers start than there are partitions, and each
worker's BLAS/OpenMP pools share the CPUs out, unless the user said otherwise.
"""

from __future__ import annotations

import os
import warnings

import psutil
import pytest
from IPython.core.interactiveshell import InteractiveShell

import jupyter_par as jp
from jupyter_par import backends
from jupyter_par.errors import UsageError
from jupyter_par.machine import limits
from jupyter_par.machine.limits import OversubscribeWarning
from jupyter_par.run.options import resolve

CPUS = limits.usable_cpus()
CAP = limits.PROCESSES_PER_CPU * CPUS


def worker_pids() -> set[int]:
    pool = backends.warm_backends().get("processes")
    return set(pool.pids()) if pool is not None else set()


def test_negative_jobs_count_from_the_cpus() -> None:
    assert resolve(jobs=-1, backend="threads").jobs == CPUS
    if CPUS > 1:
        assert resolve(jobs=-2, backend="threads").jobs == CPUS - 1


@pytest.mark.parametrize("jobs", [0, -(CPUS + 1), 2.5, True])
def test_bad_jobs_say_what_to_do(jobs) -> None:
    with pytest.raises(UsageError, match="jobs") as info:
        resolve(jobs=jobs)
    assert "\n" not in str(info.value)


def test_process_workers_beyond_reason_are_capped_with_one_warning(fresh_workers) -> None:
    with pytest.warns(OversubscribeWarning, match="oversubscribe=True") as caught:
        got = jp.map(list(range(400)), abs, jobs=1000, partitions=400, progress=False,
                     inline_fallback=False)
    assert got == list(range(400))
    assert len([w for w in caught if w.category is OversubscribeWarning]) == 1
    assert len(str(caught[0].message).splitlines()) == 1
    assert backends.warm_backends()["processes"].jobs == CAP
    assert len(worker_pids()) <= CAP


def test_oversubscribe_starts_what_was_asked(fresh_workers) -> None:
    jobs = CAP + 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", OversubscribeWarning)
        got = jp.map(list(range(jobs)), abs, jobs=jobs, oversubscribe=True, partitions=jobs,
                     start_method="fork", progress=False)
    assert got == list(range(jobs))
    assert backends.warm_backends()["processes"].jobs == jobs


def test_threads_may_go_higher_up_to_a_limit() -> None:
    high = max(limits.THREADS_AT_LEAST, limits.THREADS_PER_CPU * CPUS)
    assert resolve(jobs=high, backend="threads").jobs == high
    with pytest.warns(OversubscribeWarning):
        assert resolve(jobs=high * 10, backend="threads").jobs == high
    assert resolve(jobs=high * 10, backend="threads", oversubscribe=True).jobs == high * 10


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_never_more_workers_than_partitions(fresh_workers, method: str) -> None:
    jobs = min(CAP, 6)
    got = jp.map(list(range(10)), abs, jobs=jobs, partitions=2, start_method=method,
                 progress=False)
    assert got == list(range(10))
    me = psutil.Process()
    workers = [p for p in me.children(recursive=True) if p.pid in worker_pids()]
    assert len(worker_pids()) == 2 and len(workers) == 2
    # A later run with more partitions starts the rest of the pool.
    jp.map(list(range(10)), abs, jobs=jobs, partitions=10, start_method=method, progress=False)
    assert len(worker_pids()) == jobs


def test_magic_takes_negative_jobs_and_oversubscribe(fresh_workers) -> None:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_par")
    try:
        shell.user_ns["items"] = list(range(CAP + 1))
        result = shell.run_cell_magic(
            "parallel", f"--jobs {CAP + 1} --oversubscribe --no-progress --out doubled items",
            "items = [i * 2 for i in items]")
        assert result is None
        assert shell.user_ns["doubled"] == [i * 2 for i in range(CAP + 1)]
        assert backends.warm_backends()["processes"].jobs == CAP + 1
        shell.run_cell_magic("parallel", "--jobs -1 --backend threads --no-progress items",
                             "items = [i + 1 for i in items]")
        assert shell.user_ns["items"] == list(range(1, CAP + 2))
    finally:
        shell.run_line_magic("unload_ext", "jupyter_par")


# -- native thread pools ------------------------------------------------------------------
def pools(_: object) -> list[tuple[int, str | None]]:
    from threadpoolctl import threadpool_info

    return [(p["num_threads"], os.environ.get("OMP_NUM_THREADS")) for p in threadpool_info()
            if p["user_api"] == "blas"]


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_share_the_cpus_between_their_blas_threads(fresh_workers, method: str,
                                                            monkeypatch) -> None:
    pytest.importorskip("threadpoolctl")
    for name in limits.THREAD_VARIABLES:  # (a Dask LocalCluster sets some in this process)
        monkeypatch.delenv(name, raising=False)
    seen = jp.map_partitions([0, 1], pools, jobs=2, partitions=2, start_method=method,
                             progress=False)
    want = max(1, CPUS // 2)
    assert seen and all(threads == want and env == str(want) for threads, env in seen), seen
    assert pools(None)[0][0] == CPUS, "the kernel's own pools must stay as they were"


def test_blas_threads_option_wins(fresh_workers) -> None:
    pytest.importorskip("threadpoolctl")
    seen = jp.map_partitions([0, 1], pools, jobs=2, partitions=2, blas_threads=3,
                             start_method="fork", progress=False)
    assert all(threads == 3 for threads, _ in seen), seen


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_users_own_thread_variables_win(fresh_workers, monkeypatch, method: str) -> None:
    pytest.importorskip("threadpoolctl")
    for name in limits.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    seen = jp.map_partitions([0, 1], pools, jobs=2, partitions=2, start_method=method,
                             progress=False)
    assert all(env == "3" and threads == 3 for threads, env in seen), seen


def test_cgroup_readers_do_not_raise() -> None:
    free, source = limits.available_memory()
    assert free > 0 and source
    assert limits.usable_cpus() >= 1
    assert limits.oom_kills() >= 0


# -- memory budget (fast checks with a fake memory reading; the real limit is tested in
#    tests/faults/test_memory_budget.py) -----------------------------------------------------
def test_budget_sends_one_partition_until_the_first_shows_its_footprint() -> None:
    from jupyter_par.machine.budget import MemoryBudget

    budget = MemoryBudget(4, reader=lambda: (1000 * 2**20, "fake"))
    assert budget.room(4) == 4  # nothing known yet
    budget.started("0", 0, 0, 50 * 2**20)  # 10 x 50 MB guessed > 0.8 x 1000 MB / 2
    assert budget.room(3) == 0
    budget.finished("0", 100 * 2**20)  # it needed twice its input
    assert budget.room(4) == 4


def test_budget_keeps_what_is_in_flight_within_the_memory_left() -> None:
    from jupyter_par.machine.budget import MemoryBudget, MemoryBudgetWarning

    budget = MemoryBudget(4, reader=lambda: (1000 * 2**20, "fake"))
    budget.started("0", 0, 0, 100 * 2**20)
    budget.finished("0", 300 * 2**20)  # 3 x its input
    budget.started("1", 1, 0, 100 * 2**20)
    # 0.8 x 1000 MB free, of which the partition in flight may still claim 300 - 100 MB
    # (its input is already out of the free memory): room for two more of 300 MB.
    with pytest.warns(MemoryBudgetWarning, match="3 partition"):
        assert budget.room(3) == 2
    budget.released("1")
    assert budget.room(4) == 2


def test_budget_reads_no_worker_memory_while_memory_is_plentiful(monkeypatch) -> None:
    from jupyter_par.machine import budget as budget_module
    from jupyter_par.machine.budget import MemoryBudget

    reads: list[int] = []
    monkeypatch.setattr(budget_module, "rss_of", lambda pid: reads.append(pid) or 0)
    budget = MemoryBudget(4, reader=lambda: (100 * 2**30, "fake"))
    for task in range(20):  # 1 MB partitions against 100 GB: asked before each one
        assert budget.room(4 - len(budget.flights)) == 4 - len(budget.flights)
        budget.started(str(task % 4), task, 1234, 2**20)
        if task % 4 == 3:
            for worker in "0123":
                budget.finished(worker, 2 * 2**20)
    assert reads == []


def test_budget_counts_what_a_partition_already_holds_when_memory_is_tight(monkeypatch) -> None:
    from jupyter_par.machine import budget as budget_module
    from jupyter_par.machine.budget import MemoryBudget

    rss = {1234: 0}
    monkeypatch.setattr(budget_module, "rss_of", lambda pid: rss.get(pid, 0))
    budget = MemoryBudget(2, reader=lambda: (1000 * 2**20, "fake"))
    budget.started("0", 0, 1234, 100 * 2**20)
    budget.finished("0", 300 * 2**20)  # 3 x its input: 300 MB each
    budget.started("0", 1, 1234, 100 * 2**20)  # tight: its memory at the start is read
    # 800 MB usable; the one in flight may claim 200 MB more: two more fit, but
    # only one worker is idle.
    assert budget.room(1) == 1
    assert budget.claimed() == 200 * 2**20
    rss[1234] = 150 * 2**20  # it has grown by 150 MB: only 50 MB more is to come
    assert budget.claimed() == 50 * 2**20
    assert budget.claimed_at_most() >= budget.claimed()


def test_budget_upper_bound_never_lets_more_through_than_the_exact_claims() -> None:
    from jupyter_par.machine.budget import MemoryBudget

    for free_mb in (300, 700, 1000, 1300, 2000, 5000):
        budget = MemoryBudget(4, reader=lambda free_mb=free_mb: (free_mb * 2**20, "fake"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tight cases warn: not what is tested here
            budget.started("0", 0, 0, 100 * 2**20)
            budget.finished("0", 250 * 2**20)
            budget.started("1", 1, 0, 100 * 2**20)
            budget.started("2", 2, 0, 37 * 2**20)
            exact = max(0, int((free_mb * 2**20 * 0.8 - budget.claimed())
                               // budget.estimate(budget.last_input)))
            assert budget.room(2) == min(2, exact), free_mb


def test_a_new_pool_removes_segments_of_a_dead_kernel(fresh_workers) -> None:
    from jupyter_par.wire import shared_memory as transport

    if not transport.available():
        pytest.skip("no /dev/shm on this platform")
    dead = psutil.Popen(["true"])
    dead.wait()
    orphan = f"/dev/shm/jupyter_par-{dead.pid}-w0.1-deadbeef"
    with open(orphan, "wb") as segment:
        segment.write(b"x" * 100)
    jp.map(list(range(4)), abs, jobs=2, progress=False)
    assert not os.path.exists(orphan)


def test_cgroup_dirs_follow_a_move_to_another_cgroup(monkeypatch, tmp_path) -> None:
    # The answer is kept between calls (resolving paths is its cost), keyed by what
    # /proc says: a process moved to another cgroup gets the new directories.
    from pathlib import Path

    mountinfo = f"30 25 0:26 / {tmp_path} rw,nosuid - cgroup2 cgroup2 rw\n"
    files = {"/proc/self/mountinfo": mountinfo, "/proc/self/cgroup": "0::/jobs/a\n"}
    monkeypatch.setattr(limits, "_read", lambda path: files.get(str(path)))
    first = limits.cgroup_dirs("memory")
    assert first[0] == (tmp_path / "jobs" / "a").resolve() and first[-1] == tmp_path.resolve()
    assert limits.cgroup_dirs("memory") == first
    files["/proc/self/cgroup"] = "0::/jobs/b\n"
    assert limits.cgroup_dirs("memory")[0] == Path(tmp_path / "jobs" / "b").resolve()
