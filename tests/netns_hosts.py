"""Several "hosts" on this one machine: network namespaces joined by a private bridge.

Each host is a Linux network namespace with one interface on a bridge that lives in
a namespace of its own (the hub), and an address in ``10.231.0.0/24``; those
addresses exist only inside these namespaces, so no traffic can reach anything
else. A process started on a host also gets its own IPC namespace, mount namespace,
host name and, by default, PID namespace, with fresh tmpfs mounts on ``/dev/shm``
and ``/tmp``: what one host writes there, no other host sees, as on separate
machines. Everything else of the file system is shared, like a shared network
drive (``/var/tmp`` is used as one).

Needs root, ``ip`` (iproute2) and ``unshare`` (util-linux); :func:`why_not` says
what is missing. :meth:`Hosts.destroy` kills every process of every host and deletes
the namespaces; :func:`sweep_stale` removes what a killed test run left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

SUBNET = "10.231.0"
PREFIX = "jph"
#: Run on each host before its command: private /dev/shm and /tmp, its own name.
#: The checkout (and its venvs) may itself live under /tmp (a CI clone): then it is held at
#: a mount point outside /tmp first and bound back over the fresh tmpfs, so every host still
#: runs the same code while its /tmp stays its own.
_KEEP = "/var/lib/jupyter_par-netns-keep"
REPO_ROOT = _REPO = str(Path(__file__).resolve().parent.parent)
_HOST_SETUP = (
    'mount -t tmpfs -o size=512m jp-shm /dev/shm'
    f' && if [ "${{JP_REPO#/tmp/}}" != "$JP_REPO" ]; then mkdir -p {_KEEP}'
    f' && mount --bind "$JP_REPO" {_KEEP}; fi'
    ' && mount -t tmpfs -o size=512m jp-tmp /tmp'
    f' && if [ "${{JP_REPO#/tmp/}}" != "$JP_REPO" ]; then mkdir -p "$JP_REPO"'
    f' && mount --bind {_KEEP} "$JP_REPO"; fi'
    ' && hostname "$JP_HOST" && exec "$@"'
)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=30)


def why_not() -> str | None:
    """Why hosts cannot be made here (one line), or ``None`` when they can."""
    if os.name != "posix" or not Path("/proc/self/ns/net").exists():
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run the tests as root, e.g. in CI's container)"
    missing = [tool for tool in ("ip", "unshare") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found: apt-get install iproute2 util-linux"
    probe = f"{PREFIX}probe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
    _ip("netns", "del", probe, check=False)
    return None


def _netns_pids(name: str) -> list[int]:
    done = _ip("netns", "pids", name, check=False)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def _kill_all(name: str) -> None:
    """SIGKILL every process in namespace ``name`` until none is left (a host dying)."""
    deadline = time.monotonic() + 20
    while (pids := _netns_pids(name)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _namespaces() -> list[str]:
    done = _ip("netns", "list", check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def sweep_stale() -> None:
    """Remove the hosts of earlier runs whose test process no longer exists."""
    for name in _namespaces():
        if not name.startswith(PREFIX) or "-" not in name:
            continue
        owner = name[len(PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            _kill_all(name)
            _ip("netns", "del", name, check=False)


class Hosts:
    """Named hosts, each with one address on a bridge no other network can reach."""

    def __init__(self, addresses: dict[str, int]) -> None:
        self.tag = f"{PREFIX}{os.getpid()}"
        self.octets = dict(addresses)
        self.hub = f"{self.tag}-hub"

    def ns(self, host: str) -> str:
        """The network namespace of ``host`` (for ``ip netns exec``)."""
        return f"{self.tag}-{host}"

    def address(self, host: str) -> str:
        return f"{SUBNET}.{self.octets[host]}"

    def create(self) -> None:
        """The hub with its bridge, and each host with its link to it."""
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for host in self.octets:
            ns = self.ns(host)
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # Both ends are made inside namespaces: the machine's own network is untouched.
            _ip("-n", self.hub, "link", "add", f"v{host}", "type", "veth", "peer", "name",
                "eth0", "netns", ns)
            _ip("-n", self.hub, "link", "set", f"v{host}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def command(self, host: str, argv: Sequence[str], *, pid_namespace: bool = True) -> list[str]:
        """``argv`` as run on ``host``: its network, private /tmp and /dev/shm, its name.

        With ``pid_namespace`` the command is PID 1 of its own PID namespace, so that
        when it ends, whatever it started ends with it; a command whose signals
        must reach it directly (a kernel, interrupted with SIGINT) runs without.
        """
        unshare = ["unshare", "--ipc", "--mount", "--uts", "--propagation", "private"]
        if pid_namespace:
            unshare += ["--pid", "--fork", "--kill-child", "--mount-proc"]
        return ["ip", "netns", "exec", self.ns(host), *unshare, "sh", "-c", _HOST_SETUP,
                host, *argv]

    def start(self, host: str, argv: Sequence[str], *, env: dict[str, str], log: Path,
              pid_namespace: bool = True) -> int:
        """Start ``argv`` on ``host``, detached (not a child of this process); its pid.

        Its output goes to ``log``. Being no child of the caller, it is not counted as
        a process a test left behind: :meth:`kill` and :meth:`destroy` end it.
        """
        launched = subprocess.run(
            ["sh", "-c", '"$@" >>"$JP_LOG" 2>&1 </dev/null & echo $!', "launch",
             *self.command(host, argv, pid_namespace=pid_namespace)],
            env={**env, "JP_HOST": f"jp-{host}", "JP_LOG": str(log), "JP_REPO": _REPO},
            capture_output=True,
            text=True, check=True, start_new_session=True, timeout=30,
        )
        return int(launched.stdout)

    def pids(self, host: str) -> list[int]:
        """Every process running on ``host`` now."""
        return _netns_pids(self.ns(host))

    def kill(self, host: str) -> None:
        """Kill every process on ``host`` at once, as if the machine lost power."""
        _kill_all(self.ns(host))

    def link(self, host: str, up: bool) -> None:
        """Plug or unplug ``host``'s network cable (its port on the bridge)."""
        _ip("-n", self.hub, "link", "set", f"v{host}", "up" if up else "down")

    def destroy(self) -> None:
        """Kill every process of every host and delete the namespaces."""
        for host in self.octets:
            self.kill(host)
        for name in [*(self.ns(h) for h in self.octets), self.hub]:
            _kill_all(name)
            _ip("netns", "del", name, check=False)
