"""Which backend runs a call, and why: the one place that decides it.

The options name a backend; what runs may differ, for one of three reasons, checked in
this order (as joblib's ``configure()`` and ``get_nested_backend()`` own fallback and
nesting):

- ``"nested in a task"``: a call made inside a task runs in place, on the outer
  backend's nested backend (inline), with one worker;
- ``"one job"``: one worker gains nothing from processes and loses the debugger;
- ``"too small to move"``: the in-kernel fallback's verdict (:mod:`.fallback`) says
  moving the data costs more than the work.

Everyone else reads the :class:`BackendChoice` stored in the resolved options
(``options.runs_on``), never a backend name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..backends import Backend, backend_class
from ..machine import limits
from ..worker import task as _worker

NESTED = "nested in a task"
ONE_JOB = "one job"
TOO_SMALL = "too small to move"


@dataclass(frozen=True)
class BackendChoice:
    """The backend a run uses, and why it is not the one asked for."""

    #: The backend the options named.
    asked: str
    #: The backend that runs.
    name: str
    #: Workers, counted for the backend asked for (limits.worker_count).
    jobs: int
    #: None (as asked), NESTED, ONE_JOB or TOO_SMALL.
    reason: str | None = None
    #: The fallback's own words, for a TOO_SMALL choice.
    detail: str | None = None

    @property
    def cls(self) -> type[Backend]:
        """The class of the backend that runs."""
        return backend_class(self.name)

    @property
    def nested(self) -> bool:
        """Runs in place inside a task: no warm pool, no lock, one worker."""
        return self.reason == NESTED

    @property
    def in_kernel(self) -> str | None:
        """Why the run's work happens in the kernel (its explain line), or None."""
        if self.reason == TOO_SMALL:
            return self.detail
        return "ran in the kernel" if self.nested or self.cls.in_caller else None


class _Asked(Protocol):
    """What the choice reads of :class:`jupyter_par.run.options.Options`."""

    backend: str
    jobs: int
    oversubscribe: bool
    scheduler: Any
    inline_fallback: bool
    runs_on: BackendChoice | None


def choose_backend(options: _Asked, too_small: Callable[[BackendChoice], str | None] | None = None
                   ) -> BackendChoice:
    """The backend that runs a call with ``options``, and why.

    ``too_small`` asks the in-kernel fallback for its verdict, given the in-kernel choice
    its sample runs on; it is called only when the backend allows a local fallback and
    ``inline_fallback`` is on. Options already chosen
    (``options.runs_on``) keep their worker count and a choice made for a reason.
    """
    earlier = options.runs_on
    if earlier is not None:
        asked, jobs = earlier.asked, earlier.jobs
        if earlier.reason is not None:
            return earlier
    else:
        asked = options.backend
        asked_cls = backend_class(asked)
        jobs = limits.worker_count(
            options.jobs, asked_cls, oversubscribe=options.oversubscribe,
            remote=not asked_cls.shares_host_memory and options.scheduler is not None)
    cls = backend_class(asked)
    if _worker.in_task():
        # The outer run holds the workers (and, under fork, this process holds a copy of
        # its pool and locks): the inner call runs here, on the outer task's nested backend.
        outer = _worker.active()
        nested = outer.nested_backend if outer is not None else "inline"
        return BackendChoice(asked, nested, jobs, NESTED)
    if jobs == 1 and cls.one_worker_inline:
        return BackendChoice(asked, "inline", jobs, ONE_JOB)
    if too_small is not None and cls.local_fallback and options.inline_fallback:
        # The fallback's sample runs on the backend a TOO_SMALL verdict would choose (its
        # pieces are the run's first partitions, run once there).
        in_kernel = BackendChoice(asked, cls.nested_backend, jobs, TOO_SMALL)
        verdict = too_small(in_kernel)
        if verdict is not None:
            return replace(in_kernel, detail=verdict)
    return BackendChoice(asked, asked, jobs)
