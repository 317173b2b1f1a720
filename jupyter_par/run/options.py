"""Options of a run: the one place that decides defaults and precedence.

Precedence, highest first: what the call (or the magic's flags) gives, then the
session defaults (``%parallel_config``, the panel, :func:`set_defaults`), then the
built-in defaults below. Nothing else in the package re-decides a default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from ..backends import BACKENDS, START_METHODS
from ..errors import UsageError
from ..machine import limits
from ..machine.limits import usable_cpus
from ..progress.chooser import check_frontend, check_progress
from .backend_choice import BackendChoice, choose_backend

ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class Options:
    """Everything that shapes a run, resolved."""

    jobs: int
    backend: str = "processes"
    partitions: int | None = None
    timeout: float | None = None
    retries: int = 0
    on_error: str = "raise"
    start_method: str | None = None
    progress: Any = True
    scheduler: Any = None
    frontend: str = "auto"
    #: Run in the kernel when a sample shows the data costs more to move than to process.
    inline_fallback: bool = True
    #: Start every worker asked for, even beyond a few per CPU (see jupyter_par.machine.limits).
    oversubscribe: bool = False
    #: Native (BLAS/OpenMP) threads per process worker; None: the CPUs shared out.
    blas_threads: int | None = None
    #: Called once in each worker before its first task; its value is jp.worker_state().
    worker_init: Any = None
    #: Positional arguments of ``worker_init``.
    worker_init_args: tuple[Any, ...] = ()
    #: Replace a worker process after it ran this many partitions (libraries that leak).
    max_tasks_per_worker: int | None = None
    #: Reuse the partitions an earlier failed, cancelled or interrupted run finished
    #: (jupyter_par.run.resume), when the input is the same data cut the same way.
    resume: bool = False
    #: A directory keeping finished partitions on disk, signed (jupyter_par.run.cache).
    cache: str | None = None
    #: Return a handle at once and run on a thread of the kernel (jupyter_par.run.background).
    background: bool = False
    #: The backend that runs and why (jupyter_par.run.backend_choice); set by resolve.
    runs_on: BackendChoice | None = None

    @property
    def chosen(self) -> BackendChoice:
        """The backend that runs and why; options come from :func:`resolve`."""
        if self.runs_on is None:
            msg = "options must come from jupyter_par.run.options.resolve"
            raise TypeError(msg)
        return self.runs_on


#: Fields that :func:`resolve` fills in: not options a caller gives.
_DECIDED = ("runs_on",)
#: The keywords of every public call that are jupyter_par's own, not pandas' or the function's.
OPTION_NAMES = tuple(f.name for f in fields(Options) if f.name not in _DECIDED)


_BUILTIN: dict[str, Any] = {f.name: f.default for f in fields(Options)
                            if f.name != "jobs" and f.name not in _DECIDED}
_session: dict[str, Any] = {}


def _check(name: str, value: Any) -> Any:
    """Validate one option; return it normalised, or raise a one-line UsageError."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            msg = f"{name} must be {what}, got {value!r}"
            raise UsageError(msg)

    if value is None:
        return None
    if name == "jobs":
        need(isinstance(value, int) and not isinstance(value, bool) and value != 0,
             "a whole number: 1 or more, or -1 for all CPUs (-2 all but one, ...)")
        if value < 0:  # a negative count past the CPUs: say so now
            limits.worker_count(value, None)
    elif name == "worker_init":
        need(callable(value), "a function (called once in each worker; its value is "
             "jp.worker_state())")
    elif name == "worker_init_args":
        need(isinstance(value, tuple | list), "a tuple of arguments for worker_init")
        value = tuple(value)
    elif name in ("partitions", "blas_threads", "max_tasks_per_worker"):
        need(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
             "a whole number of at least 1")
    elif name == "retries":
        need(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
             "a whole number of at least 0")
    elif name == "timeout":
        need(isinstance(value, int | float) and not isinstance(value, bool) and value > 0,
             "a number of seconds above 0")
        value = float(value)
    elif name == "on_error":
        need(value in ON_ERROR, f"one of {', '.join(ON_ERROR)}")
    elif name == "start_method":
        need(value in START_METHODS, f"one of {', '.join(START_METHODS)}")
    elif name == "backend":
        need(value in BACKENDS, f"one of {', '.join(BACKENDS)}")
    elif name == "frontend":
        check_frontend(value)
    elif name == "progress":
        check_progress(value)
    elif name == "cache":
        need(isinstance(value, str | os.PathLike) and str(value) != "", "a directory path")
        value = os.fspath(value)
    elif name in ("inline_fallback", "oversubscribe", "resume", "background"):
        need(isinstance(value, bool), "True or False")
    elif name not in OPTION_NAMES:
        msg = f"unknown option {name!r}"
        raise UsageError(msg)
    return value


def set_defaults(**options: Any) -> dict[str, Any]:
    """Set session defaults (``None`` removes one); return the defaults now in force."""
    for name, value in options.items():
        checked = _check(name, value)
        if checked is None:
            _session.pop(name, None)
        else:
            _session[name] = checked
    return current_defaults()


def current_defaults() -> dict[str, Any]:
    """The defaults a call with no options would get now."""
    merged = {"jobs": usable_cpus(), **_BUILTIN, **_session}
    return merged


def resolve(**given: Any) -> Options:
    """Merge the call's options over the session and built-in defaults, validate, and
    choose the backend (:func:`jupyter_par.run.backend_choice.choose_backend`)."""
    merged = current_defaults()
    for name, value in given.items():
        checked = _check(name, value)
        if checked is not None:
            merged[name] = checked
    options = Options(**merged)
    return with_backend(options, choose_backend(options))


def with_backend(options: Options, choice: BackendChoice) -> Options:
    """``options`` running on ``choice``; a call nested in a task draws no bars of its own."""
    options = replace(options, jobs=choice.jobs, backend=choice.name, runs_on=choice)
    if choice.nested and options.progress in (True, "auto", "widgets", "text", "tqdm"):
        options = replace(options, progress=False)
    return options


def reset_defaults() -> dict[str, Any]:
    """Forget every session default; return the defaults now in force."""
    _session.clear()
    return current_defaults()
