"""Where a call ran, from its run record: a test that claims "through the workers" asserts it.

jupyter_par hands some calls back to pandas whole (empty input, a dict or Series mapper,
a ufunc, a function's name) and runs others in the kernel (one job, the inline
fallback). A test comparing such a call with serial pandas compares pandas with pandas:
it can only fail on a crash. :func:`ran` runs a call and asserts where it ran, from
:attr:`jupyter_par.progress.timings.RunRecord.ran` (``jp.last_run().ran``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jupyter_par as jp
from jupyter_par.progress import timings

WORKER_BACKENDS = ("processes", "threads", "dask")
#: Records :func:`ran` has already checked (a :func:`recording` does not check them again).
_checked: set[int] = set()


def forget() -> None:
    """Drop the last run's record, so that a call that leaves none is not read as ran."""
    timings.remember(None)  # type: ignore[arg-type]


def ran(where: str, call: Callable[[], Any]) -> Any:
    """``call()``'s value, asserting that it ran in ``where`` (workers, kernel or pandas)."""
    forget()
    value = call()
    record = jp.last_run()
    assert record is not None, "the call left no run record"
    assert record.ran == where, (
        f"{record.label}: meant to run in {where}, ran in {record.ran} "
        f"(backend {record.backend!r}): {record.explain}")
    _checked.add(id(record))
    return value


@contextmanager
def recording(monkeypatch: Any) -> Iterator[list[timings.RunRecord]]:
    """Every run record made inside (the kernel's; not those :func:`ran` checked)."""
    made: list[timings.RunRecord] = []
    keep = timings.remember

    def remember(record: timings.RunRecord) -> timings.RunRecord:
        if record is not None:
            made.append(record)
        return keep(record)

    monkeypatch.setattr(timings, "remember", remember)
    yield made
    monkeypatch.setattr(timings, "remember", keep)


def assert_all_ran(made: list[timings.RunRecord], where: str) -> None:
    """Each record made (and not checked by :func:`ran`) says the call ran in ``where``."""
    assert made, "no jupyter_par call was made"
    unchecked = [r for r in made if id(r) not in _checked]
    wrong = [f"{r.label}: {r.ran} ({r.explain})" for r in unchecked if r.ran != where]
    assert not wrong, f"meant to run in {where}: " + "; ".join(wrong)


def where_for(kw: dict[str, Any]) -> str:
    """Where a non-trivial call with options ``kw`` runs: workers, or the kernel."""
    backend = kw.get("backend", "processes")
    return "workers" if backend in WORKER_BACKENDS and kw.get("jobs", 2) > 1 else "kernel"
