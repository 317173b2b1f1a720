"""pytest plugin: run pandas' own tests with their apply/map calls routed through jupyter_par.

Loaded with ``-p jp_route`` (``tests/conformance`` on ``sys.path``) by
``scripts/conformance.sh``. While pandas' tests run, ``DataFrame.apply``,
``Series.apply``, ``Series.map``, ``DataFrameGroupBy.apply`` and ``SeriesGroupBy.apply``
are replaced by wrappers (and, from :mod:`jp_route_windows`, ``Rolling.apply``,
``Expanding.apply`` and ``Resampler.apply / agg / aggregate / transform``). A call
made directly by pandas' test code (the calling frame's file lies in
``pandas/tests/``), in the main thread of the main process, outside another
routed call, is rewritten as the jupyter_par call a user would write for it
(``jp.apply``, ``jp.map``, ``jp.groupby_apply``) with two workers and small partitions.
Every other call (pandas calling itself, jupyter_par's workers, nested calls) goes
straight to pandas. A call whose shape the public API cannot express (a string or list
as ``func``, a column selection ``gb["b"]``, a keyword named like one of jupyter_par's
options...) also goes to pandas unchanged, and is listed in the session summary so
the API can grow to cover the common ones.

Environment:

``JP_CONFORMANCE_MODE``
    ``plain`` (nothing replaced: the baseline), ``fork``, ``spawn``, ``forkserver`` (worker
    processes started so), ``threads`` (the threads backend), or ``default`` (jupyter_par's
    defaults: processes, and the in-kernel fallback's sampling on).
``JP_CONFORMANCE_PARTITIONS``
    partitions per call (default 3), so a partition holds few rows or groups.
``JP_CONFORMANCE_REPORT``
    where to write, at session end, a JSON file with each test's outcome, its failure
    message, the test's own statement that failed, and how many of its calls were routed
    or passed through, and where each routed call ran: in the ``workers``, in the
    ``kernel`` (the inline fallback), or handed back to ``pandas`` whole
    (``tests/conformance/compare.py`` reads it).

jupyter_par's own informational warnings (:class:`JupyterParWarning`) are silenced
around routed calls: they say how jupyter_par ran, which pandas' tests cannot expect.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from types import CodeType, FrameType, FunctionType
from typing import Any

import pandas as pd
import pytest

MODES = ("plain", "fork", "spawn", "forkserver", "threads", "default")
#: Where a routed call ran (``RunRecord.ran``); "unknown" if it left no run record.
WHERE = ("workers", "kernel", "pandas", "unknown")
_TESTS_DIR = os.path.join(os.path.dirname(pd.__file__), "tests") + os.sep
_MAIN_PID = os.getpid()
_DISGUISE = os.path.join(os.path.dirname(pd.__file__), "_jp_conformance_wrapper.py")
_MISSING = object()

#: Keywords jupyter_par takes for itself (a pandas or func keyword so named cannot be routed).
JP_OPTIONS = frozenset({"jobs", "backend", "partitions", "timeout", "retries", "on_error",
                        "start_method", "progress", "scheduler", "shared", "inline_fallback"})
#: Keywords jp.groupby_apply gives to ``groupby`` rather than to the function.
GROUPBY_FLAGS = ("sort", "dropna", "group_keys", "observed", "as_index", "level")
#: A routed call: jupyter_par's function, its positional and its keyword arguments.
Plan = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _State:
    """What the session routed: per test and in total."""

    def __init__(self) -> None:
        self.mode = os.environ.get("JP_CONFORMANCE_MODE", "plain")
        if self.mode not in MODES:
            msg = f"JP_CONFORMANCE_MODE must be one of {', '.join(MODES)}, got {self.mode!r}"
            raise pytest.UsageError(msg)
        self.partitions = int(os.environ.get("JP_CONFORMANCE_PARTITIONS", "3"))
        self.nodeid: str | None = None
        self.routing = False
        self.routed: collections.Counter[str] = collections.Counter()
        self.ran: collections.Counter[str] = collections.Counter()
        self.passed: collections.Counter[tuple[str, str]] = collections.Counter()
        self.examples: dict[tuple[str, str], str] = {}
        self.tests: dict[str, dict[str, Any]] = {}
        self.saved: list[tuple[type, str, Any]] = []

    def test(self) -> dict[str, Any]:
        return _record(self.nodeid or "<outside tests>")

    def options(self) -> dict[str, Any]:
        common = {"jobs": 2, "partitions": self.partitions, "progress": False,
                  "inline_fallback": False}
        if self.mode == "default":  # the path a user's call takes: fallback sampling on
            return {"jobs": 2, "partitions": self.partitions, "progress": False}
        if self.mode == "threads":
            return {**common, "backend": "threads"}
        return {**common, "backend": "processes", "start_method": self.mode}


STATE = _State()


# --- deciding whether, and how, a call is routed -------------------------------------

def _test_caller() -> FrameType | None:
    """The calling frame if it is pandas' test code in the tests' own thread, else None."""
    if STATE.routing or os.getpid() != _MAIN_PID:
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    caller = sys._getframe(2)  # 0: here, 1: the wrapper, 2: whoever called the method
    return caller if caller.f_code.co_filename.startswith(_TESTS_DIR) else None


_trampolines: dict[tuple[str, int], CodeType] = {}


def _call_from(caller: FrameType, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)`` from a frame bearing the caller's file, line and globals.

    pandas points its warnings at the first frame outside pandas (``find_stack_level``)
    and its tests check that this is the test file; jupyter_par points the warnings it
    re-emits at whoever called it. A plain wrapper here would be that frame, so the
    wrapper calls on through this one-line function compiled as if it stood at the
    caller's line: warnings and their once-per-location registry see the test's line.
    """
    where = (caller.f_code.co_filename, caller.f_lineno)
    code = _trampolines.get(where)
    if code is None:
        source = "def _call(__call, /, *args, **kwargs):\n    return __call(*args, **kwargs)\n"
        module = compile(source, where[0], "exec")
        code = next(c for c in module.co_consts if isinstance(c, CodeType))
        code = code.replace(co_firstlineno=max(where[1] - 1, 1))
        _trampolines[where] = code
    return FunctionType(code, caller.f_globals)(call, *args, **kwargs)


def _bind(original: Callable[..., Any], obj: Any, args: tuple, kwargs: dict
          ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The call's named arguments and its extra keywords, or None where pandas would refuse it."""
    signature = inspect.signature(original)
    try:
        bound = signature.bind(obj, *args, **kwargs)
    except TypeError:
        return None
    named = dict(bound.arguments)
    named.pop(next(iter(signature.parameters)))  # self
    extra: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = named.pop(name, {})
    return named, extra


def _clash(names: Any, taken: frozenset[str] | set[str]) -> str | None:
    hit = sorted(set(names) & set(taken))
    return f"keyword named like a jupyter_par argument: {', '.join(hit)}" if hit else None


def _kind(value: Any) -> str:
    return type(value).__name__


def plan_apply(original: Callable[..., Any], obj: Any, args: tuple, kwargs: dict
               ) -> Plan | str:
    """``DataFrame.apply`` / ``Series.apply`` as ``jp.apply``, or why it cannot be."""
    import jupyter_par as jp

    bound = _bind(original, obj, args, kwargs)
    if bound is None:
        return "arguments pandas itself refuses"
    named, extra = bound
    func = named.pop("func", _MISSING)
    if func is _MISSING or not callable(func):
        return f"func is not callable ({_kind(func)})"
    taken = JP_OPTIONS | {"obj", "func"} | ({"axis"} if isinstance(obj, pd.Series) else set())
    reason = _clash(extra, taken)
    if reason:
        return reason
    return jp.apply, (obj, func), {**named, **extra, **STATE.options()}


def plan_map(original: Callable[..., Any], obj: Any, args: tuple, kwargs: dict
             ) -> Plan | str:
    """``Series.map`` as ``jp.map``, or why it cannot be."""
    import jupyter_par as jp

    bound = _bind(original, obj, args, kwargs)
    if bound is None:
        return "arguments pandas itself refuses"
    named, extra = bound
    # pandas 3 names the mapping ``func``, pandas 2 ``arg``.
    arg = named.pop("func", named.pop("arg", _MISSING))
    if not (callable(arg) or isinstance(arg, dict | pd.Series)):
        return f"map arg is {_kind(arg)} (neither callable, dict nor Series)"
    reason = _clash(extra, JP_OPTIONS | {"obj", "func"})
    if reason:
        return reason
    return jp.map, (obj, arg), {**named, **extra, **STATE.options()}


def plan_groupby_apply(original: Callable[..., Any], grouped: Any, args: tuple, kwargs: dict
                       ) -> Plan | str:
    """``groupby(...).apply`` as ``jp.groupby_apply``, or why it cannot be."""
    import jupyter_par as jp

    if args:
        func, args = args[0], args[1:]
    elif "func" in kwargs:
        kwargs = dict(kwargs)
        func = kwargs.pop("func")
    else:
        return "arguments pandas itself refuses"
    if not callable(func):
        return f"func is not callable ({_kind(func)})"
    selection = getattr(grouped, "_selection", None)
    if selection is not None:
        # -- issue 23, groupby helper: a column selection goes through gb[cols].par.apply
        import jp_route_groups

        return jp_route_groups.plan_groupby_apply_selected(func, grouped, args, kwargs)
        # -- end groupby helper
    if getattr(grouped, "axis", 0) not in (0, "index"):
        return "groupby(axis=1)"
    reason = _clash(kwargs, JP_OPTIONS | set(GROUPBY_FLAGS) | {"obj", "by", "func"})
    if reason:
        return reason
    flags = {name: getattr(grouped, name) for name in GROUPBY_FLAGS}
    if flags["level"] is None:
        del flags["level"]
    if grouped.keys is None and "level" not in flags:
        return "groupby without keys or level"
    return (jp.groupby_apply, (grouped.obj, grouped.keys, func, *args),
            {**flags, **kwargs, **STATE.options()})


# --- the wrappers -------------------------------------------------------------------

@contextlib.contextmanager
def _routing() -> Iterator[None]:
    from jupyter_par.errors import JupyterParWarning

    STATE.routing = True
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=JupyterParWarning)
            yield
    finally:
        STATE.routing = False


def _wrapper(method: str, original: Callable[..., Any],
             plan: Callable[..., Plan | str]) -> Callable[..., Any]:
    @functools.wraps(original)
    def routed(self: Any, *args: Any, **kwargs: Any) -> Any:
        caller = _test_caller()
        if caller is None:
            return original(self, *args, **kwargs)
        call = plan(original, self, args, kwargs)
        record = STATE.test()
        if isinstance(call, str):
            STATE.passed[(method, call)] += 1
            STATE.examples.setdefault((method, call), STATE.nodeid or "")
            record["passed_through"] += 1
            if call not in record["reasons"]:
                record["reasons"].append(call)
            return _call_from(caller, original, self, *args, **kwargs)
        STATE.routed[method] += 1
        record["routed"] += 1
        function, call_args, call_kwargs = call
        with _routing():
            _forget_last_run()
            try:
                return _call_from(caller, function, *call_args, **call_kwargs)
            finally:
                _count_where_it_ran(record)

    # pandas points a warning at the first frame outside its package. This wrapper also
    # runs inside jupyter_par's workers (threads, forked processes), where it must not be
    # that frame: its code is named as a file in pandas, so that frame stays the caller.
    routed.__code__ = routed.__code__.replace(co_filename=_DISGUISE)
    return routed


def _forget_last_run() -> None:
    from jupyter_par.progress import timings

    timings.remember(None)  # type: ignore[arg-type]


def _count_where_it_ran(record: dict[str, Any]) -> None:
    """Count where the routed call ran: a call handed back to pandas is routed in name
    only, and compare.py holds each run to a floor of calls that reached the workers."""
    import jupyter_par as jp

    run = jp.last_run()
    where = run.ran if run is not None else "unknown"
    STATE.ran[where] += 1
    record["ran"][where] = record["ran"].get(where, 0) + 1


def _targets() -> list[tuple[type, str, str, Callable[..., Any]]]:
    import jp_route_windows  # rolling / expanding / resample (issue 23): their own module

    grouped = pd.api.typing
    return [*jp_route_windows.targets(),
        (pd.DataFrame, "apply", "DataFrame.apply", plan_apply),
        (pd.Series, "apply", "Series.apply", plan_apply),
        (pd.Series, "map", "Series.map", plan_map),
        (grouped.DataFrameGroupBy, "apply", "DataFrameGroupBy.apply", plan_groupby_apply),
        (grouped.SeriesGroupBy, "apply", "SeriesGroupBy.apply", plan_groupby_apply),
        # -- issue 23, groupby helper: transform / agg / filter and DataFrame.map via .par
        *_group_targets(),
        # -- end groupby helper
    ]


def _group_targets() -> list[tuple[type, str, str, Callable[..., Any]]]:
    import jp_route_groups

    return jp_route_groups.targets()


def install() -> None:
    """Put the wrappers in place (undone by :func:`uninstall`)."""
    for cls, name, label, plan in _targets():
        STATE.saved.append((cls, name, cls.__dict__.get(name, _MISSING)))
        setattr(cls, name, _wrapper(label, getattr(cls, name), plan))


def uninstall() -> None:
    while STATE.saved:
        cls, name, previous = STATE.saved.pop()
        if previous is _MISSING:
            delattr(cls, name)
        else:
            setattr(cls, name, previous)


# --- pytest hooks ---------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    if STATE.mode == "default":
        # pandas' inputs are tiny: under the fallback's size threshold nothing would be
        # sampled, and this run would repeat the fork run. At 0 every call takes the
        # default path: sampled in the kernel, then run there or sent to the workers.
        from jupyter_par.run import fallback

        fallback.SAMPLE_ABOVE_BYTES = 0
    if STATE.mode != "plain":
        install()


def pytest_unconfigure(config: pytest.Config) -> None:
    uninstall()
    if STATE.mode != "plain":
        import jupyter_par as jp

        jp.shutdown()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    STATE.nodeid = item.nodeid
    try:
        return (yield)
    finally:
        STATE.nodeid = None


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    return report.outcome


def _message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.strip()[:2000]


def _record(nodeid: str) -> dict[str, Any]:
    return STATE.tests.setdefault(nodeid, {"outcome": None, "message": "", "where": "",
                                           "routed": 0, "passed_through": 0, "reasons": [],
                                           "ran": {}})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Note the test's own statement that failed (excuses name it, see compare.py)."""
    report = yield
    if call.excinfo is not None and report.failed and not _record(item.nodeid)["where"]:
        for entry in reversed(call.excinfo.traceback):
            if str(entry.path) == str(item.path):
                _record(item.nodeid)["where"] = str(entry.statement).strip()[:500]
                break
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record = _record(report.nodeid)
    outcome = _outcome(report)
    # The test's outcome: its call's, unless setup or teardown failed (or setup skipped).
    decides = report.when == "call" or report.failed or record["outcome"] is None
    if decides and record["outcome"] not in ("failed", "error"):
        record["outcome"] = outcome
        if report.failed:
            record["message"] = _message(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("JP_CONFORMANCE_REPORT")
    if not path:
        return
    data = {
        "mode": STATE.mode,
        "pandas": pd.__version__,
        "partitions": STATE.partitions,
        "routed_calls": dict(STATE.routed),
        "ran_calls": {where: STATE.ran.get(where, 0) for where in WHERE},
        "passed_through_calls": [
            {"method": m, "reason": r, "count": n, "example": STATE.examples[(m, r)]}
            for (m, r), n in STATE.passed.most_common()
        ],
        "tests": STATE.tests,
    }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, default=str)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if STATE.mode == "plain":
        return
    write = terminalreporter.write_line
    terminalreporter.section(f"jupyter_par routing ({STATE.mode}, pandas {pd.__version__})")
    routed_tests = sum(1 for t in STATE.tests.values() if t["routed"])
    write(f"routed calls: {sum(STATE.routed.values())} "
          f"({', '.join(f'{m} {n}' for m, n in STATE.routed.most_common())}) "
          f"in {routed_tests} tests")
    write("routed calls ran in: " + ", ".join(f"{w} {STATE.ran.get(w, 0)}" for w in WHERE))
    import jp_route_windows

    jp_route_windows.summary(write)
    write(f"passed-through calls: {sum(STATE.passed.values())}")
    for (method, reason), count in STATE.passed.most_common():
        write(f"  {count:5d}  {method}: {reason}  (e.g. {STATE.examples[(method, reason)]})")
