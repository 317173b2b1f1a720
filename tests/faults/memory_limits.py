"""Run a Python body under a real memory limit: a cgroup of its own (v2 or v1), or else
RLIMIT_AS on the processes (imported by the memory tests).

A cgroup limit is what a JupyterHub pod or ``docker run --memory`` sets: going over it
wakes the kernel's out-of-memory killer, which SIGKILLs the largest process of the
group. RLIMIT_AS is the fallback where cgroups are not writable: allocations past it
fail with MemoryError instead of a kill.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jupyter_par.machine import limits

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Limit:
    kind: str  # "cgroup v2", "cgroup v1" or "RLIMIT_AS"
    limit: int
    directory: Path | None = None

    def peak(self) -> int | None:
        """The highest memory use of the group so far (cgroups only)."""
        if self.directory is None:
            return None
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            with contextlib.suppress(OSError, ValueError):
                return int((self.directory / name).read_text())
        return None

    def oom_kills(self) -> int:
        if self.directory is None:
            return 0
        for name in ("memory.events", "memory.oom_control"):
            with contextlib.suppress(OSError):
                for line in (self.directory / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _v2_parent() -> Path | None:
    for _, point, fstype, _ in limits._mounts():
        if fstype == "cgroup2":
            top = Path(point)
            with contextlib.suppress(OSError):
                if "memory" in (top / "cgroup.subtree_control").read_text().split():
                    return top
                if "memory" in (top / "cgroup.controllers").read_text().split():
                    _write(top / "cgroup.subtree_control", "+memory")
                    return top
    return None


def _v1_parent() -> Path | None:
    dirs = limits.cgroup_dirs("memory")
    for directory in dirs:
        if (directory / "memory.limit_in_bytes").exists():
            return directory
    return None


def _make(parent: Path, name: str, files: dict[str, str]) -> Path | None:
    """A child cgroup of ``parent`` with ``files`` written; ``None`` if not permitted."""
    directory = parent / name
    try:
        directory.mkdir()
    except OSError:
        return None
    try:
        for file, value in files.items():
            _write(directory / file, value)
    except OSError:
        _remove(directory)
        return None
    return directory


@contextlib.contextmanager
def memory_limit(limit: int, *, allow_cgroup: bool = True) -> Iterator[Limit | str]:
    """A fresh memory cgroup limited to ``limit`` bytes; else RLIMIT_AS; else why not."""
    name = f"jupyter_par-test-{os.getpid()}-{time.monotonic_ns()}"
    where: Limit | str
    made = None
    v2, v1 = (_v2_parent(), _v1_parent()) if allow_cgroup else (None, None)
    if v2 is not None and (made := _make(v2, name, {"memory.max": str(limit)})):
        with contextlib.suppress(OSError):
            _write(made / "memory.swap.max", "0")
        where = Limit("cgroup v2", limit, made)
    elif v1 is not None and (made := _make(v1, name, {"memory.limit_in_bytes": str(limit)})):
        where = Limit("cgroup v1", limit, made)
    else:
        try:
            import resource

            resource.getrlimit(resource.RLIMIT_AS)
            where = Limit("RLIMIT_AS", limit)
        except (ImportError, OSError) as exc:
            where = f"no writable memory cgroup and no RLIMIT_AS: {exc}"
    try:
        yield where
    finally:
        if made is not None:
            _remove(made)


def _remove(directory: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if not (directory / "cgroup.procs").read_text().split():
                directory.rmdir()
                return
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        directory.rmdir()


def run_body(body: str, where: Limit, timeout: float = 600, **env: str) -> \
        subprocess.CompletedProcess[str]:
    """Run ``python -c body`` inside the limit (the cgroup, or RLIMIT_AS on the process and
    so on every worker it starts)."""
    environment = {**os.environ, **env, "JP_BODY": body,
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if where.directory is not None:
        command = ["sh", "-c", f'echo $$ > "{where.directory}/cgroup.procs" && '
                               f'exec "{sys.executable}" -c "$JP_BODY"']
        return subprocess.run(command, capture_output=True, text=True, env=environment,
                              timeout=timeout, check=False)

    def cap() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (where.limit, where.limit))

    return subprocess.run([sys.executable, "-c", body], capture_output=True, text=True,
                          env=environment, timeout=timeout, check=False, preexec_fn=cap)
