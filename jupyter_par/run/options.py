"""Options of a run: the one place that decides defaults and precedence.

Precedence, highest first: what the call (or the magic's flags) gives, then the
session defaults (``%parallel_config``, the panel, :func:`set_defaults`), then the
built-in defaults below. Nothing else in the package re-decides a default.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import UsageError
from ..machine import limits
from ..machine.limits import usable_cpus
from ..worker.task import in_task

START_METHODS = ("fork", "spawn", "forkserver")
ON_ERROR = ("raise", "skip")
#: How progress is drawn in a kernel; "auto" lets jupyter_par.widgets.frontend decide.
FRONTENDS = ("auto", "lab", "ipywidgets", "text")


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


#: The keywords of every public call that are jupyter_par's own, not pandas' or the function's.
OPTION_NAMES = tuple(f.name for f in fields(Options))


_BUILTIN: dict[str, Any] = {f.name: f.default for f in fields(Options) if f.name != "jobs"}
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
    elif name in ("partitions", "blas_threads"):
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
        from ..backends import BACKENDS

        need(value in BACKENDS, f"one of {', '.join(BACKENDS)}")
    elif name == "frontend":
        need(value in FRONTENDS, f"one of {', '.join(FRONTENDS)}")
    elif name in ("inline_fallback", "oversubscribe"):
        need(isinstance(value, bool), "True or False")
    elif name not in {f.name for f in fields(Options)}:
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
    """Merge the call's options over the session and built-in defaults, and validate."""
    merged = current_defaults()
    for name, value in given.items():
        checked = _check(name, value)
        if checked is not None:
            merged[name] = checked
    options = Options(**merged)
    from ..backends import backend_class

    cls = backend_class(options.backend)
    jobs = limits.worker_count(options.jobs, cls, oversubscribe=options.oversubscribe,
                               remote=not cls.shares_host_memory and options.scheduler is not None)
    options = replace(options, jobs=jobs)
    # One worker gains nothing from processes and loses the debugger: run in the caller.
    if options.jobs == 1 and backend_class(options.backend).one_worker_inline:
        options = replace(options, backend="inline")
    if in_task():  # a call nested in a task runs inline there, without bars of its own
        quiet = options.progress in (True, "auto", "widgets", "text", "tqdm")
        options = replace(options, backend="inline", progress=False if quiet else options.progress)
    return options
