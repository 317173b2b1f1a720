"""Each worker slot's partitions of a run share one input segment (issue 28).

A fresh segment costs the kernel its page allocation besides the copy; the pool writes a
slot's later partitions into the pages of its first (an arena), once the worker let go
of the last one. These tests read where the workers' partitions really live (the file
behind the pages, from /proc/self/maps), that a partition the function keeps is never
written over, and that no segment outlives a run.
"""

from __future__ import annotations

import glob
import itertools
import os

import numpy as np
import pandas as pd
import pytest

import jupyter_par as jp
from jupyter_par.wire import arena
from jupyter_par.wire import shared_memory as transport

pytestmark = pytest.mark.skipif(not (transport.available() and os.path.exists("/proc/self/maps")),
                                reason="no /dev/shm or /proc here")

ROWS = 8 * (transport.MIN_BYTES // 8 + 1000)  # each of 8 partitions above the threshold
FRAME = pd.DataFrame({"a": np.arange(ROWS, dtype="float64"), "b": np.arange(ROWS) * 2})
#: Partitions a worker kept (module state, alive in the worker between its tasks).
KEPT: dict[str, list[pd.DataFrame]] = {}


def _segments() -> list[str]:
    return glob.glob(f"/dev/shm/jupyter_par-{os.getpid()}-*")


def _backing_file(part: pd.DataFrame) -> str:
    """The file whose pages hold the partition's first column (from /proc/self/maps)."""
    address = part["a"].to_numpy().__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return fields[5] if len(fields) > 5 else ""
    return ""


def _where_and_first(part: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"file": [_backing_file(part)], "pid": [os.getpid()],
                         "first": [part["a"].iloc[0]]})


def _keep_and_report(part: pd.DataFrame) -> pd.DataFrame:
    kept = KEPT.setdefault("run", [])
    kept.append(part)  # the function keeps its partition: its pages must not change
    return pd.DataFrame({"file": [_backing_file(part)], "pid": [os.getpid()],
                         "firsts": [[float(p["a"].iloc[0]) for p in kept]],
                         "sums": [[float(p["b"].sum()) for p in kept]]})


def test_a_slots_partitions_share_one_segment_and_none_outlives_the_run(start_method):
    seen = jp.map_partitions(FRAME, _where_and_first, jobs=2, partitions=8, progress=False,
                             inline_fallback=False, start_method=start_method)
    assert _segments() == []
    assert sorted(seen["first"]) == [float(a) for a in np.linspace(0, ROWS, 9).round()[:-1]]
    prefix = f"/dev/shm/jupyter_par-{os.getpid()}-"
    assert all(f.startswith(prefix) for f in seen["file"]), list(seen["file"])
    # 8 partitions on 2 workers: each worker's partitions went into its own arena, a new
    # one only where a partition outgrew it (one row more), not one segment each.
    for _, files in seen.groupby("pid")["file"]:
        assert files.nunique() <= 2, list(files)
    assert seen["file"].nunique() <= 2 * seen["pid"].nunique() < len(seen)
    pd.testing.assert_frame_equal(
        jp.map_partitions(FRAME, lambda p: p * 2, jobs=2, partitions=8, progress=False,
                          inline_fallback=False, start_method=start_method), FRAME * 2)
    assert _segments() == []


def test_a_partition_the_function_keeps_is_never_written_over(start_method):
    jp.shutdown()  # workers with nothing kept from an earlier test
    try:
        seen = jp.map_partitions(FRAME, _keep_and_report, jobs=2, partitions=8,
                                 progress=False, inline_fallback=False,
                                 start_method=start_method)
        assert _segments() == []
        starts = np.linspace(0, ROWS, 9).round().astype(int)
        sums = {float(a): float(FRAME["b"].iloc[a:b].sum()) for a, b in itertools.pairwise(starts)}
        for firsts, kept_sums in zip(seen["firsts"], seen["sums"]):
            # Every partition kept still holds its own rows (a write over it would show a
            # later partition's first value and sum).
            assert firsts == sorted(set(firsts)), firsts
            assert kept_sums == [sums[f] for f in firsts]
        # Each partition kept made its worker report the arena held: never written again.
        assert seen["file"].nunique() == len(seen)
    finally:
        jp.shutdown()
    assert _segments() == []


def test_let_go_says_whether_something_still_refers_to_the_pages():
    frame = pd.DataFrame({"a": np.arange(transport.MIN_BYTES // 8 + 10, dtype="float64")})
    packed, made = arena.pack(frame, None, transport.new_name("test-"))
    assert packed is not None and made is not None and packed.keep
    try:
        data, mapping = transport.unpack_mapped(packed, unlink_after=False)
        pd.testing.assert_frame_equal(data, frame)
        held = data["a"]
        data = None
        assert not arena.let_go(mapping)  # ``held`` is built on the pages
        held = None  # noqa: F841 - the last reference goes
        assert arena.let_go(mapping)
        again, same = arena.pack(frame * 3, made, transport.new_name("test-"))
        assert same is made and made.writes == 2 and again.segment == packed.segment
        pd.testing.assert_frame_equal(transport.unpack(again), frame * 3)
        assert os.path.exists(transport.segment_path(made.name))  # an arena keeps its name
    finally:
        made.release()
    assert not os.path.exists(transport.segment_path(made.name))
