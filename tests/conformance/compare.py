"""Compare a routed run of pandas' tests with the plain baseline; exit 1 on any difference.

    python tests/conformance/compare.py BASELINE.json ROUTED.json [EXCUSED.txt]

Both files are written by the ``jp_route`` plugin (``JP_CONFORMANCE_REPORT``). A test is a
conformance failure when it passes on plain pandas and does not pass routed, unless the
excused list names it and its failure message matches the pattern given there. Each line
of that list reads ``nodeid | regex | reason`` or ``nodeid | regex | reason | only``
(fields separated by " | "; ``#`` lines and blank lines ignored). The regex must be
anchored (start with ``^``): it is matched at the start of the test's own statement that
failed, then a newline and pytest's message follow, so it pins the excuse to the one
assertion that observes a side effect or an identity, and any other difference in the
same test still fails. ``only`` limits the excuse to some runs: modes (``fork``,
``spawn``, ``forkserver``, ``threads``, ``default``) and pandas majors (``pandas2``,
``pandas3``); an excuse applies where every kind of condition it names holds. One test may
have one excuse per disjoint set of modes. A regex with the named groups ``got`` and
``want`` excuses only when both are printed lists of the same items (order aside): under
threads, side effects arrive in completion order, and that is all such an excuse allows;
for a "fallback:" excuse ``got`` may hold part of ``want``'s items, none twice (the sample's
rows ran in the kernel, the rest in workers).
An excuse whose reason starts with "order:" or "fallback:" may excuse nothing in a run
(which thread finishes first, or the fallback's timed verdict, decides whether the test
fails), so it is never stale.

The run fails (exit 1), besides on a failure, when:

- no test had a call reach jupyter_par's workers (nothing was routed, in effect);
- fewer routed calls reached the workers than the floor for the mode (:data:`FLOORS`):
  a call jupyter_par hands back to pandas whole (empty input, a dict mapper, a ufunc,
  a function's name) or runs in the kernel is routed in name only;
- an excuse that applies to this run excused nothing (stale: the test passed, or was not
  run): the list must say exactly what fails.

Prints one summary line (routed tests, passed, excused, failed; where the routed calls
ran), then each failure with its failing statement and pytest's one-line message.
"""

from __future__ import annotations

import ast
import collections
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

PASSING = ("passed",)
MODES = frozenset({"fork", "spawn", "forkserver", "threads", "default"})
PANDAS = frozenset({"pandas2", "pandas3"})
#: Least share of routed calls that must reach the workers, per mode. With no inline
#: fallback about 30% do over pandas' apply, map, groupby and window files (pandas 3.1:
#: 879 of 2,854); the rest are handed to pandas whole by design (function names such as
#: agg("sum"), dict mappers, empty inputs). On the default path the fallback runs pandas'
#: small inputs in the kernel.
FLOORS = {"fork": 0.25, "spawn": 0.25, "forkserver": 0.25, "threads": 0.25, "default": 0.02}


@dataclass(frozen=True)
class Excuse:
    """One line of the excused list."""

    pattern: re.Pattern[str]
    reason: str
    modes: frozenset[str] = frozenset()
    pandas: frozenset[str] = frozenset()
    #: The test it excuses (a node id may have one excuse per disjoint set of modes).
    nodeid: str = ""

    @property
    def may_pass(self) -> bool:
        """An excuse for completion order under threads ("order: ...") or for the default
        path's timing-based verdict ("fallback: ..."): whether the test fails depends on
        timing, so excusing nothing in a run is not stale."""
        return self.reason.startswith(("order:", "fallback:"))

    def applies(self, mode: str, pandas_version: str) -> bool:
        major = f"pandas{pandas_version.split('.', 1)[0]}"
        return (not self.modes or mode in self.modes) and \
            (not self.pandas or major in self.pandas)


def read_excused(path: Path | None) -> dict[str, Excuse]:
    """Node id -> its excuse, from ``nodeid | regex | reason [| only]``."""
    excused: dict[str, Excuse] = {}
    if path is None or not path.exists():
        return excused
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(" | ")]
        where = f"{path}:{number}"
        if len(fields) not in (3, 4) or not all(fields):
            msg = f"{where}: expected 'nodeid | regex | reason [| only]', got {line!r}"
            raise SystemExit(msg)
        if not fields[1].startswith("^"):
            msg = (f"{where}: the regex {fields[1]!r} must start with '^' (anchored at the "
                   "failing statement), or it excuses other failures of the test too")
            raise SystemExit(msg)
        only = frozenset(fields[3].split()) if len(fields) == 4 else frozenset()
        unknown = only - MODES - PANDAS
        if unknown:
            msg = (f"{where}: unknown condition(s) {' '.join(sorted(unknown))}; "
                   f"use modes {' '.join(sorted(MODES))} or {' '.join(sorted(PANDAS))}")
            raise SystemExit(msg)
        key, modes = fields[0], only & MODES
        if key in excused:
            first = excused[key].modes
            if not first or not modes or first & modes:
                msg = (f"{where}: {key} has a second excuse for the same runs; give each "
                       "excuse of one test its own modes")
                raise SystemExit(msg)
            key = f"{key} | {' '.join(sorted(modes))}"
        excused[key] = Excuse(re.compile(fields[1]), fields[2], modes, only & PANDAS,
                              fields[0])
    return excused


def applicable(excused: dict[str, Excuse], mode: str, pandas_version: str
               ) -> dict[str, Excuse]:
    """The excuses that apply to a run in ``mode`` on ``pandas_version``."""
    return {e.nodeid or k: e for k, e in excused.items() if e.applies(mode, pandas_version)}


def _excuse_for(nodeid: str, excused: dict[str, Excuse]) -> tuple[str, Excuse] | None:
    for key in (nodeid, nodeid.split("[", 1)[0]):
        if key in excused:
            return key, excused[key]
    return None


def _excused(nodeid: str, got: dict, excused: dict[str, Excuse]) -> str | None:
    """The excuse's key if the failure is the excused one: same test (any parameters if
    none are named), and the failing statement, then the message, match its pattern."""
    found = _excuse_for(nodeid, excused)
    if found is None:
        return None
    key, excuse = found
    text = f"{got.get('where', '')}\n{got.get('message', '')}"
    match = excuse.pattern.match(text)
    if match is None:
        return None
    if "got" in excuse.pattern.groupindex and not _same_items(
            match["got"], match["want"], part=excuse.reason.startswith("fallback:")):
        return None
    return key


#: numpy scalars as pandas' tests print them (``np.int64(2)``): their values compare.
_NUMPY_SCALAR = re.compile(r"\bnp\.\w+\(([^()]*)\)")


def _same_items(got: str | None, want: str | None, *, part: bool = False) -> bool:
    """Whether two printed lists hold the same items, each as often (only the order
    differs): what an excuse for completion order under threads may excuse, and no more
    (a row run twice, or not at all, still fails). With ``part``, ``got`` may hold only some
    of them, none twice: the rows the fallback's sample ran in the kernel."""
    try:
        left, right = (ast.literal_eval(_NUMPY_SCALAR.sub(r"\1", text or ""))
                       for text in (got, want))
    except (ValueError, SyntaxError):
        return False
    if not isinstance(left, list) or not isinstance(right, list):
        return False
    try:
        have, need = collections.Counter(left), collections.Counter(right)
    except TypeError:  # unhashable items
        have, need = collections.Counter(map(repr, left)), collections.Counter(map(repr, right))
    return have <= need if part else have == need


def compare(baseline: dict, routed: dict, excused: dict[str, Excuse]
            ) -> tuple[dict, list, list]:
    """Counts, the failures (nodeid, outcome, where, message) and the stale excuses
    (those given, assumed to apply to this run, that excused no failure)."""
    base_tests, tests = baseline["tests"], routed["tests"]
    counts = {"tests": 0, "routed tests": 0, "through workers": 0, "passed": 0,
              "excused": 0, "failed": 0}
    failures, used = [], set()
    for nodeid, base in base_tests.items():
        if base["outcome"] != "passed":
            continue  # only what plain pandas passes is held to conformance
        counts["tests"] += 1
        got = tests.get(nodeid, {"outcome": "not run", "message": "", "routed": 0})
        if got.get("routed"):
            counts["routed tests"] += 1
        if got.get("ran", {}).get("workers"):
            counts["through workers"] += 1
        if got["outcome"] in PASSING:
            if got.get("routed"):
                counts["passed"] += 1
            continue
        key = _excused(nodeid, got, excused)
        if key is not None:
            counts["excused"] += 1
            used.add(key)
        else:
            counts["failed"] += 1
            failures.append((nodeid, got["outcome"], got.get("where", ""),
                             got.get("message", "")))
    # An excuse for a file this run did not include (JP_CONFORMANCE_FILES) is not stale.
    files = {nodeid.split("::", 1)[0] for nodeid in base_tests}
    stale = sorted(key for key in set(excused) - used
                   if not excused[key].may_pass and key.split("::", 1)[0] in files)
    return counts, failures, stale


def floor_problems(routed: dict, counts: dict) -> list[str]:
    """Why the run did not route enough through the workers (empty if it did)."""
    problems = []
    if counts["through workers"] == 0:
        problems.append("no test had a call reach jupyter_par's workers: nothing was "
                        "really routed (is the jp_route plugin loaded?)")
    calls = sum(routed.get("routed_calls", {}).values())
    workers = routed.get("ran_calls", {}).get("workers", 0)
    floor = FLOORS.get(routed.get("mode", ""), 0.0)
    if calls and workers < floor * calls:
        problems.append(f"only {workers} of {calls} routed calls reached the workers "
                        f"(floor for {routed.get('mode')}: {floor:.0%}); the rest ran in "
                        "the kernel or were handed back to pandas")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    baseline = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    routed = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    excused = applicable(read_excused(Path(argv[2]) if len(argv) == 3 else None),
                         routed["mode"], routed["pandas"])
    counts, failures, stale = compare(baseline, routed, excused)
    if counts["tests"] == 0:
        print(f"{argv[0]}: no test passed on plain pandas; nothing to compare", file=sys.stderr)
        return 2
    calls = sum(routed["routed_calls"].values())
    through = sum(p["count"] for p in routed["passed_through_calls"])
    ran = routed.get("ran_calls", {})
    print(f"[{routed['mode']}, pandas {routed['pandas']}] "
          f"{counts['tests']} tests pass plain; routed tests {counts['routed tests']} "
          f"({counts['through workers']} through the workers): "
          f"passed {counts['passed']}, excused {counts['excused']}, failed {counts['failed']} "
          f"(calls routed {calls}: workers {ran.get('workers', 0)}, "
          f"kernel {ran.get('kernel', 0)}, handed to pandas {ran.get('pandas', 0)}; "
          f"passed through {through})")
    for nodeid, outcome, where, message in failures:
        first = message.splitlines()[0] if message else ""
        at = f" at `{where.splitlines()[0][:100]}`" if where else ""
        print(f"  FAIL {nodeid} [{outcome}]{at}: {first[:300]}")
    for key in stale:
        print(f"  STALE excuse {key}: it excused nothing in this run (the test passed or "
              "did not run); remove it, or limit it to the runs it applies to")
    problems = floor_problems(routed, counts)
    for problem in problems:
        print(f"  FAIL {problem}")
    return 1 if failures or stale or problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
