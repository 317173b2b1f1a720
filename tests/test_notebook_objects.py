"""Notebook objects travel faithfully (issue 18): classes, display(), files, Manager proxies,
large globals, and the messages when something cannot travel.

Each test runs one real kernel (nbclient) and checks fork, spawn and forkserver in it, through the
API and the magic; the assertions about the notebook's own objects run as cells there.
"""

from __future__ import annotations

import re

import pytest
from notebook_runner import outputs_text, run_cells

pytestmark = pytest.mark.kernel

METHODS = ("fork", "spawn", "forkserver")
HEAD = "%load_ext jupyter_par\nimport jupyter_par as jp\n"


def _api(method: str) -> str:
    return f"jobs=2, start_method={method!r}, progress=False"


def _magic(method: str) -> str:
    return f"%%parallel --jobs 2 --start {method} --no-progress"


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _error(cell) -> dict:
    return next(o for o in cell.outputs if o.output_type == "error")


CLASSES = HEAD + """\
from dataclasses import dataclass

@dataclass
class Point:
    x: int
    y: int

    def shifted(self, d):
        return Point(self.x + d, self.y + d)

def make(v):
    return Point(v, v * 2).shifted(1)
"""


def test_notebook_classes_travel_and_come_back_as_the_notebooks_own():
    cells = [CLASSES]
    for method in METHODS:
        cells += [
            f"got = jp.map(list(range(6)), make, {_api(method)})\n"
            "assert got == [make(v) for v in range(6)], got\n"
            "assert all(type(p) is Point for p in got), [type(p) for p in got]",
            # The workers are warm now: this class is defined after they started.
            f"@dataclass\nclass Task{method}:\n    i: int\n    name: str\n\n"
            f"tasks = [Task{method}(i, 'x' * i) for i in range(8)]\n"
            f"def run(t):\n    assert isinstance(t, Task{method}), type(t)\n"
            "    return Point(t.i, len(t.name))",
            f"got = jp.map(tasks, run, {_api(method)})\n"
            "assert got == [run(t) for t in tasks], got\n"
            "assert all(type(p) is Point for p in got)",
            f"{_magic(method)} --out done tasks\n"
            f"assert all(isinstance(t, Task{method}) for t in tasks)\n"
            "[Point(t.i, len(t.name)) for t in tasks]",
            "assert done == [Point(t.i, len(t.name)) for t in tasks], done\n"
            "assert all(type(p) is Point for p in done)",
            # Shared objects go the same way (jp.shared, --share).
            "points = [Point(i, i) for i in range(3)]\n"
            "got = jp.map(list(range(3)), lambda i: jp.shared['pts'][i].shifted(1), "
            f"shared={{'pts': points}}, {_api(method)})\n"
            "assert got == [p.shifted(1) for p in points], got\n"
            "assert all(type(p) is Point for p in got)",
            # A class only the body defines comes back by value.
            f"{_magic(method)} --out local tasks\n"
            "class Local:\n    def __init__(self, i):\n        self.i = i\n"
            "[Local(t.i) for t in tasks]",
            "assert [item.i for item in local] == list(range(8))",
        ]
    run_cells(cells, timeout=180)


DISPLAY = HEAD + """\
items = list(range(4))

def shout(v):
    display({"shout": v})
    return v
"""
DISPLAY_BODY = """\
print("before", items[0])
display({"first": items[0]})
from IPython.display import HTML
display(HTML(f"<b>part {items[0]}</b>"))
print("after", items[0])"""


def _flat(cell) -> str:
    """Stream text and displayed bundles of a cell, in the order they were shown."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "display_data":
            data = out.data
            parts.append("<<" + data.get("text/html", data.get("text/plain", "")) + ">>")
    return "".join(parts)


def _in_order(text: str, marks: list[str]) -> None:
    places = [text.find(m) for m in marks]
    assert -1 not in places and places == sorted(places), (marks, places, text)


def test_display_in_a_body_or_function_shows_in_partition_order():
    cells = [DISPLAY,
             # Spawned workers import IPython only for code that displays something.
             f"{_magic('spawn')} --partitions 2 --reduce list --out imported items\n"
             "import sys\n'IPython' in sys.modules",
             "assert imported == [False, False], imported"]
    for method in METHODS:
        cells += [
            f"{_magic(method)} --partitions 2 items\n{DISPLAY_BODY}",
            f"got = jp.map(items, shout, partitions=2, {_api(method)})\n"
            "assert got == items",
        ]
    nb = run_cells(cells, timeout=180)
    for cell in (nb.cells[3], nb.cells[5]):
        _in_order(_flat(cell), ["[partition 0", "before 0", "<<{'first': 0}>>",
                                "<<<b>part 0</b>>>", "after 0", "[partition 1", "before 2",
                                "<<{'first': 2}>>", "<<<b>part 2</b>>>", "after 2"])
    for cell in (nb.cells[4], nb.cells[6]):
        _in_order(_flat(cell), [f"<<{{'shout': {v}}}>>" for v in range(4)])


FILES = HEAD + """\
items = list(range(100))
FH = open("log.txt", "w")
FH.write("header\\n")
FH.flush()
RH = open("log.txt")

def log(v):
    FH.write(f"{v}\\n")
    return v

def first_line(v):
    RH.seek(0)
    return RH.readline()
"""


def test_a_file_open_for_writing_is_never_reopened_in_a_worker(tmp_path):
    cells = [FILES]
    for method in METHODS:
        cells += [
            f"try:\n    jp.map(items, log, {_api(method)})\n"
            "except jp.ShippingError as exc:\n    said = str(exc)\n"
            "else:\n    raise AssertionError('a writable file was shipped')\n"
            "assert \"'FH'\" in said and 'log.txt' in said and 'inside the function' in said, said",
            f"{_magic(method)} items\nFH.write('x')",
            # A file open for reading still travels.
            f"assert jp.map(items[:4], first_line, {_api(method)}) == ['header\\n'] * 4",
        ]
    cells.append("FH.flush()\nassert open('log.txt').read() == 'header\\n', open('log.txt').read()")
    nb = run_cells(cells, timeout=180, allow_errors=True, cwd=str(tmp_path))
    for cell in nb.cells:
        if cell.source.startswith("%%parallel"):
            error = _error(cell)
            assert error.ename == "ShippingError", error
            assert "'FH'" in error.evalue and "inside the" in error.evalue, error.evalue
        else:
            assert not any(o.output_type == "error" for o in cell.outputs), outputs_text(cell)
    assert (tmp_path / "log.txt").read_text() == "header\n"


MANAGERS = HEAD + """\
import multiprocess, multiprocessing
import pandas as pd
items = list(range(6))
m1 = multiprocess.Manager()
d1, ns1 = m1.dict(), m1.Namespace()
ns1.df = pd.DataFrame({"a": [1, 2, 3]})
m2 = multiprocessing.Manager()
d2, ns2 = m2.dict(), m2.Namespace()
ns2.k = 10

def use(v):
    d1[v] = v * v
    d2[v] = -v
    return v + int(ns1.df["a"].sum()) + ns2.k
"""


def test_manager_proxies_work_in_workers_of_both_packages():
    cells = [MANAGERS]
    for method in METHODS:
        cells += [
            f"d1.clear()\nd2.clear()\ngot = jp.map(items, use, {_api(method)})\n"
            "assert got == [v + 16 for v in items], got\n"
            "assert dict(d1) == {v: v * v for v in items}, dict(d1)\n"
            "assert dict(d2) == {v: -v for v in items}, dict(d2)",
            f"{_magic(method)} --reduce list --out sums items\n"
            "ns2.k + ns1.df['a'].sum() + sum(items)",
            "assert sum(sums) == len(sums) * 16 + sum(items), sums",
        ]
    cells += [
        "m2.shutdown()",
        f"try:\n    jp.map(items, use, {_api('spawn')})\n"
        "except jp.ShippingError as exc:\n    said = str(exc)\n"
        "else:\n    raise AssertionError('the proxy of a stopped manager worked')\n"
        "assert 'cannot import' not in said and 'Manager' in said, said",
        "m1.shutdown()",
    ]
    run_cells(cells, timeout=180)


BIG = HEAD + """\
import os
from jupyter_par.wire import shipping
BIG = {i: i * 2 for i in range(300_000)}

def probe(v):
    return BIG[v], shipping.held_loads()

def remember(v):
    BIG[("seen", v)] = True  # grows the worker's copy, as a cache would
    return os.getpid(), len(BIG)
"""


def test_a_large_global_goes_once_to_each_warm_worker_while_unchanged():
    cells = [BIG]
    for method in METHODS:
        call = f"jp.map(list(range(8)), probe, partitions=4, {_api(method)})"
        cells += [
            f"first = {call}\nsecond = {call}\nthird = {call}\n"
            "assert [v for v, _ in third] == [v * 2 for v in range(8)], third\n"
            # A warm worker unpickled the dict at most once over the three calls.
            "assert max(n for _, n in third) <= 1, (first, second, third)",
            f"BIG[3] = -1\nchanged = {call}\nassert changed[3][0] == -1, changed\n"
            "assert max(n for _, n in changed) >= 1\nBIG[3] = 6",
            # What a run added to a worker's copy is gone in the next run, as before.
            f"grow = jp.map(list(range(8)), remember, partitions=8, {_api(method)})\n"
            f"grow = jp.map(list(range(8)), remember, partitions=8, {_api(method)})\n"
            "for pid in {p for p, _ in grow}:\n"
            "    assert min(n for p, n in grow if p == pid) == len(BIG) + 1, grow",
            "jp.shutdown()",
        ]
    run_cells(cells, timeout=240)


MESSAGES = HEAD + """\
import sqlite3
import numpy as np
import pandas as pd
CONN = sqlite3.connect(":memory:")

def query(v):
    return CONN.execute("select ?", (v,)).fetchone()[0]

df = pd.DataFrame({"g": list("abab") * 5, "h": list("xxyy") * 5, "v": range(20)})
"""


def test_messages_are_short_and_right():
    cells = [MESSAGES]
    for method in METHODS:
        cells.append(f"jp.map(list(range(4)), query, {_api(method)})")
    by = "df.groupby(['g', 'h'])['v'].sum()"
    cells += [
        f"%%parallel --jobs 2 --by g, h --no-progress --out spaced df\n{by}",
        f"%%parallel --jobs 2 --by g ,h --no-progress --out spaced2 df\n{by}",
        f"pd.testing.assert_series_equal(spaced, {by})\n"
        f"pd.testing.assert_series_equal(spaced2, {by})",
        # Progress drawn as a widget: its saved text says how the run ended.
        "%%parallel --jobs 2 --reduce sum --out shown df\ndf['v'].sum()",
    ]
    nb = run_cells(cells, timeout=180, allow_errors=True)
    n = len(METHODS)
    for cell in nb.cells[1:1 + n]:
        error = _error(cell)
        shown = _plain("\n".join(error.traceback))
        assert error.ename == "ShippingError", shown
        assert "'CONN'" in shown and "inside the function" in shown, shown
        assert "backend='threads'" not in shown, shown
        assert len(shown.splitlines()) <= 20, shown
    for cell in nb.cells[1 + n:4 + n]:
        assert not any(o.output_type == "error" for o in cell.outputs), outputs_text(cell)
    views = [o for o in nb.cells[4 + n].outputs if o.output_type == "display_data"
             and "application/vnd.jupyter.widget-view+json" in o.data]
    assert views, nb.cells[4 + n].outputs
    text = views[-1].data["text/plain"]
    assert "done" in text and "running" not in text, text


TEXT = HEAD + """\
import warnings
import numpy as np
import pandas as pd
from jupyter_par.wire import pickling as _pickling
from jupyter_par.errors import InlineFallbackWarning

# Python-backed text (object), as without pyarrow: Arrow-backed text is cheap to share
# (its buffers travel as they are), so the fallback below would not be taken for it.
table = pd.DataFrame({"name": pd.Series([f"customer-{i:07d}" for i in range(1_000_000)],
                                        dtype=object),
                      "value": np.arange(1_000_000, dtype=float)})
small = pd.DataFrame({"k": np.arange(0, 1_000_000, 1000)})
names = pd.Series([f"name {i}" if i % 9 else None for i in range(50_000)], dtype=object)

def look(row):
    return len(jp.shared["table"]["name"].iat[row["k"]]) + jp.shared["table"]["value"].iat[row["k"]]

def shout(n):
    return n if n is None else n.upper() + "\\0"
"""


def test_text_travels_as_one_buffer_and_a_cheap_shared_lookup_stays_in_the_kernel():
    """Issue 18, item 7, in a real kernel under every start method: text columns come back
    exact through the workers (one buffer each way), and a cheap lookup into a large
    shared text table runs in the kernel instead of writing the table for the workers."""
    cells = [TEXT]
    for method in METHODS:
        cells += [
            f"got = jp.map(names, shout, inline_fallback=False, {_api(method)})\n"
            "pd.testing.assert_series_equal(got, names.map(shout))\n"
            "assert [type(v) for v in got] == [type(v) for v in names.map(shout)]",
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            f"    got = jp.apply(small, look, axis=1, shared={{'table': table}}, {_api(method)})\n"
            "expected = small.apply(lambda r: len(table['name'].iat[r['k']]) "
            "+ table['value'].iat[r['k']], axis=1)\n"
            "pd.testing.assert_series_equal(got, expected)\n"
            "assert any(w.category is InlineFallbackWarning and 'shared objects' in "
            "str(w.message) for w in seen), [str(w.message) for w in seen]",
            f"got = jp.apply(small, look, axis=1, shared={{'table': table}}, "
            f"inline_fallback=False, {_api(method)})\n"
            "pd.testing.assert_series_equal(got, expected)",
        ]
    run_cells(cells)  # raises on the first cell that fails
