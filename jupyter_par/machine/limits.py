"""What the machine lets a run use: CPUs, memory, and native libraries' thread pools.

Real machines are rarely the roomy VM the code was written on: a container may see 64
CPUs and be allowed two (a cgroup CPU quota), a JupyterHub pod has a memory limit far
below the host's RAM, and numpy's BLAS starts one thread per CPU in every worker, so
eight workers on eight CPUs run 64 busy threads. This module reads the real limits
(affinity, cgroup v1 and v2, /proc/meminfo) and turns them into worker counts and
thread limits. It never raises: where a limit cannot be read, it is taken as absent.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import JupyterParWarning, UsageError

#: Process workers above this many per CPU only add memory and switching: capped unless
#: the caller passes ``oversubscribe=True``.
PROCESSES_PER_CPU = 4
#: Threads wait on I/O, so many more make sense; still, thousands of threads are a bug.
THREADS_PER_CPU = 16
THREADS_AT_LEAST = 64
#: The variables that size native thread pools when a library loads (OpenMP, OpenBLAS,
#: MKL, BLIS, Apple Accelerate, numexpr).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
)


class OversubscribeWarning(JupyterParWarning):
    """More workers were asked for than the machine can run; fewer were started."""


# -- cgroups ----------------------------------------------------------------------------
def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None


def _mounts(text: str | None = None) -> list[tuple[str, str, str, str]]:
    """(root, mount point, fstype, super options) of every mount, from mountinfo."""
    if text is None:
        text = _read(Path("/proc/self/mountinfo")) or ""
    mounts = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3:
            mounts.append((fields[3], fields[4], tail[0], tail[2]))
    return mounts


#: cgroup_dirs' answers by (controller, membership, mounts): resolving the paths is
#: most of its ~2 ms, and it is asked on every call (the CPUs) and by the memory budget.
_DIRS_SEEN: dict[tuple[str, str, str], list[Path]] = {}


def cgroup_dirs(controller: str) -> list[Path]:
    """This process's cgroup directories for ``controller`` (v1 and v2), leaf first,
    then each ancestor up to the mount point: a limit anywhere above applies too."""
    membership = _read(Path("/proc/self/cgroup")) or ""
    mountinfo = _read(Path("/proc/self/mountinfo")) or ""
    key = (controller, membership, mountinfo)
    if key not in _DIRS_SEEN:
        if len(_DIRS_SEEN) > 32:
            _DIRS_SEEN.clear()
        _DIRS_SEEN[key] = _find_cgroup_dirs(controller, membership, _mounts(mountinfo))
    return list(_DIRS_SEEN[key])


def _find_cgroup_dirs(controller: str, membership: str,
                      mounts: list[tuple[str, str, str, str]]) -> list[Path]:
    found: list[Path] = []
    for line in membership.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        v2 = hierarchy == "0" and controllers == ""
        if not v2 and controller not in controllers.split(","):
            continue
        for root, point, fstype, options in mounts:
            if v2 and fstype != "cgroup2":
                continue
            if not v2 and (fstype != "cgroup" or controller not in options.split(",")):
                continue
            relative = os.path.relpath(path, root) if path.startswith(root) else None
            if relative is None or relative.startswith(".."):
                continue
            leaf = (Path(point) / relative).resolve()
            top = Path(point).resolve()
            while leaf == top or top in leaf.parents:
                found.append(leaf)
                if leaf == top:
                    break
                leaf = leaf.parent
            break
    return found


def _number(text: str | None) -> int | None:
    if text is None or not text.lstrip("-").isdigit():
        return None  # "max", missing, or unreadable
    return int(text)


def _stat(path: Path, key: str) -> int:
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.isdigit():
            return int(value)
    return 0


#: cgroup v1 writes "no limit" as a huge number (the page-rounded maximum of a long).
_UNLIMITED = 2**60


def cgroup_memory_room() -> tuple[int, str] | None:
    """Bytes the tightest cgroup memory limit above this process still allows, and where
    that limit is set; ``None`` where no limit is set. Page cache that the kernel can drop
    (inactive files) does not count as used."""
    best: tuple[int, str] | None = None
    for directory in cgroup_dirs("memory"):
        if (directory / "memory.max").exists():  # v2
            limit = _number(_read(directory / "memory.max"))
            used = _number(_read(directory / "memory.current"))
            cache = _stat(directory / "memory.stat", "inactive_file")
        else:  # v1
            limit = _number(_read(directory / "memory.limit_in_bytes"))
            used = _number(_read(directory / "memory.usage_in_bytes"))
            cache = _stat(directory / "memory.stat", "total_inactive_file")
        if limit is None or limit >= _UNLIMITED or used is None:
            continue
        room = max(0, limit - max(0, used - cache))
        if best is None or room < best[0]:
            best = (room, f"cgroup limit {limit / 2**20:.0f} MB")
    return best


def available_memory() -> tuple[int, str]:
    """Bytes this process and its workers may still allocate, and what sets that figure:
    the tighter of the cgroup memory limit and the kernel's MemAvailable."""
    available = None
    for line in (_read(Path("/proc/meminfo")) or "").splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
            break
    if available is None:
        try:
            import psutil

            available = int(psutil.virtual_memory().available)
        except ImportError:  # not Linux, no psutil: no figure, no limit
            available = 2**62
    room = cgroup_memory_room()
    if room is not None and room[0] < available:
        return room
    return available, "MemAvailable"


def oom_kills() -> int:
    """How many processes the out-of-memory killer has killed in this process's cgroup
    (0 where the count cannot be read): a worker's SIGKILL is the OOM killer's if the
    count went up meanwhile."""
    for directory in cgroup_dirs("memory")[:1]:
        text = _read(directory / "memory.events") or _read(directory / "memory.oom_control")
        for line in (text or "").splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill" and value.isdigit():
                return int(value)
    return 0


def peak_memory() -> int | None:
    """The highest memory use this process's cgroup has seen, in bytes (tests, benchmarks)."""
    for directory in cgroup_dirs("memory")[:1]:
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            value = _number(_read(directory / name))
            if value is not None:
                return value
    return None


# -- CPUs and worker counts -----------------------------------------------------------------
def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, and a cgroup CPU quota if lower
    (a container started with ``--cpus 2`` on a 64-core host gets 2)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    for directory in cgroup_dirs("cpu"):
        quota = _read(directory / "cpu.max")
        if quota is not None:  # v2: "max 100000" or "200000 100000"
            parts = quota.split()
            limit, period = (_number(parts[0]), _number(parts[1])) if len(parts) == 2 \
                else (None, None)
        else:  # v1
            limit = _number(_read(directory / "cpu.cfs_quota_us"))
            period = _number(_read(directory / "cpu.cfs_period_us"))
        if limit is not None and period and limit > 0:
            cpus = min(cpus, max(1, math.ceil(limit / period)))
    return max(1, cpus)


def worker_count(jobs: int, backend: Any, *, oversubscribe: bool = False,
                 remote: bool = False, cpus: int | None = None) -> int:
    """The number of workers to run for ``jobs`` on ``backend`` (a Backend class).

    ``jobs=-1`` means every usable CPU, ``-2`` all but one, and so on (as in joblib).
    Local process workers beyond :data:`PROCESSES_PER_CPU` per CPU (threads beyond
    :data:`THREADS_PER_CPU`) are capped with one warning unless ``oversubscribe``; a
    remote cluster (``remote``) is sized by its own machines, not this one.
    """
    cpus = cpus or usable_cpus()
    if jobs < 0:
        if cpus + 1 + jobs < 1:
            msg = (f"jobs={jobs} leaves no worker on {cpus} CPU(s); "
                   f"use -1 (all CPUs) down to -{cpus}")
            raise UsageError(msg)
        return cpus + 1 + jobs
    if oversubscribe or remote or backend.in_caller:
        return jobs
    if backend.uses_threads:
        cap = max(THREADS_AT_LEAST, THREADS_PER_CPU * cpus)
        kind = "threads"
    else:
        cap = PROCESSES_PER_CPU * cpus
        kind = "worker processes"
    if jobs <= cap:
        return jobs
    warnings.warn(
        f"jobs={jobs} on {cpus} CPU(s): running {cap} {kind} instead; pass "
        f"oversubscribe=True (--oversubscribe) to start all {jobs}",
        OversubscribeWarning, stacklevel=4)
    return cap


# -- native thread pools ------------------------------------------------------------------
def user_thread_settings() -> dict[str, str]:
    """The thread-pool variables the user set themselves (they win over jupyter_par's)."""
    return {name: os.environ[name] for name in THREAD_VARIABLES if os.environ.get(name)}


def threads_per_worker(workers: int, requested: int | None = None,
                       cpus: int | None = None) -> int:
    """How many native threads each of ``workers`` process workers may run: ``requested``
    if given, else what the user's own ``OMP_NUM_THREADS`` (or the like) says, else the
    CPUs shared out (at least one)."""
    if requested is not None:
        return requested
    for value in user_thread_settings().values():
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return max(1, (cpus or usable_cpus()) // max(1, workers))


def limit_threads(threads: int | None, *, override: bool = False) -> dict[str, Any]:
    """In a worker: keep native thread pools to ``threads`` (``None``: leave them).

    The environment variables size the pools of libraries loaded from now on (spawn,
    forkserver, and later imports); those the user set stay as they are unless
    ``override`` (an explicit ``blas_threads=``). threadpoolctl, where installed,
    resizes the pools of libraries already loaded (a forked worker inherits numpy's).
    Returns what was applied.
    """
    if threads is None:
        return {}
    value = str(threads)
    for name in THREAD_VARIABLES:
        if override or not os.environ.get(name):
            os.environ[name] = value
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return {"env": value}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # threadpoolctl warns about unusual OpenMP mixes
        threadpool_limits(limits=threads)
    return {"env": value, "threadpoolctl": threads}


def describe_threads() -> list[dict[str, Any]]:
    """The native thread pools loaded in this process and their sizes (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return threadpool_info()
