"""Compare a routed run of pandas' tests with the plain baseline; exit 1 on any difference.

    python tests/conformance/compare.py BASELINE.json ROUTED.json [EXCUSED.txt]

Both files are written by the ``jp_route`` plugin (``JP_CONFORMANCE_REPORT``). A test is a
conformance failure when it passes on plain pandas and does not pass routed, unless the
excused list names it and its failure message matches the pattern given there. Each line
of that list reads ``nodeid | regex | reason`` (fields separated by " | "; ``#`` lines and
blank lines ignored). The regex is searched in the test's own statement that failed, a
newline, then pytest's message: it pins the excuse to the one assertion that observes a
side effect or an identity, so that any other difference in the same test still fails.
Prints one summary line (routed tests, passed, excused, failed), then each failure with
its failing statement and pytest's one-line message.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

PASSING = ("passed",)


def read_excused(path: Path | None) -> dict[str, re.Pattern[str]]:
    """Node id -> the pattern its failure message must match, from ``nodeid | regex | reason``."""
    excused: dict[str, re.Pattern[str]] = {}
    if path is None or not path.exists():
        return excused
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(" | ")]
        if len(fields) != 3 or not all(fields):
            msg = f"{path}:{number}: expected 'nodeid | regex | reason', got {line!r}"
            raise SystemExit(msg)
        excused[fields[0]] = re.compile(fields[1])
    return excused


def _excused(nodeid: str, got: dict, excused: dict[str, re.Pattern[str]]) -> bool:
    """Whether the failure is the excused one: same test (any parameters if none are
    named), and the failing statement or message matches the excuse's pattern."""
    pattern = excused.get(nodeid) or excused.get(nodeid.split("[", 1)[0])
    return pattern is not None and bool(
        pattern.search(f"{got.get('where', '')}\n{got.get('message', '')}"))


def compare(baseline: dict, routed: dict, excused: dict[str, re.Pattern[str]]
            ) -> tuple[dict, list, list]:
    """Counts, the failures (nodeid, outcome, message) and the stale excuses."""
    base_tests, tests = baseline["tests"], routed["tests"]
    counts = {"tests": 0, "routed tests": 0, "passed": 0, "excused": 0, "failed": 0}
    failures, stale = [], []
    for nodeid, base in base_tests.items():
        if base["outcome"] != "passed":
            continue  # only what plain pandas passes is held to conformance
        counts["tests"] += 1
        got = tests.get(nodeid, {"outcome": "not run", "message": "", "routed": 0})
        if got.get("routed"):
            counts["routed tests"] += 1
        if got["outcome"] in PASSING:
            if got.get("routed"):
                counts["passed"] += 1
            if got.get("routed") and (nodeid in excused or nodeid.split("[", 1)[0] in excused):
                stale.append(nodeid)
        elif _excused(nodeid, got, excused):
            counts["excused"] += 1
        else:
            counts["failed"] += 1
            failures.append((nodeid, got["outcome"], got.get("where", ""),
                             got.get("message", "")))
    return counts, failures, stale


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    baseline = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    routed = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    excused = read_excused(Path(argv[2]) if len(argv) == 3 else None)
    counts, failures, stale = compare(baseline, routed, excused)
    if counts["tests"] == 0:
        print(f"{argv[0]}: no test passed on plain pandas; nothing to compare", file=sys.stderr)
        return 2
    calls = sum(routed["routed_calls"].values())
    through = sum(p["count"] for p in routed["passed_through_calls"])
    print(f"[{routed['mode']}, pandas {routed['pandas']}] "
          f"{counts['tests']} tests pass plain; routed tests {counts['routed tests']}: "
          f"passed {counts['passed']}, excused {counts['excused']}, failed {counts['failed']} "
          f"(calls routed {calls}, passed through {through})")
    for nodeid, outcome, where, message in failures:
        first = message.splitlines()[0] if message else ""
        at = f" at `{where.splitlines()[0][:100]}`" if where else ""
        print(f"  FAIL {nodeid} [{outcome}]{at}: {first[:300]}")
    if stale:
        print(f"  ({len(stale)} excused tests passed routed in this run)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
