"""The benchmark: every workload, every method, side by side, each in a fresh process.

Usage (from the repository root)::

    bash benchmarks/setup_envs.sh            # once: joblib here, the other tools in .venv-bench-old
    .venv/bin/python benchmarks/run.py       # full sizes, all methods, 2 workers on 2 cores
    .venv/bin/python benchmarks/run.py --quick --methods serial,recipe,jupyter_par

Each (workload, method) pair runs in its own new Python process (``_child.py``): it
builds the data from a fixed seed, runs the method once and checks the result against
serial pandas, then times it while sampling the memory of its whole process tree.
Tools that do not run on the installed pandas run in ``.venv-bench-old`` and are
compared with serial pandas *of that environment*. Workload 7 also runs through a
real kernel (``kernel_bench.py``): the API and the ``%%parallel`` magic in a warm
kernel, and the first run in a fresh kernel under spawn.

Writes ``results/latest.md`` (and a dated copy), ``results/latest.json`` and
``results/speedup.png`` (speedup of workload 1 against the number of workers).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import methods  # noqa: E402
import workloads  # noqa: E402

PYTHONS = {
    "main": sys.executable,
    "old": os.path.join(ROOT, ".venv-bench-old", "bin", "python"),
}


def _child(number: int, method: str, jobs: int, rows: int, ref: str, repeat: int,
           timeout: float) -> dict[str, Any]:
    env_name = methods.METHODS[method][1]
    python = PYTHONS[env_name]
    base = {"workload": number, "method": method, "jobs": jobs, "env": env_name}
    if not os.path.exists(python):
        return {**base, "error": "environment missing: run bash benchmarks/setup_envs.sh"}
    command = [python, os.path.join(HERE, "_child.py"), str(number), method, str(jobs),
               str(rows), ref, str(repeat)]
    # Other work on the machine slows every method; the table shows how much there was.
    base["load"] = os.getloadavg()[0]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"no result within {timeout:.0f} s"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {**base, "error": f"exit {done.returncode}: {last[:160]}"}
    return {**base, **json.loads(lines[-1])}


def _kernel(quick: bool, jobs: int, timeout: float) -> list[dict[str, Any]]:
    command = [sys.executable, os.path.join(HERE, "kernel_bench.py"), "--jobs", str(jobs)]
    load = os.getloadavg()[0]
    if quick:
        command.append("--quick")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        return [{"workload": 7, "method": "kernel", "error": "kernel benchmark timed out"}]
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return [{"workload": 7, "method": "kernel", "error": last[:160]}]
    return [{**json.loads(ln), "load": load} for ln in lines]


def _serial_of(rows: list[dict[str, Any]], number: int, env: str) -> dict[str, Any] | None:
    name = "serial" if env == "main" else "serial-old"
    for row in rows:
        if row["workload"] == number and row["method"] == name and "seconds" in row:
            return row
    return None


def table(rows: list[dict[str, Any]], jobs: int) -> str:
    """The markdown table: time, speedup and efficiency against serial, memory, correct.

    "CPU (s)" is what the whole process tree spent per timed run: it shows a method's
    overhead even when other load on the machine stretches wall times.
    """
    lines = [
        "| # | workload | method | pandas | workers | time (s) | speedup | efficiency "
        "| CPU (s) | peak mem (MB) | mem / serial | load | correct |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        number = row["workload"]
        title = workloads.WORKLOADS[number].title if number in workloads.WORKLOADS else ""
        if "error" in row:
            lines.append(f"| {number} | {title} | {row['method']} | | | failed: "
                         f"{row['error']} | | | | | | | no |")
            continue
        serial = _serial_of(rows, number, row.get("env", "main"))
        workers = row.get("workers", row["jobs"])
        speed = eff = mem_ratio = ""
        # A no-op has nothing to speed up: its row is about the fixed cost alone.
        if serial and number != 7 and row["method"] not in ("serial", "serial-old"):
            s = serial["seconds"] / row["seconds"]
            speed, eff = f"{s:.2f}", f"{s / workers:.2f}" if workers else ""
        if serial and row.get("peak_bytes") and serial.get("peak_bytes"):
            mem_ratio = f"{row['peak_bytes'] / serial['peak_bytes']:.2f}"
        memory = f"{row['peak_bytes'] / 2**20:.0f}" if row.get("peak_bytes") else ""
        cpu = f"{row['cpu_seconds']:.2f}" if row.get("cpu_seconds") is not None else ""
        load = f"{row['load']:.1f}" if row.get("load") is not None else ""
        seconds = row["seconds"]
        shown = f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds:.3f}"
        env = row.get("pandas", "")
        if row.get("env") == "old":
            env += " (old env)"
        lines.append(
            f"| {number} | {title} | {row['method']} | {env} | {workers} | {shown} | {speed} "
            f"| {eff} | {cpu} | {memory} | {mem_ratio} | {load} "
            f"| {'yes' if row.get('correct') else 'NO'} |"
        )
    return "\n".join(lines)


def plot(sweep: list[dict[str, Any]], path: str, cpus: int) -> None:
    """Speedup of workload 1 against the number of workers, with the ideal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    serial = next((r["seconds"] for r in sweep if r["method"] == "serial" and "seconds" in r),
                  None)
    if serial is None:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    counts = sorted({r["jobs"] for r in sweep if r["method"] != "serial"})
    ax.plot(counts, counts, "k--", label="ideal")
    for name in sorted({r["method"] for r in sweep} - {"serial"}):
        points = sorted((r["jobs"], serial / r["seconds"]) for r in sweep
                        if r["method"] == name and "seconds" in r)
        if points:
            ax.plot(*zip(*points), marker="o", label=name)
    ax.axvline(cpus, color="grey", linewidth=0.8)
    ax.set_xlabel("workers")
    ax.set_ylabel("speedup over serial pandas")
    ax.set_title(f"workload 1 (row apply), {cpus} CPUs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="workers")
    parser.add_argument("--methods", default=",".join(methods.METHODS),
                        help="comma-separated, of: " + ", ".join(methods.METHODS))
    parser.add_argument("--workloads", default="1,2,3,4,5,6,7")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (median)")
    parser.add_argument("--sweep", default="", help="worker counts for the plot (1,2,4)")
    parser.add_argument("--no-kernel", action="store_true", help="skip the real-kernel rows")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)

    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in methods.METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(methods.METHODS)}")
    # A tool's speedup is measured against serial pandas in its own environment.
    for env, serial in (("main", "serial"), ("old", "serial-old")):
        if any(methods.METHODS[m][1] == env for m in chosen) and serial not in chosen:
            chosen.insert(0, serial)
    chosen.sort(key=lambda m: (not m.startswith("serial"), list(methods.METHODS).index(m)))
    numbers = [int(n) for n in args.workloads.split(",")]
    os.makedirs(args.out, exist_ok=True)
    timeout = 300 if args.quick else 900

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jp-bench-") as refs:
        for number in numbers:
            spec = workloads.WORKLOADS[number]
            size = spec.quick_rows if args.quick else spec.rows
            for name in chosen:
                if number not in methods.METHODS[name][2]:
                    continue
                ref = os.path.join(refs, f"ref-{number}-{methods.METHODS[name][1]}.pkl")
                jobs = 1 if name.startswith("serial") else args.jobs
                row = _child(number, name, jobs, size, ref, args.repeat, timeout)
                if number == 6 and not name.startswith("serial"):
                    row["workers"] = methods.IO_WORKERS
                rows.append(row)
                print(_progress_line(row), flush=True)
        if 7 in numbers and not args.no_kernel and "jupyter_par" in chosen:
            for row in _kernel(args.quick, args.jobs, timeout):
                rows.append(row)
                print(_progress_line(row), flush=True)
        sweep: list[dict[str, Any]] = []
        if args.sweep:
            size = workloads.WORKLOADS[1].quick_rows if args.quick else workloads.WORKLOADS[1].rows
            ref = os.path.join(refs, "ref-1-main.pkl")
            sweep.append(_child(1, "serial", 1, size, ref, args.repeat, timeout))
            for count in [int(c) for c in args.sweep.split(",")]:
                for name in ("recipe", "joblib", "jupyter_par"):
                    if name in chosen:
                        sweep.append(_child(1, name, count, size, ref, args.repeat, timeout))
                        print(_progress_line(sweep[-1]), flush=True)

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
    header = (
        f"Run {stamp} on {platform.node() or 'this machine'}: {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {args.jobs} workers (load = the machine's "
        "1-minute load average when the row started; above the CPU count, other work "
        "competed for the CPUs)"
        f"{', quick sizes' if args.quick else ''}. Command: `python benchmarks/run.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`"
    )
    text = f"{header}\n\n{table(rows, args.jobs)}\n"
    print("\n" + text)
    for name in ("latest.md", f"bench-{stamp}.md"):
        with open(os.path.join(args.out, name), "w") as f:
            f.write(text)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump({"header": header, "rows": rows, "sweep": sweep}, f, indent=1)
    if sweep:
        plot(sweep, os.path.join(args.out, "speedup.png"), os.cpu_count() or 1)
    return 0 if all(r.get("correct") for r in rows + sweep) else 1


def _progress_line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"workload {row['workload']} {row['method']}: FAILED {row['error']}"
    return (f"workload {row['workload']} {row['method']} ({row.get('jobs')} workers): "
            f"{row['seconds']:.4f} s, correct={row.get('correct')}")


if __name__ == "__main__":
    sys.exit(main())
