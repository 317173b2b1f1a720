"""Resume (jupyter_par.run.resume, run.cache) and background runs (run.background) in-process.

Each partition's work is counted with one file per row, written by the worker that ran
it: a resumed run must compute exactly the partitions that did not finish, and give
the serial result. The magic and kernel restarts are in tests/test_resume_kernel.py.
"""

from __future__ import annotations

import os
import re
import stat
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par.errors import UsageError
from jupyter_par.run import cache as disk
from jupyter_par.run import resume

ROWS, PARTS = 100, 10
#: A failure in the last partition keeps 9, or 8 when the other worker was still busy.
REUSED = re.compile(r"reused [89] of 10 partitions from the run at \d\d:\d\d; computing [12]")
QUIET = {"jobs": 2, "partitions": PARTS, "inline_fallback": False, "progress": False}


@pytest.fixture(autouse=True)
def _empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    resume.STORE.runs.clear()
    yield
    resume.STORE.runs.clear()


def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(ROWS), "b": np.linspace(0, 1, ROWS)},
                        index=pd.Index([f"r{i}" for i in range(ROWS)], name="row"))


def counting(folder: Path, fail_at: str | None = None, pause: float = 0.0):
    """A row function that leaves one file per row it ran, and fails at ``fail_at``."""
    def score(row):
        if pause:
            time.sleep(pause)
        (folder / str(row.name)).touch()
        if row.name == fail_at:
            raise ValueError(f"bad row {row.name}")
        return row["a"] * 2 + row["b"]
    return score


def serial(df: pd.DataFrame) -> pd.Series:
    return df["a"] * 2 + df["b"]


def ran(folder: Path) -> set[int]:
    """The partitions (10 rows each) that ran at least one row in ``folder``."""
    return {int(name[1:]) // (ROWS // PARTS) for name in os.listdir(folder)}


@pytest.mark.parametrize(("backend", "start_method"), [
    ("processes", "fork"), ("processes", "spawn"), ("processes", "forkserver"),
    ("threads", None), ("inline", None)])
def test_resume_after_a_failure_in_the_last_partition(tmp_path, backend, start_method, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    df = frame()
    options = {**QUIET, "backend": backend, "start_method": start_method
               if backend == "processes" else None}
    with pytest.raises(ValueError, match="bad row r95") as info:
        jp.apply(df, counting(first, fail_at="r95"), axis=1, **options)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    # The other worker may still have held partition 8 when 9 failed: it is not kept.
    kept = int(re.search(r"(\d) of 10 partitions finished and are kept", notes).group(1))
    assert kept in (8, 9)
    assert "--resume" in notes and "resume=True" in notes
    result = jp.apply(df, counting(second), axis=1, resume=True, **options)
    pd.testing.assert_series_equal(result, serial(df))
    assert 9 in ran(second) and len(ran(second)) == PARTS - kept  # only what did not finish
    assert f"reused {kept} of 10 partitions from the run at" in capsys.readouterr().out
    # The run succeeded: nothing is kept any more, a new resume computes everything.
    third = tmp_path / "third"
    third.mkdir()
    jp.apply(df, counting(third), axis=1, resume=True, **options)
    assert ran(third) == set(range(PARTS))


def test_each_api_call_resumes(tmp_path, capsys):
    df, items = frame(), list(range(40))
    first = tmp_path / "f"
    first.mkdir()

    def breaks_last(part):
        if 95 in part["a"].to_numpy():
            raise ValueError("last")
        return part.assign(c=part["a"] + 1)

    with pytest.raises(ValueError):
        df.par.map_partitions(breaks_last, **QUIET)
    fixed = df.par.map_partitions(lambda p: p.assign(c=p["a"] + 1), resume=True, **QUIET)
    pd.testing.assert_frame_equal(fixed, df.assign(c=df["a"] + 1))
    assert REUSED.search(capsys.readouterr().out)

    with pytest.raises(ZeroDivisionError):
        jp.map(df["a"], lambda v: v + 1 if v != 99 else 1 // 0, **QUIET)
    out = jp.map(df["a"], lambda v: v + 1, resume=True, **QUIET)
    pd.testing.assert_series_equal(out, df["a"] + 1)
    assert REUSED.search(capsys.readouterr().out)

    with pytest.raises(KeyError):
        jp.map(items, lambda v: {}[v] if v == 39 else v * 3, **QUIET)
    assert jp.map(items, lambda v: v * 3, resume=True, **QUIET) == [v * 3 for v in items]
    assert REUSED.search(capsys.readouterr().out)

    keyed = df.assign(g=np.arange(ROWS) // 10)

    def total(group):
        if group.name == 9:
            raise ValueError("group 9")
        return group["a"].sum()

    with pytest.raises(ValueError):
        jp.groupby_apply(keyed, "g", total, **QUIET)
    got = jp.groupby_apply(keyed, "g", lambda g: g["a"].sum(), resume=True, **QUIET)
    pd.testing.assert_series_equal(got, keyed.groupby("g").apply(lambda g: g["a"].sum()))
    assert REUSED.search(capsys.readouterr().out)

    # A fold (reduce=) gets the kept results in order too.
    with pytest.raises(ZeroDivisionError):
        jp.map_partitions(df, lambda p: int(p["a"].sum()) if p["a"].max() < 99 else 1 // 0,
                          reduce=lambda a, b: a + b, **QUIET)
    summed = jp.map_partitions(df, lambda p: int(p["a"].sum()), reduce=lambda a, b: a + b,
                               resume=True, **QUIET)
    assert REUSED.search(capsys.readouterr().out)
    assert summed == int(df["a"].sum())


def test_other_data_or_another_cut_runs_everything(tmp_path, capsys):
    df = frame()
    with pytest.raises(ValueError):
        jp.apply(df, counting(tmp_path, fail_at="r95"), axis=1, **QUIET)
    changed = df.assign(a=df["a"] + (df.index == "r3"))
    fresh = tmp_path / "changed"
    fresh.mkdir()
    result = jp.apply(changed, counting(fresh), axis=1, resume=True, **QUIET)
    pd.testing.assert_series_equal(result, serial(changed))
    assert ran(fresh) == set(range(PARTS))
    said = capsys.readouterr().out
    assert "not the data the run at" in said and "partition 0 differs" in said

    with pytest.raises(ValueError):
        jp.apply(df, counting(tmp_path, fail_at="r95"), axis=1, **QUIET)
    recut = tmp_path / "recut"
    recut.mkdir()
    result = jp.apply(df, counting(recut), axis=1, resume=True, **{**QUIET, "partitions": 5})
    pd.testing.assert_series_equal(result, serial(df))
    assert len(os.listdir(recut)) == ROWS
    assert "cut its input into 10 partition(s), this one into 5" in capsys.readouterr().out


def test_digest_is_by_content_not_identity():
    df = frame()
    assert resume.digest(df) == resume.digest(df.copy(deep=True))
    assert resume.digest(df) != resume.digest(df.rename(columns={"a": "x"}))
    assert resume.digest(df) != resume.digest(df.astype({"a": "float64"}))
    assert resume.digest(df["a"]) != resume.digest(df["a"].rename("z"))
    lists = pd.DataFrame({"x": [[1], [2]]})  # unhashable cells: digested by pickle
    assert resume.digest(lists) == resume.digest(lists.copy())
    assert resume.digest([{"a": 1}]) != resume.digest([{"a": 2}])
    kinds = pd.DataFrame({
        "cat": pd.Categorical(["x", "y", "x"]), "n": pd.array([1, None, 3], dtype="Int64"),
        "t": pd.to_datetime(["2024-01-01", "2024-01-02", None]), "s": ["a", None, "c"],
        "mixed": ["a", 1, 2.5]}, index=pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)]))
    assert resume.digest(kinds) == resume.digest(kinds.copy(deep=True))
    for column, value in [("cat", "y"), ("n", 7), ("s", "z"), ("mixed", "b")]:
        changed = kinds.copy()
        changed.loc[("b", 1), column] = value
        assert resume.digest(changed) != resume.digest(kinds), column
    assert resume.digest(kinds) != resume.digest(kinds.set_axis([("a", 1), ("a", 3), ("b", 1)]))
    # Equal strings that are distinct objects (read twice) digest the same.
    assert resume.digest(pd.Series(["ab" + str(i) for i in range(3)])) == resume.digest(
        pd.Series([f"ab{i}" for i in range(3)]))


def test_kept_partitions_beyond_the_budget_spill_to_a_private_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(resume, "MEMORY_SHARE", 0.0)
    df = frame()
    with pytest.raises(ValueError):
        jp.apply(df, counting(tmp_path, fail_at="r95"), axis=1, **QUIET)
    kept = resume.STORE.get(resume.run_key("apply(score, axis=1)"))
    assert kept is not None and len(kept.spilled) in (8, 9) and not kept.results
    folder = Path(next(iter(kept.spilled.values()))).parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    result = jp.apply(df, counting(tmp_path), axis=1, resume=True, **QUIET)
    pd.testing.assert_series_equal(result, serial(df))
    assert not any(Path(p).exists() for p in kept.spilled.values())  # dropped once done


def test_cache_survives_a_new_store_and_refuses_what_it_cannot_trust(tmp_path, capsys):
    df, cache = frame(), tmp_path / "cache"
    with pytest.raises(ValueError):
        jp.apply(df, counting(tmp_path, fail_at="r95"), axis=1, cache=str(cache), **QUIET)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    secret = disk.secret_path()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert not secret.is_relative_to(cache)
    resume.STORE.runs.clear()  # what a kernel restart leaves: only the disk
    entries = sorted(cache.glob("*.part"))
    assert len(entries) in (8, 9)
    # One entry corrupted, one replaced by a pickle signed with another key.
    entries[0].write_bytes(entries[0].read_bytes()[:-4] + b"oops")
    payload = disk.dumps("not yours")
    entries[1].write_bytes(b"JPC1" + b"\0" * 32 + payload)
    again = tmp_path / "again"
    again.mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = jp.apply(df, counting(again), axis=1, cache=str(cache), resume=True, **QUIET)
    pd.testing.assert_series_equal(result, serial(df))
    ignored = [str(w.message) for w in caught if issubclass(w.category, disk.CacheWarning)]
    assert len(ignored) == 2 and all("signature does not match" in m for m in ignored)
    # The two refused entries and those that never finished run again; no more.
    assert len(ran(again)) == PARTS - (len(entries) - 2)
    assert f"reused {len(entries) - 2} of 10 partitions from the cache" in capsys.readouterr().out
    cache.chmod(0o777)
    with pytest.raises(UsageError, match="can be written by others"):
        jp.apply(df, counting(again), axis=1, cache=str(cache), resume=True, **QUIET)


def test_background_handle_and_cancel_then_resume(tmp_path, start_method):
    df = frame()
    started = time.monotonic()
    handle = jp.apply(df, counting(tmp_path, pause=0.001), axis=1, background=True,
                      start_method=start_method, **QUIET)
    assert time.monotonic() - started < 0.5
    assert handle in jp.runs()
    pd.testing.assert_series_equal(handle.result(timeout=120), serial(df))
    assert handle.done() and handle.exception() is None
    assert handle.progress is not None and handle.progress.state == "done"

    slow, rest = tmp_path / "slow", tmp_path / "rest"
    slow.mkdir(), rest.mkdir()
    handle = jp.apply(df, counting(slow, pause=0.2), axis=1, background=True,
                      start_method=start_method, **QUIET)
    deadline = time.monotonic() + 60
    while not (handle.progress and handle.progress.partitions_done >= 2):
        assert time.monotonic() < deadline and not handle.done()
        time.sleep(0.02)
    assert handle.cancel()
    assert isinstance(handle.exception(timeout=30), jp.CancelledError)
    result = jp.apply(df, counting(rest), axis=1, resume=True, start_method=start_method,
                      **QUIET)
    pd.testing.assert_series_equal(result, serial(df))
    kept = handle.progress.partitions_done  # the final record: partitions that finished
    assert kept >= 2
    assert len(ran(rest)) == PARTS - kept
    assert jp.wait(timeout=10) == jp.runs()


class _ExplainingSink:
    """A progress sink with the view's ``explain``: what the view shows under the bars."""

    def __init__(self) -> None:
        self.explained: list[str] = []
        self.last = None

    def update(self, progress):
        self.last = progress

    def close(self, progress):
        self.last = progress

    def explain(self, text):
        self.explained.append(text)


def test_background_cell_leaves_a_rebound_target_alone_and_the_view_says_why(shell, tmp_path):
    df = frame()
    gate = tmp_path / "go"
    shell.user_ns.update(df=df, gate=str(gate), os=os, time=time)
    sink = _ExplainingSink()
    jp.set_defaults(progress=sink)
    try:
        body = ("while not os.path.exists(gate):\n    time.sleep(0.01)\n"
                "df['s'] = df['a'] * 2 + df['b']")
        handle = shell.run_cell_magic("parallel", "--background --jobs 2 --partitions 4 df", body)
        assert isinstance(handle, jp.BackgroundRun) and not handle.done()
        mine = shell.user_ns["df"] = df.copy()  # rebound while the run goes
        gate.touch()
        expected = df.assign(s=serial(df))
        pd.testing.assert_frame_equal(handle.result(timeout=60), expected)
        assert shell.user_ns["df"] is mine and "s" not in mine
        assert "df was rebound" in handle.note and "df was rebound" in sink.explained[-1]

        # Left alone, TARGET is written in one step at the end.
        gate.unlink()
        handle = shell.run_cell_magic("parallel", "--background --jobs 2 --partitions 4 df", body)
        assert "s" not in shell.user_ns["df"]
        gate.touch()
        handle.result(timeout=60)
        assert handle.note is None
        pd.testing.assert_frame_equal(shell.user_ns["df"], mine.assign(s=serial(mine)))
    finally:
        jp.set_defaults(progress=None)


def test_magic_cache_and_resume_flags(shell, tmp_path, capsys):
    from IPython.core.error import UsageError as IPythonUsageError

    df, cache, count = frame(), tmp_path / "cache", tmp_path / "count"
    count.mkdir()
    shell.user_ns.update(df=df, score=counting(count, fail_at="r95"))
    flags = f"--jobs 2 --partitions {PARTS} --no-progress --cache {cache} df"
    body = "df['s'] = df.apply(score, axis=1)"
    with pytest.raises(ValueError, match="bad row r95") as info:
        shell.run_cell_magic("parallel", flags, body)
    assert "--resume" in "\n".join(info.value.__notes__)
    assert "s" not in shell.user_ns["df"]
    resume.STORE.runs.clear()  # as after a kernel restart: only the disk remembers
    again = tmp_path / "again"
    again.mkdir()
    shell.user_ns["score"] = counting(again)
    capsys.readouterr()
    shell.run_cell_magic("parallel", f"--resume {flags}", body)
    said = capsys.readouterr().out
    kept = int(re.search(r"reused (\d+) of 10 partitions from the cache", said).group(1))
    assert kept in (8, 9) and len(ran(again)) == PARTS - kept
    pd.testing.assert_frame_equal(shell.user_ns["df"], df.assign(s=serial(df)))
    cache.chmod(0o775)
    with pytest.raises(IPythonUsageError, match="can be written by others"):
        shell.run_cell_magic("parallel", f"--resume {flags}", body)


def test_a_stream_is_neither_kept_nor_cached_and_says_so(tmp_path, capsys):
    path = tmp_path / "rows.csv"
    frame().to_csv(path)
    with pytest.raises(ZeroDivisionError):
        jp.map_partitions(pd.read_csv(path, chunksize=30),
                          lambda part: 1 // 0 if part.index[0] >= 90 else len(part), **QUIET)
    assert not resume.STORE.runs  # keeping a stream's results would defeat streaming
    got = jp.map_partitions(pd.read_csv(path, chunksize=30), len, resume=True,
                            cache=str(tmp_path / "cache"), **QUIET)
    assert got == [30, 30, 30, 10]
    assert "resume needs an input cut in advance" in capsys.readouterr().out
    jp.map_partitions(pd.read_csv(path, chunksize=30), len, cache=str(tmp_path / "c2"), **QUIET)
    assert "nothing is cached" in capsys.readouterr().out
    assert not (tmp_path / "c2").exists()
