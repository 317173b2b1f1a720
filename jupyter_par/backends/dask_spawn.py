"""Start a local Dask cluster's worker processes without re-running the caller's script.

A nanny starts its worker with ``multiprocessing`` (``spawn`` by default, or
``forkserver``), and both re-run ``__main__`` from its file in the new process so that
functions pickled by reference can be found. For a plain ``python script.py`` without an
``if __name__ == "__main__":`` guard that re-run calls jupyter_par again inside the
worker, and the nanny fails with "current process has finished its bootstrapping phase".
jupyter_par ships the work by value (dill), so the re-run is never needed: while a local
cluster started by jupyter_par is alive, its nannies' processes are prepared without the
main module, as the process pool's workers are (``processes._main_not_rerun``). A worker
that a nanny restarts later is prepared the same way. Processes of a cluster the user
started, or any other process, are prepared as usual.
"""

from __future__ import annotations

import multiprocessing.spawn as mp_spawn
import threading
from typing import Any

# The name distributed's Nanny gives the process it starts its worker in.
NANNY_PROCESS_NAME = "Dask Worker process (from Nanny)"
_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")

_lock = threading.Lock()
_owners = 0
_original = None


def _preparation_data(name: str) -> dict[str, Any]:
    data = _original(name)  # type: ignore[misc]
    if _owners and name == NANNY_PROCESS_NAME:
        for key in _MAIN_KEYS:
            data.pop(key, None)
    return data


def hold() -> None:
    """A local cluster starts: from now on its nannies' workers skip ``__main__``."""
    global _owners, _original
    with _lock:
        if _original is None:
            _original = mp_spawn.get_preparation_data
            mp_spawn.get_preparation_data = _preparation_data
        _owners += 1


def release() -> None:
    """A local cluster was closed (every ``hold`` is paired with one ``release``)."""
    global _owners
    with _lock:
        _owners = max(0, _owners - 1)
