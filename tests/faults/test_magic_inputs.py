"""Bad and awkward input to ``%%parallel`` (in-process shell): one clear line, nothing changed.

The magic's own suite covers the flags one by one; this adds what the fault suite
asks for on top: out-of-range option values, empty frames (which must give what the
serial cell gives), a generator TARGET (refused: it has no length to plan with), and
a malformed file read in chunks that breaks halfway, after which no worker may be
left busy and no variable changed.
"""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from pool_checks import busy_workers

pytestmark = pytest.mark.timeout(60)
FLAGS = "--jobs 2 --start fork --no-progress"


@pytest.fixture(scope="module")
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_par")
    return ip


@pytest.fixture
def ns(shell):
    shell.run_cell(textwrap.dedent("""
        import time
        import numpy as np, pandas as pd
        df = pd.DataFrame({"a": np.arange(12), "k": list("xyz") * 4})
        empty = df.iloc[0:0]
        def slow_len(part):
            time.sleep(0.05)
            return len(part)
    """), store_history=False).raise_error()
    return shell.user_ns



def run(shell, line: str, body: str):
    return shell.run_cell_magic("parallel", line, textwrap.dedent(body))


@pytest.mark.parametrize(("line", "message"), [
    ("--jobs -999 df", "jobs=-999 leaves no worker"),
    ("--jobs 2.5 df", "invalid int value: '2.5'"),
    ("--timeout=-1 df", "got -1"),
    ("--partitions=-3 df", "got -3"),
    ("--on-error x df", "invalid choice: 'x'"),
    ("--start x df", "invalid choice: 'x'"),
    ("--axis diagonal df", "invalid choice: 'diagonal'"),
    ("--by k,nope df", "'nope'"),
    ("--out for df", "--out must be a variable name"),
])
def test_bad_flag_values(shell, ns, line, message):
    before = ns["df"].copy(deep=True)
    with pytest.raises(UsageError) as info:
        run(shell, f"{FLAGS} {line}" if "--jobs" not in line else line, "df['b'] = 1\n")
    assert "\n" not in str(info.value).strip(), str(info.value)
    assert message in str(info.value), str(info.value)
    pd.testing.assert_frame_equal(ns["df"], before)
    assert "for" not in ns


def test_empty_frame_gives_what_the_serial_cell_gives(shell, ns):
    body = "empty['b'] = empty['a'] * 2\n"
    serial = {"empty": ns["empty"].copy()}
    exec(body, {}, serial)
    run(shell, f"{FLAGS} empty", body)
    pd.testing.assert_frame_equal(ns["empty"], serial["empty"])
    got = run(shell, f"{FLAGS} empty", "empty.apply(lambda r: r['a'] + 1, axis=1)\n")
    pd.testing.assert_series_equal(
        got, ns["empty"].apply(lambda r: r["a"] + 1, axis=1), check_dtype=False)


def test_generator_target_is_refused_in_one_line(shell, ns):
    ns["source"] = (ns["df"].iloc[i:i + 3] for i in range(0, 12, 3))
    before = ns["df"].copy(deep=True)
    with pytest.raises(UsageError, match="TARGET source is a generator") as info:
        run(shell, f"{FLAGS} --out sizes source", "slow_len(source)\n")
    assert "\n" not in str(info.value).strip()
    assert "sizes" not in ns
    pd.testing.assert_frame_equal(ns["df"], before)
    assert run(shell, f"{FLAGS} --reduce sum df", "slow_len(df)\n") == len(ns["df"])


def test_chunked_reader_over_malformed_file(shell, ns, tmp_path):
    path = tmp_path / "broken.csv"
    good = "\n".join(f"{i},{i * 2}" for i in range(20))
    path.write_text(f"a,b\n{good}\n1,2,3,4\n{good}\n")
    ns["reader"] = pd.read_csv(path, chunksize=5)
    try:
        with pytest.raises(pd.errors.ParserError) as info:
            # --reduce list: the per-chunk sizes combine, so the reader's own error is what
            # stops the run (not a refusal at the first chunk).
            run(shell, f"{FLAGS} --reduce list --out sizes reader", "slow_len(reader)\n")
    finally:
        ns.pop("reader").close()
    assert any("raised by the input" in note for note in getattr(info.value, "__notes__", []))
    assert "sizes" not in ns
    assert not busy_workers()
