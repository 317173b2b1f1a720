"""The run's critical path as the engine records it, and the breakdown built from it."""

from __future__ import annotations

import re
import time

import pytest

from jupyter_par.errors import UsageError
from jupyter_par.planning.operations import PartitionCall
from jupyter_par.planning.partition import Partition
from jupyter_par.progress import timings
from jupyter_par.progress.records import CallbackProgress
from jupyter_par.run import engine
from jupyter_par.run.options import resolve


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
    # Four naps of 0.1 s, measured in the worker: at least that; above it only by what a
    # loaded machine (load 10 on 2 CPUs) adds to waking up, never by shipping or waiting.
    assert 0.4 <= t.worker_compute < 0.4 + 1.0
    assert t.wall >= 0.4 / jobs and t.wall >= outcome.elapsed
    assert 0 <= t.to_first_dispatch < t.wall and 0 <= t.tail < t.wall
    # Sleeping workers cost the kernel almost nothing (and never the nap itself).
    assert 0 <= t.kernel_dispatch <= t.kernel_between < 0.5
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
    # The slow source is counted before the first dispatch, not in the tail (two naps of
    # 10 ms; the bound is the margin for a loaded machine, not the 0.3 s of the source).
    assert t.tail < t.to_first_dispatch


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


# -- the line the views show, and jp.last_run() ----------------------------------------
def _parts_of(jobs: int, wall: float, compute: float, *, split: float = 0.0,
              shipping: float = 0.0, tail: float = 0.0, combine: float = 0.0,
              first: float = 0.0) -> dict[str, float]:
    run = engine.RunOutcome([], jobs=jobs, timings=engine.RunTimings(
        to_first_dispatch=first, kernel_between=shipping, kernel_dispatch=shipping, tail=tail,
        wall=wall - split - combine, worker_compute=compute, kernel_cpu=0.0))
    return timings.breakdown(run, combine_seconds=combine, split_seconds=split)


def _shares(line: str) -> dict[str, int]:
    return {name: int(value) for name, value in re.findall(r"(\w+) <?(\d+)%", line)}


def _projected(line: str) -> dict[int, float]:
    return {int(n): float(x) for x, n in re.findall(r"([\d.]+)x at (\d+)", line)}


def test_explain_a_compute_bound_run():
    # 2 workers, 3.8 s of compute in a 2 s run, 0.1 s of the kernel's own work.
    parts = _parts_of(2, wall=2.0, compute=3.8, split=0.05, shipping=0.02, tail=0.01,
                      combine=0.02)
    line = timings.explain(parts)
    shares = _shares(line)
    assert shares == {"compute": 97, "shipping": 1, "kernel": 2, "idle": 1}, line
    work = 3.8 + 0.1
    assert "→ 1.9x with 2 workers; about " in line  # 3.9 s of work in 2 s: 1.95 shown as 1.9
    projected = _projected(line)
    assert list(projected) == [4, 16, 64]
    for count, shown in projected.items():
        assert shown <= timings.projected_speedup(parts, count), (count, line)
    # what the run lost against Amdahl at 2 (nothing here) is kept at 16 and 64
    assert projected[16] == int(timings.projected_speedup(parts, 16) * (work / 2.0)
                                / timings.projected_speedup(parts, 2))


def test_explain_never_claims_more_than_the_serial_share_allows():
    # Half the work is the kernel's: no count can beat 2x, whatever the workers.
    parts = _parts_of(4, wall=1.5, compute=1.0, split=0.6, combine=0.4)
    line = timings.explain(parts)
    assert _shares(line)["kernel"] == 50 and _shares(line)["compute"] == 50, line
    projected = _projected(line)
    assert list(projected) == [8, 16, 64]
    assert all(x < 2.0 for x in projected.values()), line
    assert projected[8] <= projected[16] <= projected[64]


def test_explain_keeps_the_loss_of_an_uneven_run_but_never_credits_a_gain():
    # All compute, no kernel: Amdahl says 16x at 16; the run got only 1.5x of 2 (idle
    # workers), so the projection is scaled down by 0.75.
    uneven = _parts_of(2, wall=2.0, compute=3.0)
    assert timings.realistic_speedup(uneven, 16) == pytest.approx(16 * 0.75)
    assert "idle 25%" in timings.explain(uneven)
    # More than Amdahl measured (noise): nothing is added.
    lucky = _parts_of(2, wall=1.0, compute=2.2, split=0.1)
    assert timings.realistic_speedup(lucky, 16) == pytest.approx(
        timings.projected_speedup(lucky, 16))


def test_explain_a_short_run_a_wide_run_and_an_empty_one():
    short = timings.explain(_parts_of(2, wall=0.05, compute=0.06, split=0.01))
    assert "too short to project" in short and "→" not in short and "0.05 s" in short
    wide = timings.explain(_parts_of(64, wall=1.0, compute=60.0, split=0.001))
    assert list(_projected(wide)) == [128] and "kernel <1%" in wide
    assert timings.explain(_parts_of(2, wall=0.0, compute=0.0)).startswith("nothing")
    assert timings.projection_counts(2) == [4, 16, 64]
    assert timings.projection_counts(16) == [32, 64]


def test_last_run_of_a_real_run_with_workers_and_the_text_line(capsys):
    import pandas as pd

    import jupyter_par as jp

    df = pd.DataFrame({"a": range(40)})

    def slow(row):
        time.sleep(0.01)
        return row["a"] * 2

    result = jp.apply(df, slow, axis=1, jobs=2, backend="processes", progress="text",
                      inline_fallback=False)
    assert result.equals(df.apply(slow, axis=1))
    run = jp.last_run()
    assert run.with_workers and run.backend == "processes" and run.jobs == 2
    assert run.label.startswith("apply(slow")
    parts = run.breakdown
    assert parts["compute"] >= 0.4  # 40 naps of 10 ms, measured in the workers
    for name in ("split", "shipping", "tail", "combine", "idle"):
        assert 0 <= parts[name] <= parts["wall"], (name, parts)
    assert parts["split"] + parts["tail"] + parts["combine"] + parts["compute"] / 2 \
        <= parts["wall"] * 1.05, parts
    assert 0 <= parts["serial_share"] <= 1
    assert run.timings is not None and run.timings.worker_compute == parts["compute"]
    shares = _shares(run.explain)
    assert set(shares) == {"compute", "shipping", "kernel", "idle"}, run.explain
    assert 98 <= shares["compute"] + shares["shipping"] + shares["kernel"] <= 102
    assert "with 2 workers; about" in run.explain
    # The terminal view: the line once, after the final state, as the last thing written.
    err = capsys.readouterr().err
    assert err.rstrip("\n").endswith("  " + run.explain), err[-500:]
    assert err.count(run.explain) == 1


def test_a_run_in_the_kernel_says_so_and_draws_no_line(capsys):
    import pandas as pd

    import jupyter_par as jp

    df = pd.DataFrame({"a": range(10)})
    jp.apply(df, lambda r: r["a"], axis=1, backend="inline", jobs=1, progress="text")
    run = jp.last_run()
    assert not run.with_workers and run.explain == "ran in the kernel"
    assert run.breakdown["compute"] >= 0  # still measured, for whoever asks
    assert "%" not in capsys.readouterr().err.splitlines()[-1]
    jp.apply(df.iloc[:0], lambda r: r["a"], axis=1, jobs=2)
    run = jp.last_run()
    assert run.explain == "ran in the kernel as pandas" and run.breakdown == {}
    assert run.timings is None


def test_a_view_that_cannot_draw_the_line_does_not_cost_the_result():
    class Broken:
        def update(self, progress):
            pass

        def close(self, progress):
            pass

        def explain(self, text):
            raise ValueError("the stream is closed")

    import pandas as pd

    import jupyter_par as jp

    df = pd.DataFrame({"a": range(20)})
    out = jp.apply(df, lambda r: r["a"] + 1, axis=1, jobs=2, backend="threads",
                   progress=Broken())
    assert out.equals(df["a"] + 1)
    assert jp.last_run().with_workers and jp.last_run().explain
