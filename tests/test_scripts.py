"""Scripts and batch notebooks: jupyter_par outside an interactive kernel.

Each backend runs from a plain ``python script.py`` that has no
``if __name__ == "__main__":`` guard, under fork, spawn and forkserver: the result equals
serial pandas, the workers really ran it, the script's body ran once (a spawned or
forkserver worker that re-ran ``__main__`` would print its banner again, or fail to
start), and every socket the script and its children listen on is bound to 127.0.0.1.
A notebook runs as a batch job through papermill.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """\
import multiprocessing, os
import pandas as pd
import psutil
import dask
import jupyter_par as jp

print("BANNER", os.getpid(), flush=True)   # a re-run of this script would print it again
BACKEND, START = {backend!r}, {start!r}
dask.config.set({{"distributed.worker.multiprocessing-method": START}})
WEIGHT = 3

def score(row):                            # defined in the script itself
    return row["a"] * WEIGHT + len(row["s"])

df = pd.DataFrame({{"a": range(40), "s": [f"x{{i}}" for i in range(40)]}})
out = jp.apply(df, score, axis=1, backend=BACKEND, jobs=2, partitions=4,
               start_method=START, progress=False)
pd.testing.assert_series_equal(out, df.apply(score, axis=1))
record = jp.last_run()
print("RAN", record.backend, record.with_workers, flush=True)

# Everything this script and its children listen on (warm workers are still up).
me = psutil.Process()
listening = set()
for proc in [me, *me.children(recursive=True)]:
    try:
        conns = proc.net_connections(kind="inet")
    except psutil.Error:
        continue
    listening.update(c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN)
print("LISTEN", sorted(listening), flush=True)
jp.shutdown()
print("DONE", flush=True)
"""

CASES = [
    ("processes", "fork"), ("processes", "spawn"), ("processes", "forkserver"),
    ("dask", "spawn"), ("dask", "forkserver"),
    ("threads", "spawn"), ("inline", "spawn"),
]


def _run_script(tmp_path: Path, backend: str, start: str) -> str:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(backend=backend, start=start))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "start"), CASES, ids=[f"{b}-{s}" for b, s in CASES])
def test_script_without_main_guard(tmp_path: Path, backend: str, start: str) -> None:
    if backend == "dask":
        pytest.importorskip("distributed")
    out = _run_script(tmp_path, backend, start)
    lines = out.splitlines()
    assert sum(line.startswith("BANNER") for line in lines) == 1, out
    ran = next(line for line in lines if line.startswith("RAN")).split()
    assert ran[1] == backend
    # Workers ran it (processes, Dask, threads); inline runs in the caller.
    assert ran[2] == str(backend != "inline"), out
    listen = next(line for line in lines if line.startswith("LISTEN"))
    addresses = ast.literal_eval(listen.split(" ", 1)[1])
    assert set(addresses) <= {"127.0.0.1"}, out
    if backend == "dask":
        assert addresses == ["127.0.0.1"], out  # the scheduler and workers did listen
    assert lines[-1] == "DONE"


@pytest.mark.slow
@pytest.mark.kernel
def test_notebook_through_papermill(tmp_path: Path) -> None:
    papermill = pytest.importorskip("papermill")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell("jobs = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(textwrap.dedent("""\
            import pandas as pd, jupyter_par as jp
            def double(x):
                return x * 2
            s = pd.Series(range(30))
            out = jp.map(s, double, jobs=jobs, start_method="spawn", progress=False)
            assert out.equals(s.map(double))
            print("workers:", jp.last_run().with_workers, jp.last_run().jobs)""")),
        nbformat.v4.new_code_cell("%load_ext jupyter_par"),
        nbformat.v4.new_code_cell(textwrap.dedent("""\
            %%parallel --jobs 2 --start spawn frame
            frame["b"] = frame["a"].map(double)""")),
        nbformat.v4.new_code_cell(textwrap.dedent("""\
            print("frame:", list(frame["b"]) == [x * 2 for x in range(10)])
            jp.shutdown()""")),
    ]
    nb.cells.insert(3, nbformat.v4.new_code_cell("frame = pd.DataFrame({'a': range(10)})"))
    source = tmp_path / "batch.ipynb"
    done = tmp_path / "batch-out.ipynb"
    nbformat.write(nb, source)
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env_before])])
    try:
        papermill.execute_notebook(str(source), str(done), parameters={"jobs": 2},
                                   kernel_name="python3", cwd=str(tmp_path),
                                   progress_bar=False, execution_timeout=180)
    finally:
        if env_before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_before
    result = nbformat.read(done, as_version=4)
    text = "".join(o.get("text", "") for c in result.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "workers: True 2" in text, text
    assert "frame: True" in text, text
