"""The kernel's serial share of every workload, and what it allows at 16, 64 and 96 workers.

For each workload of :mod:`workloads`, the jupyter_par call the main benchmark times
(:func:`methods.jupyter_par_`) runs once warm, with the engine's critical-path clocks
(``RunOutcome.timings``) read through a wrapper around ``jupyter_par.run.engine.run``:

* split: the API call until the first partition is dispatched (cutting, options,
  the in-kernel fallback's sample, starting the run);
* shipping: the kernel thread's CPU handing out partitions and reading their
  results (``RunOutcome.timings.kernel_dispatch``), not its waiting;
* tail: the last result until the engine returns; combine: until the API returns.

Their sum is the work no number of workers shortens (wall time, so on a busy machine
it is overstated). The kernel's loop (polling and progress, about ten times a second
whatever the partitions) runs beside the workers and is shown apart ("loop"). The
sum's share ``s`` of the serial pandas run (its CPU seconds, which other load
distorts far less than wall time; wall time for the I/O workload, which waits)
bounds the speedup (Amdahl): efficiency at ``n`` workers is ``1 / (1 + s (n - 1))``,
so ``s <= 0.4%`` keeps 80% at 64 workers. The kernel process's CPU during the run is
shown against the whole process tree's (workers included).

The timed calls follow a warm-up call of the same function, so a clear "workers" verdict
of the in-kernel fallback is remembered and they take no sample (``run/verdicts.py``);
the "first call" column is one more call after ``verdicts.forget()``: what the first
call of a function in a kernel pays, its sample included.

Usage (repository root)::

    .venv/bin/python benchmarks/kernel_share.py            # full sizes, 2 workers, ~1 min
    .venv/bin/python benchmarks/kernel_share.py --quick --workloads 1,3

Prints a markdown table (and one JSON line per workload with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from typing import Any

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

import methods  # noqa: E402
import workloads  # noqa: E402

from jupyter_par.run import engine, verdicts  # noqa: E402

WIDTHS = (16, 64, 96)


class EngineClock:
    """Wraps ``engine.run`` to note when the engine was entered and left, and its outcome."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, Any]] = []
        self._run = engine.run

    def __enter__(self) -> EngineClock:
        def timed_run(*args: Any, **kwargs: Any) -> Any:
            entered = time.perf_counter()
            outcome = self._run(*args, **kwargs)
            self.calls.append((entered, time.perf_counter(), outcome))
            return outcome

        engine.run = timed_run
        return self

    def __exit__(self, *_: Any) -> None:
        engine.run = self._run


def tree_cpu() -> tuple[float, float]:
    """CPU seconds of this process, and of this process plus its live children."""
    me = psutil.Process()
    own = sum(me.cpu_times()[:2])
    children = 0.0
    for child in me.children(recursive=True):
        try:
            children += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return own, own + children


def timed_once(number: int, data: Any, jobs: int, reference: Any) -> dict[str, Any]:
    """One warm jupyter_par call, with the engine's clocks: the kernel's parts of it."""
    with EngineClock() as clock:
        cpu_before = tree_cpu()
        t0 = time.perf_counter()
        result = methods.jupyter_par_(number, data, jobs)
        t_end = time.perf_counter()
        cpu_after = tree_cpu()
    if not clock.calls:
        msg = "the API did not call jupyter_par.run.engine.run: nothing was measured"
        raise RuntimeError(msg)
    entered, left, outcome = clock.calls[-1]
    t = outcome.timings
    parts = {
        "split": entered - t0 + t.to_first_dispatch,
        "shipping": t.kernel_dispatch,
        "tail": t.tail,
        "combine": t_end - left,
    }
    return {
        **parts,
        "kernel": sum(parts.values()),
        "loop": max(0.0, t.kernel_between - t.kernel_dispatch),
        "wall": t_end - t0,
        "compute": t.worker_compute,
        "kernel_cpu": cpu_after[0] - cpu_before[0],
        "tree_cpu": cpu_after[1] - cpu_before[1],
        "partitions": outcome.partitions,
        "backend": outcome.backend,
        "workers": outcome.jobs,
        "correct": workloads.same(result, reference),
    }


def measure(number: int, rows: int, jobs: int, repeat: int) -> dict[str, Any]:
    """Serial pandas once, then jupyter_par warm ``repeat`` times; medians of the parts."""
    data = workloads.make_data(number, rows)
    started, cpu = time.perf_counter(), time.process_time()
    reference = workloads.serial(number, data)
    serial, serial_cpu = time.perf_counter() - started, time.process_time() - cpu
    methods.jupyter_par_(number, data, jobs)  # warm: workers started, code loaded once
    samples = [timed_once(number, data, jobs, reference) for _ in range(repeat)]
    # The same call as the first of its function in the kernel: the fallback samples it
    # again (what a new function, or a changed input, pays; run/verdicts.py).
    verdicts.forget()
    first = timed_once(number, data, jobs, reference)
    row = {key: statistics.median(s[key] for s in samples) for key in samples[0]
           if isinstance(samples[0][key], float)}
    # CPU seconds, not wall: other load on the machine stretches wall time far more.
    # (The I/O workload's serial run waits rather than computes: its wall time, then.)
    reference_seconds = serial if workloads.WORKLOADS[number].io_bound else serial_cpu
    share = row["kernel"] / reference_seconds if reference_seconds > 0 else float("inf")
    return {
        "workload": number, "title": workloads.WORKLOADS[number].title, "rows": rows,
        "serial": serial, "serial_cpu": reference_seconds, **row, "share": share,
        "kernel_first": first["kernel"], "share_first": first["kernel"] / reference_seconds
        if reference_seconds > 0 else float("inf"),
        "efficiency": {n: 1 / (1 + share * (n - 1)) for n in WIDTHS},
        "partitions": samples[-1]["partitions"], "backend": samples[-1]["backend"],
        "workers": samples[-1]["workers"], "correct": all(s["correct"] for s in [*samples, first]),
        "load": os.getloadavg()[0],
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: the parts in milliseconds, the share, the projected efficiencies."""
    head = ("| # | workload | backend x workers | partitions | serial CPU (s) | jupyter_par (s) "
            "| split | shipping | tail | combine | kernel (ms) | loop (ms) | share of serial "
            "| kernel CPU / tree CPU (s) | first call: kernel (ms), share | "
            + " | ".join(f"eff. @{n}" for n in WIDTHS)
            + " | correct |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        eff = " | ".join(f"{r['efficiency'][n]:.2f}" for n in WIDTHS)
        lines.append(
            f"| {r['workload']} | {r['title']} | {r['backend']} x {r['workers']} "
            f"| {r['partitions']} | {r['serial_cpu']:.3f} | {r['wall']:.3f} | {_ms(r['split'])} "
            f"| {_ms(r['shipping'])} | {_ms(r['tail'])} | {_ms(r['combine'])} "
            f"| {_ms(r['kernel'])} | {_ms(r['loop'])} | {100 * r['share']:.2f}% "
            f"| {r['kernel_cpu']:.2f} / {r['tree_cpu']:.2f} "
            f"| {_ms(r['kernel_first'])}, {100 * r['share_first']:.2f}% | {eff} "
            f"| {'yes' if r['correct'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="workers (default 2)")
    parser.add_argument("--workloads", default="1,2,3,4,5,6,7")
    parser.add_argument("--quick", action="store_true", help="the CI sizes")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (median)")
    parser.add_argument("--json", action="store_true", help="also one JSON line per row")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    rows = []
    for number in (int(n) for n in args.workloads.split(",")):
        spec = workloads.WORKLOADS[number]
        row = measure(number, spec.quick_rows if args.quick else spec.rows, args.jobs,
                      args.repeat)
        rows.append(row)
        print(f"workload {number}: kernel {row['kernel'] * 1000:.1f} ms of "
              f"{row['serial']:.3f} s serial ({100 * row['share']:.2f}%)", file=sys.stderr)
        if args.json:
            print(json.dumps(row))
    import jupyter_par

    jupyter_par.shutdown()
    print(f"\n{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"{'quick' if args.quick else 'full'} sizes, {args.jobs} workers\n")
    print(table(rows))
    return 0 if all(r["correct"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
