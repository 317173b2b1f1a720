"""A ``%%parallel`` cell means what it means serially, or says why it cannot (issue 18, 1).

In a real kernel, under fork and spawn: an aggregate without ``--by`` or ``--reduce`` fails
in one line and changes nothing; with ``--by`` or ``--reduce`` it equals the serial value;
a body that changes TARGET and ends in an expression does both.
"""

from __future__ import annotations

import pytest
from notebook_runner import outputs_text, run_cells

pytestmark = pytest.mark.kernel

SETUP = """\
%load_ext jupyter_par
import numpy as np
import pandas as pd
rng = np.random.default_rng(5)
df4 = pd.DataFrame({"a": rng.integers(0, 9, 240), "b": rng.integers(0, 9, 240),
                    "g": rng.choice(["p", "q", "r"], 240)})
before = df4.copy()
serial = df4.copy()
serial["ab"] = serial["a"] * serial["b"]
expected_agg = serial.groupby("g")[["a", "ab"]].sum()
"""

BODY = 'df4["ab"] = df4["a"] * df4["b"]\ndf4.groupby("g")[["a", "ab"]].sum()'


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_aggregates_and_write_back(method):
    flags = f"--jobs 2 --partitions 4 --start {method} --no-progress"
    cells = [
        SETUP,
        f"%%parallel {flags} --out agg df4\n{BODY}",                        # 1: refused
        "assert 'agg' not in globals()\npd.testing.assert_frame_equal(df4, before)",
        f"%%parallel {flags} --by g --out agg df4\n{BODY}",                 # 3: --by
        "pd.testing.assert_frame_equal(agg, expected_agg)\n"
        "pd.testing.assert_frame_equal(df4, serial)",
        "df4 = before.copy()",
        f'%%parallel {flags} --out agg --reduce "lambda parts: pd.concat(parts).groupby(level=0).sum()" df4\n{BODY}',  # noqa: E501
        "pd.testing.assert_frame_equal(agg, expected_agg)\n"
        "pd.testing.assert_frame_equal(df4, serial)",
        f"%%parallel {flags} --reduce sum df4\nint(df4['a'].sum())",
        "assert _ == int(before['a'].sum())",
        f"%%parallel {flags} df4\ndf4.sort_values('a')",                     # 10: refused
        f"%%parallel {flags} --out rows df4\ndf4[df4['a'] > 4]",              # 11: a filter
        "pd.testing.assert_frame_equal(rows, df4[df4['a'] > 4])",
    ]
    nb = run_cells(cells, allow_errors=True, timeout=180)
    refused = outputs_text(nb.cells[1])
    assert "--by" in refused and "--reduce" in refused and "UsageError" in refused
    assert "Traceback" not in refused
    assert "--reduce" in outputs_text(nb.cells[10])
    for index in (2, 3, 4, 6, 7, 8, 9, 11, 12):
        assert "Error" not in outputs_text(nb.cells[index]), (index, outputs_text(nb.cells[index]))


CROSS_ROW_SETUP = """\
%load_ext jupyter_par
import numpy as np
import pandas as pd
df = pd.DataFrame({"x": np.arange(60.0) ** 1.5, "g": list("abc") * 20})
before = df.copy()
parts = np.array_split(np.arange(60), 3)
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_cross_row_bodies_are_refused_or_acknowledged(method):
    """A body needing other rows fails in one line before any worker starts and changes
    nothing; --per-partition gives each partition's own value; --reduce combines heads."""
    flags = f"--jobs 2 --partitions 3 --start {method} --no-progress"
    cells = [
        CROSS_ROW_SETUP,
        f'%%parallel {flags} df\ndf["z"] = df["x"] - df["x"].mean()',            # 1: refused
        "pd.testing.assert_frame_equal(df, before)",
        f'%%parallel {flags} --per-partition df\ndf["z"] = df["x"] - df["x"].mean()',
        "own = pd.concat([before.x.iloc[p] - before.x.iloc[p].mean() for p in parts])\n"
        "pd.testing.assert_series_equal(df.z, own, check_names=False)\n"
        "assert not np.allclose(df.z, before.x - before.x.mean())",
        "df = before.copy()",
        f'%%parallel {flags} --reduce "lambda parts: pd.concat(parts).head(3)" --out top df\n'
        "df.head(3)",
        "pd.testing.assert_frame_equal(top, before.head(3))",
        f"%%parallel {flags} df\ndf.head(3)",                                      # 8: refused
    ]
    nb = run_cells(cells, allow_errors=True, timeout=180)
    for index in (1, 8):
        said = outputs_text(nb.cells[index]).strip()
        assert said.startswith("UsageError: cell line 2: ") and "\n" not in said, said
        assert "sees one partition of df" in said and "--per-partition" in said
    assert 'df["x"].mean()' in outputs_text(nb.cells[1])
    assert "df.head(3)" in outputs_text(nb.cells[8]) and "--reduce" in outputs_text(nb.cells[8])
    for index in (2, 3, 4, 5, 6, 7):
        assert "Error" not in outputs_text(nb.cells[index]), (index, outputs_text(nb.cells[index]))


WINDOW_SETUP = """\
%load_ext jupyter_par
import numpy as np
import pandas as pd
rng = np.random.default_rng(7)
df = pd.DataFrame({"b": rng.normal(size=500), "t": pd.date_range("2024", periods=500,
                                                                 freq="13min")})
before = df.copy()
def f(w):
    return float(w.max() - w.min())
serial = df.copy()
serial["r"] = serial["b"].rolling(50).apply(f)
serial["c"] = serial["b"].rolling(9, center=True).mean()
serial["d"] = serial["b"].diff(3)
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_windowed_bodies_equal_serial(method):
    """rolling(50) and friends run with the rows each partition's windows reach (issue 23):
    the notebook's frame equals the serial run; what no overlap makes exact is refused."""
    flags = f"--jobs 2 --partitions 6 --start {method} --no-progress"
    cells = [
        WINDOW_SETUP,
        f'%%parallel {flags} df\ndf["r"] = df["b"].rolling(50).apply(f)\n'
        'df["c"] = df["b"].rolling(9, center=True).mean()\ndf["d"] = df["b"].diff(3)',
        "pd.testing.assert_frame_equal(df, serial)\n"
        "import jupyter_par as jp\nassert jp.last_run().with_workers",
        f'%%parallel {flags} --overlap 12 --out hourly df\n'
        'df.rolling("2h", on="t")["b"].sum()',                                  # 3: --overlap
        'pd.testing.assert_series_equal(hourly, before.rolling("2h", on="t")["b"].sum())',
        f'%%parallel {flags} df\ndf["e"] = df["b"].expanding().mean()',           # 5: refused
        "assert 'e' not in df.columns",
    ]
    nb = run_cells(cells, allow_errors=True, timeout=240)
    for index in (1, 2, 3, 4, 6):
        assert "Error" not in outputs_text(nb.cells[index]), (index, outputs_text(nb.cells[index]))
    refused = outputs_text(nb.cells[5]).strip()
    assert refused.startswith("UsageError: cell line 2: ") and "expanding()" in refused, refused
