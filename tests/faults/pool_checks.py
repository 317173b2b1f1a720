"""What the fault tests ask of the warm pools between runs (imported by the test modules)."""

from __future__ import annotations

from jupyter_par import backends


def busy_workers() -> list[str]:
    """Workers of warm backends that still hold a task (there must be none between runs)."""
    return [
        f"{name}:{p.name}"
        for name, backend in backends.warm_backends().items()
        for p in getattr(backend, "_procs", [])
        if p is not None and p.task_id is not None
    ]
