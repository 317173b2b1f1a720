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


def _settings(op: Any) -> Hashable:
    """The operation's keyword settings (``raw=True`` and the like): plain values as
    they are, any other (an argument's data) by its type only."""
    kwargs = getattr(op, "kwargs", None)
    if not isinstance(kwargs, dict):
        return ()
    plain = (bool, int, float, str, type(None))
    return tuple(sorted((name, value if isinstance(value, plain) else type(value).__qualname__)
                        for name, value in kwargs.items()))


def key(label: str, op: Any, jobs: int, partitions: int) -> Hashable | None:
    """The call a verdict is remembered for: its form (the label: ``df.apply(axis=1)``),
    its operation's kind, function and settings, the workers and partitions; ``None``
    where the operation holds no user function (nothing to know it by)."""
    func = getattr(op, "func", None)
    if func is None:
        return None
    return (label, type(op).__qualname__, _code(func), _settings(op), jobs, partitions)


def _near(now: float, then: float) -> bool:
    if now == then:
        return True
    if now <= 0 or then <= 0:
        return False
    return 1 / SIZE_FACTOR <= now / then <= SIZE_FACTOR


def clear_for(call: Hashable | None, size: Input) -> bool:
    """Whether the workers clearly won this call before, on an input like ``size``, at
    no less free CPU than now: then it goes to them with no sample."""
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
