"""A Dask cluster across "hosts": what the API and the magic promise, over a real network.

Four hosts made of Linux namespaces on this machine (:mod:`netns_hosts`): a
scheduler, two worker hosts running ``dask worker --nworkers 2 --nthreads 1``, and
the notebook kernel, a real IPython kernel driven over ZeroMQ. Each host has its own
address in 10.231.0.0/24 (reachable only from these namespaces), its own ``/tmp``
and ``/dev/shm``, and its own host name; ``/var/tmp`` plays a network drive every
host mounts. Nothing a worker needs may come through a shortcut of the one machine:
functions are defined in the notebook, shared objects travel in band, files are
read where they are.

Tests run in order; the last ones break the cluster (a worker host killed, its
network cable pulled, the scheduler gone) and put it back. They need root for the
namespaces and skip with one line where they cannot be made.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

import netns_hosts
from notebook_runner import REPO, kernel_env

from jupyter_par.backends.dask import VERSIONED, version_differences

WHY_NOT = netns_hosts.why_not()


def hosts_needed(test: Any) -> Any:
    """A test on the namespace hosts: a real kernel, slow, skipped where hosts cannot be."""
    skip = pytest.mark.skipif(WHY_NOT is not None,
                              reason=f"cross-host Dask tests skipped: {WHY_NOT}")
    return pytest.mark.slow(pytest.mark.kernel(skip(test)))

pytestmark = [pytest.mark.dask]

HOSTS = {"sched": 1, "w1": 11, "w2": 12, "kern": 100}
PORT = 8786
DASK = str(Path(sys.executable).parent / "dask")
WORKERS = 4


@dataclass
class Result:
    """What one cell did: its status, text output and error."""

    status: str
    out: str
    ename: str = ""
    evalue: str = ""
    traceback: str = ""

    def json(self, key: str) -> Any:
        """The value the cell printed as ``key=<json>`` on a line of its own."""
        for line in self.out.splitlines():
            if line.startswith(f"{key}="):
                return json.loads(line[len(key) + 1:])
        msg = f"the cell printed no {key}=...; it printed:\n{self.out}\n{self.traceback}"
        raise AssertionError(msg)


class Kernel:
    """A real IPython kernel on the kernel host, reached through Unix sockets (ipc)."""

    def __init__(self, hosts: netns_hosts.Hosts, folder: Path) -> None:
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        specs = folder / "kernels" / "jp-netns"
        specs.mkdir(parents=True)
        argv = hosts.command("kern", [sys.executable, "-m", "ipykernel_launcher", "-f",
                                      "{connection_file}"], pid_namespace=False)
        (specs / "kernel.json").write_text(json.dumps({
            "argv": argv, "display_name": "jupyter_par on the kernel host", "language": "python",
            "interrupt_mode": "signal"}))
        self.manager = KernelManager(
            kernel_name="jp-netns", transport="ipc", ip=str(folder / "kernel-ipc"),
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder / "kernels")]),
        )
        self.manager.connection_file = str(folder / "kernel-connection.json")
        env = {**kernel_env(), "PYTHONPATH": str(REPO), "JP_HOST": "jp-kern",
               "JP_REPO": netns_hosts.REPO_ROOT}
        self.manager.start_kernel(env=env, cwd=str(folder))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=90)

    def start(self, code: str) -> str:
        return self.client.execute(code, store_history=False)

    def wait(self, msg_id: str, timeout: float = 180) -> Result:
        """Collect the output of cell ``msg_id`` until it is done."""
        out, error = [], {}
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"the cell did not finish within {timeout:g} s; it printed:\n{''.join(out)}"
                raise AssertionError(msg)
            try:
                msg = self.client.get_iopub_msg(timeout=min(left, 5))
            except Exception:  # noqa: BLE001 - queue.Empty: keep waiting
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                error = content
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply = self.client.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.client.get_shell_msg(timeout=30)
        return Result(reply["content"]["status"], "".join(out), error.get("ename", ""),
                      error.get("evalue", ""), "\n".join(error.get("traceback", [])))

    def run(self, code: str, timeout: float = 180) -> Result:
        return self.wait(self.start(code), timeout)

    def ok(self, code: str, timeout: float = 180) -> Result:
        """Run ``code`` and fail the test, showing its error, unless it succeeded."""
        result = self.run(code, timeout)
        assert result.status == "ok", f"{result.ename}: {result.evalue}\n{result.out}\n" \
                                      f"{result.traceback}"
        return result

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@dataclass
class Cluster:
    hosts: netns_hosts.Hosts
    kernel: Kernel
    folder: Path  # on the "network drive": every host sees it at the same path
    address: str

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def start_scheduler(self) -> None:
        self.hosts.start("sched", [DASK, "scheduler", "--host", self.hosts.address("sched"),
                                   "--port", str(PORT), "--no-dashboard", "--idle-timeout",
                                   "900"], env=_env(), log=self.log("sched"))

    def start_workers(self, host: str) -> None:
        # Two single-threaded worker processes (with their nannies) per host; without a
        # scheduler for 60 s they stop by themselves.
        self.hosts.start(host, [DASK, "worker", self.address, "--host", self.hosts.address(host),
                                "--nworkers", "2", "--nthreads", "1", "--no-dashboard",
                                "--death-timeout", "60"], env=_env(), log=self.log(host))

    def wait_for_workers(self, n: int = WORKERS) -> None:
        """(Re)connect the kernel's control client and wait for ``n`` workers."""
        self.kernel.ok(f"ctl = control({n})", timeout=150)

    def mend(self) -> None:
        """Put back what a test before broke: links up, every host running."""
        for host in ("w1", "w2", "sched"):
            self.hosts.link(host, up=True)
        if not self.hosts.pids("sched"):
            self.start_scheduler()
        for host in ("w1", "w2"):
            if not self.hosts.pids(host):
                self.start_workers(host)
        self.wait_for_workers()

    def marker(self, name: str) -> Path:
        path = self.folder / name
        path.unlink(missing_ok=True)
        return path


def _env() -> dict[str, str]:
    """Workers get jupyter_par (this checkout) and nothing of the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env["PYTHONPATH"] = str(REPO)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _wait_for(path: Path, kernel: Kernel, msg: str, lines: int = 1,
              within: float = 90) -> None:
    """Wait until the running cell ``msg`` wrote ``lines`` lines to ``path``."""
    deadline = time.monotonic() + within
    while not (path.exists() and len(path.read_text().split()) >= lines):
        if time.monotonic() > deadline:
            kernel.manager.interrupt_kernel()
            result = kernel.wait(msg, timeout=60)
            pytest.fail(f"{path.name} never appeared; the cell printed:\n{result.out}\n"
                        f"{result.ename}: {result.evalue}")
        time.sleep(0.05)


# What every cell may use: the kernel's own notebook, as a user would have it.
SETUP = """
import json, os, socket, threading, time, warnings
import numpy as np, pandas as pd, distributed
import jupyter_par as jp
from jupyter_par.planning import operations
from jupyter_par.planning.plan import Plan
from jupyter_par.run import pipeline
from jupyter_par.wire import shared_memory as transport
from jupyter_par.run.options import resolve
from jupyter_par.planning.partition import combine, split_rows
ADDR = {address!r}
SHARED = {folder!r}
RUN = dict(backend="dask", scheduler=ADDR, jobs=4, inline_fallback=False)
ctl = None

def control(n):
    global ctl
    if ctl is not None:
        ctl.close()
    ctl = distributed.Client(ADDR, timeout=60, set_as_default=False)
    ctl.wait_for_workers(n, timeout=120)
    # Workers cut off by a test before stay listed until the scheduler gives up on them
    # (a minute): wait for n that are heard from.
    deadline = time.monotonic() + 120
    while True:
        seen = [w["last_seen"] for w in ctl.scheduler_info(n_workers=-1)["workers"].values()]
        if sum(max(seen) - t < 5 for t in seen) >= n:
            return ctl
        assert time.monotonic() < deadline, f"only {{len(seen)}} workers, some silent"
        time.sleep(0.2)

def running_tasks():
    def executing(dask_worker=None):
        return [str(ts.key) for ts in dask_worker.state.executing
                if str(ts.key).startswith("jupyter_par-")]
    return [k for keys in ctl.run(executing).values() for k in keys]

def settle(within=30):
    deadline = time.monotonic() + within
    while running_tasks():
        assert time.monotonic() < deadline, running_tasks()
        time.sleep(0.1)

def mark_when(name, started=4):
    def on_progress(p):
        if sum(w.rows_done > 0 for w in p.workers) >= started:
            open(os.path.join(SHARED, name), "a").write("go\\n")
    return on_progress

RATE = 3
def helper(x):
    return x * RATE
def score(row):
    return helper(row["a"]) + np.sqrt(row["b"])
def slow(row):
    time.sleep(0.05)
    return row["a"]
df = pd.DataFrame({{"a": np.arange(400), "b": np.linspace(0, 1, 400),
                   "k": np.arange(400) % 9}}, index=[f"r{{i}}" for i in range(400)])
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if WHY_NOT is not None:
        pytest.skip(f"cross-host Dask tests skipped: {WHY_NOT}")
    netns_hosts.sweep_stale()
    hosts = netns_hosts.Hosts(HOSTS)
    folder = Path(tempfile.mkdtemp(prefix=f"{hosts.tag}-", dir="/var/tmp"))
    kernel = None
    try:
        hosts.create()
        address = f"tcp://{hosts.address('sched')}:{PORT}"
        made = Cluster(hosts, None, folder, address)  # type: ignore[arg-type]
        made.start_scheduler()
        made.start_workers("w1")
        made.start_workers("w2")
        kernel = made.kernel = Kernel(hosts, folder)
        kernel.ok(SETUP.format(address=address, folder=str(folder)))
        made.wait_for_workers()
        yield made
    finally:
        if kernel is not None:
            kernel.stop()
        hosts.destroy()
        # The hosts' logs stay with pytest's temporary files, for a failure's post-mortem.
        logs = tmp_path_factory.mktemp("host-logs")
        for log in folder.glob("*.log"):
            shutil.copy(log, logs)
        shutil.rmtree(folder, ignore_errors=True)
    # Every process of every host is gone, and so are the namespaces.
    assert not [n for n in netns_hosts._namespaces() if n.startswith(hosts.tag)]


@pytest.fixture
def kernel(cluster) -> Kernel:
    """The kernel, with all four workers up (a test before may have broken some)."""
    cluster.mend()
    return cluster.kernel


# -- the hosts are apart ---------------------------------------------------------------------
@hosts_needed
def test_hosts_share_no_memory_files_or_names(cluster, kernel):
    result = kernel.ok("open('/tmp/only-on-kern', 'w').write('x')\n"
                       "open('/dev/shm/only-on-kern', 'w').write('x')\n"
                       "seen = ctl.run(lambda: (socket.gethostname(), os.listdir('/tmp'),\n"
                       "                        os.listdir('/dev/shm')))\n"
                       "print('seen=' + json.dumps(seen))\n"
                       "print('me=' + json.dumps(socket.gethostname()))")
    seen = result.json("seen")
    assert result.json("me") == "jp-kern"
    assert not Path("/tmp/only-on-kern").exists() and not Path("/dev/shm/only-on-kern").exists()
    by_host = {}
    for address, (name, tmp, shm) in seen.items():
        assert address.startswith(("tcp://10.231.0.11:", "tcp://10.231.0.12:"))
        assert "only-on-kern" not in tmp and "only-on-kern" not in shm
        by_host.setdefault(name, set()).add(address)
    assert set(by_host) == {"jp-w1", "jp-w2"} and all(len(a) == 2 for a in by_host.values())


# -- results equal serial pandas ---------------------------------------------------------------
@hosts_needed
def test_api_results_equal_serial_pandas(kernel):
    result = kernel.ok("""
QUIET = dict(progress=False, **RUN)
def seven(x):
    return x % 7
def sums(g):
    return g[["a", "b"]].sum()
checks = {
    "apply": jp.apply(df, score, axis=1, **QUIET).equals(df.apply(score, axis=1)),
    "map": jp.map(df["a"], seven, **QUIET).equals(df["a"].map(seven)),
    "groupby": jp.groupby_apply(df, "k", sums, **QUIET).equals(df.groupby("k").apply(sums)),
    "columns": jp.apply(df[["a", "b"]], lambda c: c.sum(), **QUIET)
               .equals(df[["a", "b"]].apply(lambda c: c.sum())),
    "list": jp.map(list(range(50)), lambda x: x * x, **QUIET) == [x * x for x in range(50)],
}
print("checks=" + json.dumps(checks))
""")
    assert result.json("checks") == dict.fromkeys(
        ["apply", "map", "groupby", "columns", "list"], True)


@hosts_needed
def test_magic_with_share_on_the_cluster(cluster, kernel):
    kernel.ok("%load_ext jupyter_par")
    kernel.ok("""
rates = pd.Series(np.linspace(0.5, 2.0, 9))
expected = df.assign(s=df.apply(score, axis=1), r=rates[df["k"]].to_numpy() * df["a"])
before = set(os.listdir('/dev/shm'))
mine = df.copy()
""")
    flags = f"--backend dask --scheduler {cluster.address} --jobs 4 --no-progress --share rates"
    kernel.ok(f"""%%parallel {flags} mine
mine["s"] = mine.apply(score, axis=1)
mine["r"] = rates[mine["k"]].to_numpy() * mine["a"]
""")
    result = kernel.ok("""
print("equal=" + json.dumps(bool(mine.equals(expected))))
# Shared objects travelled inside the tasks: no segment here, none on the workers.
print("kernel_shm=" + json.dumps(sorted(f for f in set(os.listdir('/dev/shm')) - before
                                        if f.startswith(transport._PREFIX))))
on_workers = ctl.run(lambda: os.listdir('/dev/shm')).values()
ours = sorted({f for fs in on_workers for f in fs if f.startswith(transport._PREFIX)})
print("worker_shm=" + json.dumps(ours))
""")
    assert result.json("equal") is True
    assert result.json("kernel_shm") == [] and result.json("worker_shm") == []
    # A Client of the user's own (as for TLS) as the session's scheduler, for later cells.
    kernel.ok("mine = df.copy()\nuser_client = distributed.Client(ADDR, set_as_default=False)\n"
              "jp.set_defaults(backend='dask', scheduler=user_client)")
    try:
        kernel.ok("%%parallel --jobs 4 --no-progress mine\nmine['s'] = mine.apply(score, axis=1)")
        check = kernel.ok("print('equal=' + json.dumps(bool(mine['s'].equals(expected['s']))))\n"
                          "print('open=' + json.dumps(user_client.status))")
        assert check.json("equal") is True and check.json("open") == "running"
    finally:
        kernel.ok("jp.set_defaults(backend=None, scheduler=None)\njp.shutdown()\n"
                  "user_client.close()")


@hosts_needed
def test_shared_objects_travel_in_band(kernel):
    result = kernel.ok("""
lookup = pd.Series(np.linspace(0.5, 2.0, 9))
def rated(row):
    return jp.shared["lookup"][row["k"]] * row["a"]
got = jp.apply(df, rated, axis=1, shared={"lookup": lookup}, progress=False, **RUN)
want = pd.Series(lookup[df["k"]].to_numpy() * df["a"].to_numpy(), index=df.index)
print("equal=" + json.dumps(bool(got.equals(want))))
""")
    assert result.json("equal") is True


# -- inputs that are not one frame -------------------------------------------------------------
@hosts_needed
def test_chunked_reader_streams_from_the_kernel_and_globs_read_on_workers(cluster, kernel):
    drive = cluster.folder / "csv"
    result = kernel.ok(f"""
os.makedirs('/tmp/local-csv', exist_ok=True)
os.makedirs({str(drive)!r}, exist_ok=True)
for i in range(3):
    part = df.iloc[i * 100:(i + 1) * 100][["a", "b"]]
    part.to_csv(f'/tmp/local-csv/part-{{i}}.csv', index=False)
    part.to_csv(f'{drive}/part-{{i}}.csv', index=False)
whole = pd.concat([pd.read_csv(f'/tmp/local-csv/part-{{i}}.csv') for i in range(3)],
                  ignore_index=True)
# A chunked reader is read by the kernel: the file need not exist on any worker.
reader = pd.read_csv('/tmp/local-csv/part-0.csv', chunksize=30)
sums = jp.map_partitions(reader, lambda c: c['a'].sum(), progress=False, **RUN)
print("chunked=" + json.dumps([int(s) for s in sums]))
# Files on the shared drive are read by the workers themselves.
totals = jp.map_partitions({str(drive)!r} + '/*.csv', lambda f: int(f['a'].sum()),
                           progress=False, **RUN)
print("glob=" + json.dumps(totals))
# Files only the kernel has: the worker says where it looked and what it needs.
try:
    jp.map_partitions('/tmp/local-csv/*.csv', lambda f: len(f), progress=False, **RUN)
except FileNotFoundError as exc:
    print("missing=" + json.dumps(str(exc).splitlines()[0]))
""")
    first = [int(s) for s in range(0, 100)]
    assert result.json("chunked") == [sum(first[i:i + 30]) for i in range(0, 100, 30)]
    assert result.json("glob") == [sum(range(i * 100, (i + 1) * 100)) for i in range(3)]
    missing = result.json("missing")
    assert "/tmp/local-csv/part-" in missing and "on jp-w" in missing
    assert "must exist on every worker's machine" in missing and "chunksize" in missing


# -- what the user sees -----------------------------------------------------------------------
@hosts_needed
def test_prints_and_progress_are_keyed_by_worker(kernel):
    result = kernel.ok("""
seen = []
def chatty(part):
    print(f"summing {len(part)} rows from {part.index[0]} on {socket.gethostname()}")
    return slow_sum(part)
def slow_sum(part):
    for _ in range(5):
        time.sleep(0.05)
        jp.progress(len(part) // 5)
    return int(part["a"].sum())
total = jp.map_partitions(df, chatty, partitions=4, progress=seen.append, **RUN)
print("total=" + json.dumps(sum(total)))
names = sorted({w.worker for p in seen for w in p.workers if w.rows_done > 0})
partial = any(w.state == "busy" and 0 < w.rows_done < w.rows_assigned
              for p in seen[:-1] for w in p.workers)
print("progress=" + json.dumps({"names": names, "partial": partial,
                                "done": seen[-1].rows_done}))
""")
    assert result.json("total") == sum(range(400))
    progress = result.json("progress")
    assert progress["done"] == 400 and progress["partial"] is True
    assert len(progress["names"]) >= 2
    assert all(n.startswith(("tcp://10.231.0.11:", "tcp://10.231.0.12:"))
               for n in progress["names"])
    headings = [ln for ln in result.out.splitlines() if ln.startswith("[partition")]
    assert len(headings) == 4 and all("worker tcp://10.231.0.1" in h for h in headings)
    for start in ("r0", "r100", "r200", "r300"):
        assert f"summing 100 rows from {start} on jp-w" in result.out


@hosts_needed
def test_the_users_exception_type_comes_back_with_the_partition(kernel):
    result = kernel.run("""
class ScoreError(ValueError):
    pass
def fails(row):
    if row["a"] == 177:
        raise ScoreError(f"cannot score a={row['a']}")
    return row["a"]
jp.apply(df, fails, axis=1, partitions=4, progress=False, **RUN)
""")
    assert result.status == "error" and result.ename == "ScoreError"
    assert "cannot score a=177" in result.evalue
    assert "partition 1 of 4" in result.traceback and "r177" in result.traceback
    check = kernel.ok("try:\n    jp.apply(df, fails, axis=1, progress=False, **RUN)\n"
                      "except ScoreError:\n    print('caught=true')")
    assert check.json("caught") is True


# -- stopping ------------------------------------------------------------------------------------
@hosts_needed
def test_cancel_stops_the_tasks_on_every_host_and_the_next_run_works(cluster, kernel):
    cluster.marker("cancel")
    result = kernel.ok("""
cancel = threading.Event()
cancelled_at = []
def cancel_when_all_run(p):
    if sum(w.rows_done > 0 for w in p.workers) >= 4 and not cancel.is_set():
        cancelled_at.append(time.monotonic())
        cancel.set()
options = resolve(**RUN, progress=cancel_when_all_run)
try:
    pipeline.execute(Plan(split_rows(pd.concat([df] * 3), 4),
                                   operations.RowApply(slow), combine, "cancel"),
                     options, cancel=cancel)
except jp.CancelledError:
    print("cancelled=" + json.dumps(time.monotonic() - cancelled_at[0]))
settle(10)
print("again=" + json.dumps(bool(jp.apply(df, score, axis=1, progress=False, **RUN)
                                 .equals(df.apply(score, axis=1)))))
""")
    # Every partition had started (15 s of work each); a task checks the flag between rows:
    # the run ends well before its work would, with a margin for a loaded machine.
    assert result.json("cancelled") < 8
    assert result.json("again") is True


@hosts_needed
def test_kernel_interrupt_stops_the_cluster_work(cluster, kernel):
    marker = cluster.marker("interrupted")
    kernel.ok("before = df.copy()")
    msg = kernel.start(
        f"%%parallel --backend dask --scheduler {cluster.address} --jobs 4 --no-progress df\n"
        f"open({str(marker)!r}, 'a').write(socket.gethostname() + '\\n')\n"
        "df['late'] = df.apply(slow, axis=1)\n")
    _wait_for(marker, kernel, msg, lines=4)
    cluster.kernel.manager.interrupt_kernel()
    result = kernel.wait(msg, timeout=60)
    assert result.status == "error" and result.ename == "KeyboardInterrupt", result.out
    check = kernel.ok("settle(10)\nprint('same=' + json.dumps(bool(df.equals(before))))")
    assert check.json("same") is True
    again = kernel.ok(
        f"%%parallel --backend dask --scheduler {cluster.address} --jobs 4 --no-progress df\n"
        "df['s'] = df.apply(score, axis=1)\n")
    assert again.status == "ok"
    check = kernel.ok("print('ok=' + json.dumps(bool(df['s'].equals(before.apply(score, "
                      "axis=1)))))\ndf = before")
    assert check.json("ok") is True


# -- versions --------------------------------------------------------------------------------------
@hosts_needed
def test_a_worker_with_other_package_versions_is_named_in_one_line(kernel):
    result = kernel.ok("""
one = sorted(ctl.nthreads())[0]
ctl.run(lambda: setattr(__import__("dill"), "__version__", "0.0.1-old"), workers=[one])
jp.shutdown()  # a fresh connection checks versions
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    jp.apply(df, score, axis=1, progress=False, **RUN)
texts = [str(w.message) for w in caught if "packages differ" in str(w.message)]
import dill
ctl.run(lambda v=dill.__version__: setattr(__import__("dill"), "__version__", v), workers=[one])
print("warnings=" + json.dumps(texts))
print("one=" + json.dumps(one))
print("dill=" + json.dumps(dill.__version__))
""")
    texts, one = result.json("warnings"), result.json("one")
    assert len(texts) == 1 and "\n" not in texts[0]
    assert f"dill 0.0.1-old on {one} (kernel: {result.json('dill')})" in texts[0]
    assert "pandas" not in texts[0] and "jupyter_par" not in texts[0]


def test_version_differences_names_each_package_and_worker():
    kernel = {"jupyter_par": "0.2.0", "pandas": "3.1.1", "dill": "0.4.1", "cloudpickle": "3.1.3"}
    same = dict(kernel)
    assert version_differences(kernel, {"tcp://a:1": same, "tcp://b:2": same}) == ""
    text = version_differences(kernel, {
        "tcp://a:1": {**same, "pandas": "2.2.3"},
        "tcp://b:2": {**same, "pandas": "2.2.3", "jupyter_par": None},
        "tcp://c:3": RuntimeError("boom"),
    })
    assert "\n" not in text and set(VERSIONED) == {"jupyter_par", "pandas", "dill", "cloudpickle"}
    assert "pandas 2.2.3 on 2 workers (tcp://a:1, ...) (kernel: 3.1.1)" in text
    assert "jupyter_par missing on tcp://b:2 (kernel: 0.2.0)" in text
    assert "versions unreadable on tcp://c:3" in text and "dill" not in text


def test_a_worker_whose_heartbeats_lag_the_others_is_silent():
    from jupyter_par.backends.dask import SILENT_AFTER, DaskBackend, _Flight

    backend = DaskBackend(2, scheduler="tcp://10.231.0.1:8786")  # never started
    backend._flights = {0: _Flight(0, 1, "tcp://a:1", "tcp://a:1", None),
                        1: _Flight(1, 1, "tcp://b:2", "tcp://b:2", None)}
    backend._heard({"tcp://a:1": 1000.0, "tcp://b:2": 1000.0 + SILENT_AFTER + 1,
                    "tcp://c:3": 1000.0 + SILENT_AFTER + 1, "tcp://d:4": None})
    assert backend._check_heartbeats() == ["tcp://a:1"]
    assert backend._silent == {"tcp://a:1"}
    backend._members = {"tcp://a:1": 1, "tcp://b:2": 1, "tcp://c:3": 1}
    assert [address for _, address in backend._slots()] == ["tcp://b:2", "tcp://c:3"]
    # A worker heard from again is back; a slow scheduler (all equally old) silences nobody.
    backend._heard({"tcp://a:1": 2000.0, "tcp://b:2": 2000.0})
    assert backend._check_heartbeats() == [] and backend._silent == set()


# -- hosts and schedulers that go away -------------------------------------------------------------
@hosts_needed
def test_a_worker_host_that_dies_mid_run(cluster, kernel):
    marker = cluster.marker("kill-w2")
    msg = kernel.start("""
try:
    jp.apply(df, slow, axis=1, partitions=8, progress=mark_when("kill-w2"), **RUN)
except jp.WorkerDiedError as exc:
    print("died=" + json.dumps([str(exc), time.monotonic()]))
""")
    _wait_for(marker, kernel, msg)
    killed_at = time.monotonic()  # one clock for every process on the machine
    cluster.hosts.kill("w2")
    result = kernel.wait(msg, timeout=90)
    text, raised_at = result.json("died")
    # README: noticed "within about a second"; a margin for load 10 on 2 CPUs.
    assert raised_at - killed_at < 10, raised_at - killed_at
    assert "tcp://10.231.0.12:" in text and "left the Dask cluster" in text
    assert "partition " in text and " of 8" in text
    assert cluster.hosts.pids("w2") == []
    # The run goes on with the workers left, and a retry saves a run when a host dies.
    again = kernel.ok("settle(10)\nprint('again=' + json.dumps(bool(jp.apply(df, score, axis=1,"
                      " progress=False, **RUN).equals(df.apply(score, axis=1)))))")
    assert again.json("again") is True


@hosts_needed
def test_a_worker_host_whose_network_goes_down(cluster, kernel):
    marker = cluster.marker("unplug-w1")
    msg = kernel.start("""
try:
    got = jp.apply(df, slow, axis=1, partitions=8, retries=1, progress=mark_when("unplug-w1"),
                   **RUN)
    print("result=" + json.dumps([bool(got.equals(df.apply(slow, axis=1))), time.monotonic()]))
except Exception as exc:
    print("failed=" + json.dumps([type(exc).__name__, str(exc)]))
""")
    _wait_for(marker, kernel, msg)
    unplugged = time.monotonic()
    cluster.hosts.link("w1", up=False)
    try:
        result = kernel.wait(msg, timeout=120)
    finally:
        cluster.hosts.link("w1", up=True)
    # The partitions on the silent host are given to the other one (retries=1).
    equal, finished_at = result.json("result")
    assert equal is True
    waited = finished_at - unplugged
    assert waited < 45, waited  # SILENT_AFTER (15 s) and the rest of the run
    # The cut-off workers stop by themselves once they notice (dask's own timeouts);
    # whatever they still ran is gone with them.
    deadline = time.monotonic() + 90
    while cluster.hosts.pids("w1"):
        assert time.monotonic() < deadline, "w1's workers kept running"
        time.sleep(0.5)


@hosts_needed
def test_a_scheduler_that_disappears_mid_run(cluster, kernel):
    marker = cluster.marker("kill-sched")
    msg = kernel.start("""
try:
    jp.apply(df, slow, axis=1, partitions=8, progress=mark_when("kill-sched"), **RUN)
except Exception as exc:
    print("failed=" + json.dumps([type(exc).__name__, str(exc), time.monotonic()]))
""")
    _wait_for(marker, kernel, msg)
    killed_at = time.monotonic()
    cluster.hosts.kill("sched")
    result = kernel.wait(msg, timeout=90)
    name, text, raised_at = result.json("failed")
    # README: "ends the run at once"; a margin for load 10 on 2 CPUs.
    assert raised_at - killed_at < 10, raised_at - killed_at
    assert name == "SchedulerUnreachableError", text
    assert f"lost the connection to the Dask scheduler at {cluster.address}" in text
    assert "partition(s) " in text and "were running and are lost" in text
    # Workers without a scheduler stop by themselves: nothing is left running anywhere.
    deadline = time.monotonic() + 90
    while cluster.hosts.pids("w1") or cluster.hosts.pids("w2"):
        assert time.monotonic() < deadline, "workers kept running without a scheduler"
        time.sleep(0.5)
    # A scheduler back at the same address, with workers: the next run just works.
    cluster.start_scheduler()
    cluster.start_workers("w1")
    cluster.start_workers("w2")
    cluster.wait_for_workers()
    again = kernel.ok("print('again=' + json.dumps(bool(jp.apply(df, score, axis=1, "
                      "progress=False, **RUN).equals(df.apply(score, axis=1)))))")
    assert again.json("again") is True
