"""The picklers' rules, without a kernel: files, notebook classes, large globals, --by lists.

The behaviour in real notebooks is in tests/test_notebook_objects.py; these pin down the
pieces it rests on, quickly.
"""

from __future__ import annotations

import pickle

import pytest
from IPython.utils.process import arg_split

import jupyter_par as jp
from jupyter_par.magic import _joined_lists
from jupyter_par.planning import operations
from jupyter_par.wire import pickling as _pickling
from jupyter_par.wire import shipping


@pytest.mark.parametrize("mode", ["w", "a", "x", "r+", "wb", "ab", "w+"])
def test_a_file_open_for_writing_is_refused_and_keeps_its_content(tmp_path, mode):
    path = tmp_path / "log.txt"
    if "a" in mode or "+" in mode:
        path.write_text("header\n")
    with open(path, mode) as handle:
        if "w" in mode or "x" in mode:
            handle.write(b"header\n" if "b" in mode else "header\n")
            handle.flush()

        def log(v):
            handle.write("x")
            return v

        with pytest.raises(jp.ShippingError, match=r"'handle'.*open for writing.*inside the"):
            shipping.dumps_code(operations.ItemMap(log))
        with pytest.raises(jp.ShippingError, match="open for writing"):
            shipping.dumps_data([handle])
    assert path.read_text() == "header\n"


def test_a_file_open_for_reading_still_travels(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("first\nsecond\n")
    with open(path) as handle:
        copy = shipping.loads(shipping.dumps_data([handle]))[0]
        assert copy.read() == "first\nsecond\n"
        copy.close()


def test_sqlite_advice_is_to_connect_inside_the_function():
    import sqlite3

    conn = sqlite3.connect(":memory:")

    def query(v):
        return conn.execute("select ?", (v,)).fetchone()[0]

    with pytest.raises(jp.ShippingError) as info:
        shipping.dumps_code(operations.ItemMap(query))
    said = str(info.value)
    assert "'conn'" in said and "inside the function" in said and "threads" not in said
    conn.close()


def test_a_large_global_travels_apart_by_digest_and_small_ones_inside():
    big = {i: str(i) for i in range(200_000)}
    small = {1: "one"}

    def look(v):
        return big[v] + small[1]

    externals: dict[str, bytes] = {}
    code = shipping.dumps_code(operations.ItemMap(look), externals=externals)
    assert len(externals) == 1 and len(code) < 10_000
    token, data = next(iter(externals.items()))
    assert pickle.loads(data) == big
    _pickling.hold(externals, (token,))
    assert shipping.loads(code).func(7) == "7one"
    # The same content, the same digest: a warm worker needs nothing new.
    again: dict[str, bytes] = {}
    shipping.dumps_code(operations.ItemMap(look), externals=again)
    assert list(again) == [token]
    big[7] = "changed"
    changed: dict[str, bytes] = {}
    shipping.dumps_code(operations.ItemMap(look), externals=changed)
    assert list(changed) != [token]
    # Without a table (Dask), it travels inside the code, still as a fast pickle.
    inline = shipping.dumps_code(operations.ItemMap(look))
    assert shipping.loads(inline).func(7) == "changedone"


def test_plan_hold_keeps_the_runs_globals_and_a_few_recent_ones():
    held: dict[str, int] = {}
    for name in "abcdef":
        held = _pickling.plan_hold(held, {name: b"x" * 10})
    assert list(held) == ["c", "d", "e", "f"]  # HOLD_OBJECTS, oldest dropped first
    held = _pickling.plan_hold(held, {"c": b"x" * 10})
    assert list(held) == ["d", "e", "f", "c"]  # used again: the newest
    huge = _pickling.HOLD_BYTES + 1
    held = _pickling.plan_hold({"old": 10}, {"new": b"x" * huge})
    assert list(held) == ["new"]  # the run's own are kept whatever their size


class Shape:
    def __init__(self, n):
        self.n = n


def test_one_definition_per_class_before_and_after_pickling_an_instance():
    # Pickling an instance caches __slotnames__ on the class; the definition must not
    # change with it, or a worker would hold two classes of one name.
    Shape.__module__ = "__main__"
    try:
        first = _pickling.definition(Shape)
        Shape(1).__reduce_ex__(5)  # what pickling an instance does to its class
        assert _pickling.definition(Shape) == first
    finally:
        Shape.__module__ = __name__


@pytest.mark.parametrize(("line", "expected"), [
    ("--by g, h df", ["--by", "g,h", "df"]),
    ("--by g ,h --jobs 2 df", ["--by", "g,h", "--jobs", "2", "df"]),
    ("--by=g, h df", ["--by=g,h", "df"]),
    ("--share a, b --by g df", ["--share", "a,b", "--by", "g", "df"]),
    ("--by g, --jobs 2 df", ["--by", "g,", "--jobs", "2", "df"]),
    ("--jobs 2 df", ["--jobs", "2", "df"]),
])
def test_comma_lists_in_the_magic_line_may_have_spaces(line, expected):
    assert _joined_lists(arg_split(line, strict=True)) == expected


def test_an_enum_of_the_notebook_is_refused_with_what_to_do():
    import enum

    colour = enum.Enum("Colour", "RED BLUE", module="__main__")

    def paint(v):
        return colour.RED

    with pytest.raises(jp.ShippingError, match=r"'colour'.*enum Colour.*define it in a module"):
        shipping.dumps_code(operations.ItemMap(paint))
