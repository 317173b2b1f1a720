"""Clear "workers" verdicts of the in-kernel fallback, remembered for the next call.

A notebook runs the same function over inputs of the same shape again and again (a cell
run again after an edit elsewhere, a loop over files, a tuning sweep). The fallback's
sample runs in the kernel before any worker starts: for a per-column apply its smallest
piece is a whole column, one sixteenth of a sixteen-column run; for a groupby, the first
groups and their pandas call (issue 28). Work the workers clearly win needs no second
look: where an earlier call of the same function, in the same call form, over an input
of about the same size, gave a verdict with the workers saving at least :data:`CLEAR`
times what moving costs them (or a first row so slow that no sample followed), the next
call goes to the workers at once, with no sample.

It samples again when the input is more than twice as large or small, when the worker
count changed, or when other processes now keep so many more CPUs busy that the margin,
scaled to what the workers would gain over the kernel now, falls under :data:`CLEAR`.
A "kernel" verdict is never remembered (and forgets a clear one): there the sample is
the run's own work, done where the rest of it runs, not a cost before it. The memory
lives in this process (a kernel), holds at most :data:`KEPT` calls, and :func:`forget`
clears it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from ..machine import load
from .moving import Input

#: The workers' saving over what moving costs them (by the verdict's own margin) at
#: which the next call of the same function skips the sample.
CLEAR = 2.0
#: An input this many times larger or smaller than the remembered one is sampled again.
SIZE_FACTOR = 2.0
#: Calls remembered, the least recently used dropped first.
KEPT = 64


@dataclass(frozen=True)
class _Verdict:
    rows: int
    weighted_bytes: float
    groups: int
    jobs: int
    busy: float  #: other processes' CPUs' worth of work while the sample ran
    margin: float  #: the workers' saving over what moving costs them, at that load

    def margin_now(self, busy: float) -> float:
        """The margin at the load ``busy`` now: the saving scales with what the workers
        gain over the kernel (:func:`~jupyter_par.machine.load.speedup`)."""
        then = 1 - 1 / load.speedup(self.jobs, self.busy)
        now = 1 - 1 / load.speedup(self.jobs, busy)
        return self.margin * now / then if then > 0 and now > 0 else 0.0


_remembered: OrderedDict[Hashable, _Verdict] = OrderedDict()


def forget() -> None:
    """Forget every remembered verdict: each next call samples again."""
    _remembered.clear()


def _code(func: Any) -> Hashable:
    """What identifies a function across runs of its cell: its code, not the object
    (a cell run again defines a new function, in a new ``<ipython-input-N>`` file)."""
    code = getattr(func, "__code__", None)
    if code is not None:
        consts: Hashable = code.co_consts
        try:
            hash(consts)
        except TypeError:  # an unhashable constant: its count, then
            consts = len(code.co_consts)
        return ("code", code.co_code, consts, code.co_names)
    inner = getattr(func, "func", None)  # functools.partial: its function, not its arguments
    if inner is not None and inner is not func:
        return ("partial", _code(inner))
    kind = type(func)
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return ("object", kind.__module__, kind.__qualname__, name)


_PLAIN = (bool, int, float, str, bytes, type(None))
#: Lists, tuples and dicts longer than this are data, known by their type only.
_ITEMS = 16


def _shape(value: Any, depth: int = 0) -> Hashable:
    """What a function spec or setting is known by: plain values as they are, functions
    by their code, classes by their names, short lists, tuples and dicts by their items
    (a GroupBy ``agg`` takes all three), anything else (an argument's data) by its type
    only."""
    if isinstance(value, _PLAIN):
        return value if not isinstance(value, str | bytes) or len(value) <= 256 else \
            ("long", type(value).__name__, len(value))
    if isinstance(value, type):
        return ("class", value.__module__, value.__qualname__)
    if callable(value):
        return _code(value)
    if depth < 3 and isinstance(value, list | tuple) and len(value) <= _ITEMS:
        return (type(value).__name__, *(_shape(v, depth + 1) for v in value))
    if depth < 3 and isinstance(value, dict) and len(value) <= _ITEMS:
        return ("dict", *sorted(((repr(k), _shape(v, depth + 1)) for k, v in value.items()),
                                key=repr))
    return ("type", type(value).__module__, type(value).__qualname__)


def _settings(op: Any) -> Hashable:
    """The operation's keyword settings (``raw=True``, a named ``agg``'s columns and
    functions): see :func:`_shape`."""
    kwargs = getattr(op, "kwargs", None)
    return _shape(kwargs) if isinstance(kwargs, dict) else ()


def key(label: str, op: Any, jobs: int, partitions: int) -> Hashable | None:
    """The call a verdict is remembered for: its form (the label: ``df.apply(axis=1)``),
    its operation's kind, method, function (or a GroupBy call's function spec) and
    settings, the workers and partitions; ``None`` where the operation holds no user
    function (nothing to know it by)."""
    func = getattr(op, "func", None)
    if func is None:
        func = getattr(op, "spec", None)
    if func is None:
        return None
    return (label, type(op).__qualname__, getattr(op, "method", None), _shape(func),
            _settings(op), jobs, partitions)


def _near(now: float, then: float) -> bool:
    if now == then:
        return True
    if now <= 0 or then <= 0:
        return False
    return 1 / SIZE_FACTOR <= now / then <= SIZE_FACTOR


def clear_for(call: Hashable | None, size: Input) -> bool:
    """Whether the workers clearly won this call before, on an input within
    :data:`SIZE_FACTOR` of ``size``, by a margin that is still :data:`CLEAR` at the load
    now: then it goes to them with no sample."""
    if call is None:
        return False
    then = _remembered.get(call)
    if then is None:
        return False
    if not (_near(size.rows, then.rows) and _near(size.weighted_bytes, then.weighted_bytes)
            and _near(size.groups, then.groups)):
        return False
    if then.margin_now(load.busy_elsewhere()) < CLEAR:
        return False  # other processes took enough CPUs since that it may not hold
    _remembered.move_to_end(call)
    return True


def note(call: Hashable | None, size: Input, jobs: int, busy: float,
         margin: float | None) -> None:
    """Remember a "workers" verdict for ``jobs`` workers given with ``margin`` (the
    saving over what moving costs; ``None``: not measured) at ``busy`` CPUs' worth of
    other work; a smaller margin forgets what was remembered for the call."""
    if call is None:
        return
    if margin is None or margin < CLEAR:
        _remembered.pop(call, None)
        return
    _remembered[call] = _Verdict(size.rows, size.weighted_bytes, size.groups, jobs, busy,
                                 margin)
    _remembered.move_to_end(call)
    while len(_remembered) > KEPT:
        _remembered.popitem(last=False)
