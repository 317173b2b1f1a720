"""Inputs beyond one in-memory frame: chunked readers, globs, task lists, and ``reduce=``.

Every result is compared with the serial loop a user would have written.
"""

from __future__ import annotations

import operator
import os
import random
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par.errors import PartialResultWarning

FORK = {"backend": "processes", "start_method": "fork", "jobs": 2, "progress": False}
BACKENDS = {
    "fork": FORK,
    "threads": {"backend": "threads", "jobs": 3, "progress": False},
    "inline": {"backend": "inline", "jobs": 1, "progress": False},
}


@pytest.fixture(params=list(BACKENDS))
def kw(request) -> dict:
    return BACKENDS[request.param]


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 1_003
    return pd.DataFrame({"id": np.arange(n), "v": rng.normal(size=n).round(6),
                         "g": rng.choice(["a", "b", "c"], n)})


def summarize(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.groupby("g").agg(n=("v", "size"), total=("v", "sum"))


def serial_chunks(make_reader) -> list[pd.DataFrame]:
    return [summarize(chunk) for chunk in make_reader()]


# -- chunked readers -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["csv", "table", "jsonl"])
def test_chunked_readers_match_the_serial_chunked_loop(tmp_path, table, kind, kw):
    if kind == "jsonl":
        path = tmp_path / "t.jsonl"
        table.to_json(path, orient="records", lines=True)

        def make():
            return pd.read_json(path, lines=True, chunksize=97)
    else:
        path = tmp_path / "t.txt"
        table.to_csv(path, index=False, sep="," if kind == "csv" else "\t")
        reader = pd.read_csv if kind == "csv" else pd.read_table

        def make():
            return reader(path, chunksize=97)

    got = jp.map_partitions(make(), summarize, **kw)
    pd.testing.assert_frame_equal(got, pd.concat(serial_chunks(make)))


def test_reduce_folds_in_chunk_order(tmp_path, table):
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    total = jp.map_partitions(pd.read_csv(path, chunksize=50), len, reduce=operator.add, **FORK)
    assert total == len(table)

    def folded(acc, part):
        return acc.add(part, fill_value=0)

    got = jp.map_partitions(pd.read_csv(path, chunksize=50), summarize, reduce=folded, **FORK)
    want = None
    for part in serial_chunks(lambda: pd.read_csv(path, chunksize=50)):
        want = part if want is None else folded(want, part)
    pd.testing.assert_frame_equal(got, want)


def _first_ids_slowly(chunk: pd.DataFrame) -> list[int]:
    time.sleep(random.random() / 50)  # finish out of order
    return [int(chunk["id"].iloc[0])]


def test_non_commutative_reduce_keeps_input_order(table):
    chunks = (table.iloc[i:i + 40] for i in range(0, len(table), 40))
    got = jp.map_partitions(chunks, _first_ids_slowly, reduce=operator.add, **FORK)
    assert got == list(range(0, len(table), 40))


def test_reduce_of_nothing_is_none_and_skipped_partitions_are_left_out():
    assert jp.map_partitions(iter([]), len, reduce=operator.add, **FORK) is None

    def fails_on_three(part):
        if part == [3]:
            msg = "three"
            raise ValueError(msg)
        return part

    with pytest.warns(PartialResultWarning, match="1 partition"):
        got = jp.map_partitions(list(range(8)), fails_on_three, reduce=operator.add,
                                partitions=8, on_error="skip", **FORK)
    assert got == [0, 1, 2, 4, 5, 6, 7]


def _note_done(chunk: pd.DataFrame, folder: str) -> int:
    time.sleep(0.01)
    # Written before the result is sent, so the parent never sees fewer done than it knows.
    Path(folder, str(int(chunk["id"].iloc[0]))).touch()
    return len(chunk)


def test_chunks_in_flight_are_bounded_by_the_workers(tmp_path):
    done = tmp_path / "done"
    done.mkdir()
    ahead: list[int] = []

    def source():
        for i in range(60):
            ahead.append(i - len(os.listdir(done)))  # pulled but not finished, before chunk i
            yield pd.DataFrame({"id": [i] * 5})

    for options in (FORK, {"backend": "threads", "jobs": 2, "progress": False}):
        ahead.clear()
        total = jp.map_partitions(source(), _note_done, str(done), reduce=operator.add,
                                  **options)
        assert total == 300
        # A reader that was read ahead would show dozens here; the engine reads a chunk
        # only when one of the 2 workers is free.
        assert max(ahead) <= 2
        for marker in done.iterdir():
            marker.unlink()


# -- files and globs -------------------------------------------------------------------
@pytest.fixture
def csv_dir(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    for i in range(5):
        pd.DataFrame({"x": np.arange(i * 10, i * 10 + 10), "y": rng.normal(size=10)}).to_csv(
            tmp_path / f"part-{i}.csv", index=False)
    return tmp_path


def tag_with_file(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(file=os.path.basename(df.attrs["path"]), twice=df["y"] * 2)


def test_glob_pattern_one_file_per_task_with_its_name(csv_dir, kw):
    got = jp.map_partitions(str(csv_dir / "*.csv"), tag_with_file, **kw)
    paths = sorted(csv_dir.glob("*.csv"))
    want = pd.concat([pd.read_csv(p).assign(file=p.name, twice=lambda d: d["y"] * 2)
                      for p in paths])
    pd.testing.assert_frame_equal(got, want)


def test_files_reader_options_compression_paths_and_lists(tmp_path):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    for i in range(3):
        frame.assign(a=frame["a"] + i).to_csv(tmp_path / f"f{i}.csv.gz", sep=";", index=False)
        frame.to_json(tmp_path / f"f{i}.jsonl", orient="records", lines=True)

    sums = jp.map_partitions(jp.files(tmp_path / "*.csv.gz", sep=";"),
                             lambda d: int(d["a"].sum()), **FORK)
    assert sums == [6, 9, 12]

    records = jp.map_partitions(Path(tmp_path, "*.jsonl"), lambda d: d, **FORK)
    pd.testing.assert_frame_equal(records, pd.concat([frame] * 3))

    paths = sorted(str(p) for p in tmp_path.glob("*.jsonl"))
    sizes = jp.map_partitions(jp.files(paths, read=None), os.path.getsize, **FORK)
    assert sizes == [os.path.getsize(p) for p in paths]

    lines = jp.map_partitions(jp.files(paths[0], read=lambda p: Path(p).read_text().split()),
                              len, **FORK)
    assert lines == [3]


def test_bad_globs_say_what_is_wrong(tmp_path):
    with pytest.raises(jp.UsageError, match="no file matches"):
        jp.map_partitions(str(tmp_path / "*.csv"), len, **FORK)
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.jsonl").write_text('{"x": 1}\n')
    (tmp_path / "c.dat").write_text("1\n")
    with pytest.raises(jp.UsageError, match="several kinds"):
        jp.map_partitions(str(tmp_path / "*.*[lv]"), len, **FORK)
    with pytest.raises(jp.UsageError, match=r"no reader for 'c\.dat'"):
        jp.map_partitions(str(tmp_path / "*.dat"), len, **FORK)
    with pytest.raises(jp.UsageError, match="do not exist"):
        jp.files([tmp_path / "a.csv", tmp_path / "missing.csv"])
    with pytest.raises(jp.UsageError, match="read must be"):
        jp.files(tmp_path / "a.csv", read="csv")


# -- task lists ------------------------------------------------------------------------
def test_task_list_on_many_threads_keeps_input_order():
    tasks = [{"query_id": i, "sql": f"SELECT * FROM t WHERE id = {i}"} for i in range(128)]
    lock = threading.Lock()
    active, peak = [0], [0]

    def run_query(task):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)  # stands for a database or HTTP round trip
        with lock:
            active[0] -= 1
        return {"query_id": task["query_id"], "length": len(task["sql"])}

    got = jp.map(tasks, run_query, backend="threads", jobs=64, progress=False)
    assert got == [{"query_id": t["query_id"], "length": len(t["sql"])} for t in tasks]
    assert peak[0] >= 8  # the tasks overlapped: many more threads than the 2 cores


@pytest.mark.kernel
def test_task_list_on_threads_in_a_kernel_keeps_later_output_in_its_cell():
    from notebook_runner import outputs_text, run_cells

    nb = run_cells([
        "import jupyter_par as jp\ntasks = [{'id': i} for i in range(32)]",
        "def job(task):\n    print('task', task['id'])\n    return task['id'] * 2\n"
        "jp.map(tasks, job, backend='threads', jobs=16, progress=False)[:4]",
        "print('next cell')",
    ])
    ran = outputs_text(nb.cells[1])
    assert "[0, 2, 4, 6]" in ran
    assert "task 31" in ran
    # The threads' stdout router must pass the kernel's per-cell set_parent() through.
    assert outputs_text(nb.cells[2]) == "next cell\n"


@pytest.mark.slow
@pytest.mark.kernel
def test_demo_notebook_runs():
    from notebook_runner import REPO, run_notebook

    nb = run_notebook(REPO / "demo_notebooks" / "05_files_and_tasks.ipynb", timeout=120)
    assert "shared-memory segments left: []" in "".join(
        out.get("text", "") for out in nb.cells[-1].outputs)
