"""Text through jupyter_par: before and after text moved as one UTF-8 buffer (issue 18, item 7).

Each case runs in this one process, with warm workers, first with text pickled one string
at a time (the way pickle does it: ``STRINGS_AS_TEXT_FROM`` set out of reach), then with
text as one buffer (the default), and serial pandas beside them:

* ``shared=`` a 1M-row frame with a text column, 2,000 cheap lookups: forced onto the
  workers (``inline_fallback=False``), and as shipped (the fallback may keep it in the
  kernel, which the table's preparation now counts as moving cost);
* ``Series.map`` over 1M strings: forced onto the workers, and as shipped;
* pickling and unpickling the 1M-string column alone.

Where pyarrow is installed, the same map and the same pickling with Arrow-backed text:
pandas 3's default ``str`` with pyarrow, and ``pd.ArrowDtype(pa.string())``. Those travel
as Arrow buffers, never one string at a time, so the threshold above does not apply to
them: partitions go to the workers pickled (protocol 5), and results of 256 KB and more
come back as an Arrow IPC stream in a shared-memory segment that the kernel reads in
place. "pickle + unpickle" and "segment write + read" time both ways for the whole column
in this process; "kernel CPU" is the kernel process's CPU time for the column out to the
workers and back unchanged, in 8 partitions (``map_partitions``). (The
cases above use Python-backed ``str`` explicitly, so that they measure the same thing with
or without pyarrow.)

Usage: .venv/bin/python benchmarks/text_moves.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
import warnings

import numpy as np
import pandas as pd

import jupyter_par as jp
from jupyter_par.wire import pickling as _pickling
from jupyter_par.wire import shared_memory as _transport


def best_of(repeat: int, call, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        started = clock()
        call()
        times.append(clock() - started)
    return statistics.median(times)


def look(row: pd.Series) -> float:
    table = jp.shared["table"]
    return len(table["name"].iat[row["k"]]) + table["value"].iat[row["k"]]


def shout(name: str) -> str:
    return name.upper().replace("-", "_")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows, repeat = args.rows, args.repeat
    texts = [f"customer-{i:07d}" for i in range(rows)]
    names = pd.Series(texts, dtype=pd.StringDtype("python", na_value=np.nan))
    table = pd.DataFrame({"name": names, "value": np.random.default_rng(0).random(rows)})
    small = pd.DataFrame({"k": np.random.default_rng(1).integers(0, rows, 2000)})
    expected_look = small.apply(lambda r: len(table["name"].iat[r["k"]])
                                + table["value"].iat[r["k"]], axis=1)
    expected_map = names.map(shout)

    def serial_look() -> None:
        small.apply(lambda r: len(table["name"].iat[r["k"]]) + table["value"].iat[r["k"]],
                    axis=1)

    cases = {
        "shared= 1M-row text table, 2,000 lookups": (
            serial_look,
            lambda forced: jp.apply(small, look, axis=1, jobs=2, shared={"table": table},
                                    progress=False, inline_fallback=not forced),
            expected_look),
        "Series.map over 1M strings": (
            lambda: names.map(shout),
            lambda forced: jp.map(names, shout, jobs=2, progress=False,
                                  inline_fallback=not forced),
            expected_map),
    }
    print(f"rows={rows:,} repeat={repeat} (median seconds)")
    print("| case | serial | one string at a time, workers | one buffer, workers "
          "| one buffer, as shipped |")
    print("|---|---|---|---|---|")
    default = _pickling.STRINGS_AS_TEXT_FROM
    for name, (serial, parallel, expected) in cases.items():
        serial_s = best_of(repeat, serial)
        measured = []
        for threshold, forced in ((10**18, True), (default, True), (default, False)):
            _pickling.STRINGS_AS_TEXT_FROM = threshold
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = parallel(forced)  # warm, and checked
                pd.testing.assert_series_equal(result, expected)
                measured.append(best_of(repeat, lambda f=forced, p=parallel: p(f)))
        _pickling.STRINGS_AS_TEXT_FROM = default
        cells = " | ".join(f"{m:.3f}" for m in measured)
        print(f"| {name} | {serial_s:.3f} | {cells} |")
    column = names.to_numpy()
    for label, threshold in (("one string at a time", 10**18), ("one buffer", default)):
        _pickling.STRINGS_AS_TEXT_FROM = threshold
        seconds = best_of(repeat, lambda: pickle.loads(_pickling.dumps_plain(column)))
        print(f"pickle + unpickle of {rows:,} strings, {label}: {seconds:.3f} s")
    _pickling.STRINGS_AS_TEXT_FROM = default
    arrow_cases(texts, names, repeat)
    jp.shutdown()


def arrow_cases(texts: list[str], python_backed: pd.Series, repeat: int) -> None:
    """``Series.map`` and pickling over Arrow-backed text, beside Python-backed ``str``."""
    try:
        import pyarrow as pa
    except ImportError:
        print("Arrow cases: skipped (pyarrow is not installed)")
        return
    columns = {
        "str, Python-backed": python_backed,
        "str, Arrow-backed (pandas 3 default with pyarrow)": pd.Series(
            texts, dtype=pd.StringDtype("pyarrow", na_value=np.nan)),
        "ArrowDtype(pa.string())": pd.Series(texts, dtype=pd.ArrowDtype(pa.string())),
    }
    print(f"Arrow cases, {len(texts):,} strings, pyarrow {pa.__version__} (median seconds)")
    print("| column | serial map | map, workers | map, as shipped | pickle + unpickle "
          "| segment write + read | kernel CPU, out and back |")
    print("|---|---|---|---|---|---|---|")
    for label, column in columns.items():
        expected = column.map(shout)
        serial_s = best_of(repeat, lambda c=column: c.map(shout))
        measured = []
        for forced in (True, False):
            def run(c=column, f=forced):
                return jp.map(c, shout, jobs=2, progress=False, inline_fallback=not f)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pd.testing.assert_series_equal(run(), expected)  # warm, and checked
                measured.append(best_of(repeat, run))
        trip = best_of(repeat, lambda c=column: pickle.loads(_pickling.dumps_plain(c)))
        # What a large partition costs the sender and the receiver through a segment;
        # "-" where it stays in the pipe (Python-backed text).
        probe = _transport.pack(column)
        segment = "-"
        if probe is not None:
            _transport.unpack(probe)
            trip_s = best_of(repeat, lambda c=column: _transport.unpack(_transport.pack(c)))
            segment = f"{trip_s:.3f}"
        kernel_cpu = _kernel_cpu(column, repeat)
        print(f"| {label} | {serial_s:.3f} | {measured[0]:.3f} | {measured[1]:.3f} "
              f"| {trip:.3f} | {segment} | {kernel_cpu:.3f} |")


def _as_is(part: pd.Series) -> pd.Series:
    return part


def _kernel_cpu(column: pd.Series, repeat: int) -> float:
    """The kernel process's CPU seconds (median) to send ``column`` to the workers in 8
    partitions and take it back unchanged."""
    def run() -> None:
        jp.map_partitions(column, _as_is, jobs=2, partitions=8, progress=False,
                          inline_fallback=False)
    run()  # warm
    return best_of(max(repeat, 3), run, clock=time.process_time)



if __name__ == "__main__":
    main()
