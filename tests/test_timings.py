"""The run's critical path as the engine records it, and the breakdown built from it."""

from __future__ import annotations

import time

import pytest

from jupyter_par import engine, timings
from jupyter_par.config import resolve
from jupyter_par.errors import UsageError
from jupyter_par.operations import PartitionCall
from jupyter_par.partition import Partition
from jupyter_par.progress_state import CallbackProgress


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def burn(seconds: float) -> float:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return seconds


def _parts(values: list[float]) -> list[Partition]:
    return [Partition(i, v, 1) for i, v in enumerate(values)]


@pytest.mark.parametrize("backend", ["processes", "threads", "inline"])
def test_worker_compute_sums_the_partitions_and_wall_covers_the_run(backend):
    jobs = 1 if backend == "inline" else 2
    options = resolve(backend=backend, jobs=jobs, progress=False)
    outcome = engine.run(_parts([0.1] * 4), PartitionCall(nap), options)
    t = outcome.timings
    assert outcome.results == [0.1] * 4
    assert 0.4 <= t.worker_compute < 0.4 + 0.2  # four naps of 0.1 s, measured in the worker
    assert t.wall >= 0.4 / jobs and t.wall >= outcome.elapsed
    assert 0 <= t.to_first_dispatch < t.wall and 0 <= t.tail < t.wall
    # Sleeping workers cost the kernel almost nothing (and never the nap itself).
    assert 0 <= t.kernel_dispatch <= t.kernel_between < 0.1
    assert t.kernel_cpu >= 0


def test_shipping_counts_what_each_partition_costs_the_kernel():
    # Partitions of 2 MB: pickling each (and the result) is the kernel's own work.
    import numpy as np

    parts = [Partition(i, np.full(250_000, float(i)), 1) for i in range(6)]
    options = resolve(backend="processes", jobs=2, progress=False)
    t = engine.run(parts, PartitionCall(lambda a: a.sum()), options).timings
    assert 0 < t.kernel_dispatch <= t.kernel_between


def test_a_slow_input_shows_before_the_first_dispatch():
    def slow_source():
        time.sleep(0.3)  # the kernel cutting (or reading) the first partition
        yield from _parts([0.01, 0.01])

    options = resolve(backend="threads", jobs=2, progress=False)
    t = engine.run(slow_source(), PartitionCall(nap), options).timings
    assert t.to_first_dispatch >= 0.3
    assert t.tail < 0.2


def test_kernel_work_between_dispatches_is_counted_and_waiting_is_not():
    # A progress sink that burns 20 ms of the kernel's CPU at each update (about ten a
    # second): kernel work while the partitions run.
    burned = []

    def heavy_sink(_progress):
        burned.append(burn(0.02))

    options = resolve(backend="processes", jobs=2, progress=False)
    t = engine.run(_parts([0.6, 0.6]), PartitionCall(nap), options,
                   sinks=[CallbackProgress(heavy_sink)]).timings
    inside = len(burned) - 2  # the first and the final updates fall outside the window
    assert inside >= 2
    assert t.kernel_between >= 0.02 * (inside - 1)
    assert t.kernel_between < 0.6  # the workers' naps are not the kernel's
    # Progress is the loop's work, not the partitions': shipping stays small.
    assert t.kernel_dispatch < 0.02


def test_inline_runs_do_not_count_the_partition_as_kernel_work():
    options = resolve(backend="inline", jobs=1, progress=False)
    t = engine.run(_parts([0.2, 0.2]), PartitionCall(burn), options).timings
    assert t.worker_compute >= 0.4
    assert t.kernel_between < 0.1 and t.kernel_dispatch < 0.1


def test_breakdown_and_amdahl_projection():
    run = engine.RunOutcome([], jobs=4, timings=engine.RunTimings(
        to_first_dispatch=0.05, kernel_between=0.03, kernel_dispatch=0.02, tail=0.01, wall=1.0,
        worker_compute=3.6, kernel_cpu=0.1))
    parts = timings.breakdown(run, combine_seconds=0.02, split_seconds=0.1)
    assert parts["split"] == pytest.approx(0.15)
    assert parts["shipping"] == pytest.approx(0.02)
    assert parts["loop"] == pytest.approx(0.01)
    assert parts["compute"] == pytest.approx(3.6)
    assert parts["wall"] == pytest.approx(1.12)
    assert parts["idle"] == pytest.approx(0.94 - 0.9)
    serial = 0.15 + 0.02 + 0.01 + 0.02
    assert parts["serial_share"] == pytest.approx(serial / (serial + 3.6))
    assert timings.projected_speedup(parts, 1) == pytest.approx(1.0)
    assert timings.projected_speedup(parts, 16) == pytest.approx(3.8 / (serial + 3.6 / 16))
    assert timings.projected_efficiency(parts, 64) == pytest.approx(
        3.8 / (serial + 3.6 / 64) / 64)
    line = timings.summary(parts, 16)
    assert line.startswith("compute 95% · shipping 1% · kernel 5%")
    assert line.endswith(f"about {3.8 / (serial + 3.6 / 16):.0f}x at 16 workers")


def test_breakdown_of_a_real_run_and_bad_input():
    options = resolve(backend="threads", jobs=2, progress=False)
    outcome = engine.run(_parts([0.05] * 4), PartitionCall(nap), options)
    parts = timings.breakdown(outcome)
    assert parts["workers"] == 2 and parts["compute"] >= 0.2
    assert 0 < parts["serial_share"] < 1
    with pytest.raises(UsageError, match="RunOutcome with timings"):
        timings.breakdown(engine.RunOutcome([]))
    with pytest.raises(UsageError, match="workers must be a whole number"):
        timings.projected_speedup(parts, 0)
