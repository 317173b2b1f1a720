#!/usr/bin/env bash
# The whole test suite, from a fresh machine (CI runs exactly this; README "Run the tests"):
#   install; lint the Python and the lab extension and run the extension's unit tests;
#   pandas' own apply / map / groupby-apply tests routed through jupyter_par on the newest
#   pandas; the engine suite and the routed suites on Python 3.10 (pandas 2.x), 3.12 and 3.13
#   (venvs made while the first steps run); the wheel as users get it; the documentation;
#   then every test on the newest pandas (the real kernels, the browser, the Dask cluster).
# Which runs where: README "Run the tests". Each step's time is printed, and all of them at
# the end. JP_CI_EXTRA_PYTHONS picks the other interpreters (default "3.10 3.12 3.13").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGS=$ROOT/test-artifacts/ci
mkdir -p "$LOGS"
CI_START=$(date +%s)
STEP_TIMES=()
step() { STEP=$1; STEP_START=$(date +%s); echo "== $STEP"; }
done_step() {
  local took=$(( $(date +%s) - STEP_START ))
  STEP_TIMES+=("$(printf '%6s s  %s' "$took" "$STEP")")
  echo "== $STEP: ${took} s"
}
summary() {
  echo "== step times (s):"
  printf '   %s\n' "${STEP_TIMES[@]}"
  echo "   total: $(( $(date +%s) - CI_START )) s"
}
trap summary EXIT

# The test files that need no Jupyter, browser or cluster: run on every interpreter.
ENGINE_SUITE=(tests/test_api.py tests/test_engine.py tests/test_properties.py
  tests/test_same_as_pandas.py tests/test_pipeline.py tests/test_group_split.py
  tests/test_text_transport.py tests/test_arrow.py)
# ... and where pandas or Python differ most from the full suite's (3.10, pandas 2.x): the
# group calls and their assembly, windows, exactly-once, resume, worker_init, imap, the
# fallback's verdict and the per-column sample too.
ENGINE_SUITE_MORE=(tests/test_group_calls.py tests/test_group_calls_properties.py
  tests/test_windows.py tests/test_exactly_once.py tests/test_resume.py
  tests/test_worker_init.py tests/test_imap.py tests/test_group_assembly.py
  tests/test_cost.py tests/test_column_sample.py)

# The other interpreters: version | pandas | pyarrow or not | the engine suite's start
# methods | the routed suites' modes: every method runs on more than one interpreter,
# without every method everywhere.
# 3.10 is the pandas 2.x run: engine suite under every method, routed suites under spawn
# (the most pickling) and threads (no pickling); 3.12 runs forkserver (the default from
# 3.14) without pyarrow; 3.13 runs fork (which 3.12+ warns about in threaded processes).
# 3.12 and 3.13 run the routed suites over pandas' apply / map / groupby-apply files only
# (CORE_FILES): the groupby and window files run on 3.11 (pandas 3) and 3.10 (pandas 2), and
# the whole CI run must stay within its time.
EXTRA=(
  "3.10|pandas>=2.2,<3|pyarrow|fork spawn forkserver|spawn threads|"
  "3.12|pandas>=3|no-pyarrow|forkserver|forkserver|core"
  "3.13|pandas>=3|pyarrow|fork|fork|core"
)
CORE_FILES="apply/test_frame_apply.py apply/test_series_apply.py series/methods/test_map.py
  groupby/test_apply.py"
WANTED=${JP_CI_EXTRA_PYTHONS-"3.10 3.12 3.13"}

find_python() {  # the newest pyenv build of version $1, or python$1 on PATH
  local found=""
  if command -v pyenv >/dev/null; then
    found=$(ls -d "$(pyenv root)"/versions/"$1".* 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$found" ] && [ -x "$found/bin/python" ] && { echo "$found/bin/python"; return; }
  fi
  command -v "python$1" || true
}

step "install: .venv (newest pandas, pyarrow, the lab extension, test tools)"
bash scripts/bootstrap.sh
done_step

# The other interpreters' venvs are made in the background (downloads and unpacking) while
# lint, the engine suite and the routed suites run.
RUNS=()
for entry in "${EXTRA[@]}"; do
  IFS='|' read -r ver pandas arrow methods modes files <<<"$entry"
  case " $WANTED " in *" $ver "*) ;; *) echo "== Python $ver: skipped (JP_CI_EXTRA_PYTHONS)"; continue ;; esac
  python=$(find_python "$ver")
  if [ -z "$python" ] && [ "$ver" = 3.10 ]; then
    python=$(command -v python3)  # the pandas 2.x run is kept, on the machine's Python
    echo "== Python 3.10: not found (pyenv or python3.10 on PATH); its pandas 2.x run uses $python"
  elif [ -z "$python" ]; then
    echo "== Python $ver: skipped, no interpreter found (pyenv or python$ver on PATH)"
    continue
  fi
  RUNS+=("$ver|$python|$pandas|$arrow|$methods|$modes|$files")
done
(
  for run in "${RUNS[@]}"; do
    IFS='|' read -r ver python pandas arrow methods modes files <<<"$run"
    started=$(date +%s)
    flag=""; [ "$arrow" = no-pyarrow ] && flag=--no-pyarrow
    if PYTHON=$python bash scripts/bootstrap.sh --engine ".venv-py$ver" "$pandas" $flag \
         >"$LOGS/venv-py$ver.log" 2>&1; then
      echo "ok $(( $(date +%s) - started ))" >"$LOGS/venv-py$ver.status"
    else
      echo "failed $(( $(date +%s) - started ))" >"$LOGS/venv-py$ver.status"
    fi
  done
) &
VENVS_PID=$!

step "lint: ruff, and eslint + prettier + vitest for the lab extension"
.venv/bin/ruff check jupyter_par tests benchmarks docs
(cd labextension && ../.venv/bin/jlpm lint:check && ../.venv/bin/jlpm test)
done_step

PN=$(.venv/bin/python -c 'import pandas; print("pandas", pandas.__version__)')
step "pandas' own tests routed through jupyter_par, Python 3.11, $PN with pyarrow"
bash scripts/conformance.sh .venv/bin/python
done_step

step "wait for the other interpreters' venvs"
wait "$VENVS_PID"
done_step
for run in "${RUNS[@]}"; do
  IFS='|' read -r ver python pandas arrow methods modes files <<<"$run"
  read -r state took <"$LOGS/venv-py$ver.status"
  if [ "$state" != ok ]; then
    echo "== Python $ver: making .venv-py$ver failed after $took s:" >&2
    tail -30 "$LOGS/venv-py$ver.log" >&2
    exit 1
  fi
  py=.venv-py$ver/bin/python
  what=$("$py" -c 'import importlib.util as u, pandas, sys; print(f"Python {sys.version.split()[0]}, pandas {pandas.__version__}, " + ("pyarrow" if u.find_spec("pyarrow") else "no pyarrow"))')
  echo "== Python $ver: venv made in $took s (background)"
  step "engine suite, $what, start methods: $methods"
  suite=("${ENGINE_SUITE[@]}"); [ "$files" = core ] || suite+=("${ENGINE_SUITE_MORE[@]}")
  JP_TEST_START_METHODS=$methods "$py" -m pytest -q "${suite[@]}"
  done_step
  only=""; [ "$files" = core ] && only=$CORE_FILES
  step "pandas' own tests routed through jupyter_par, $what, $modes${files:+ ($files files)}"
  JP_CONFORMANCE_MODES=$modes JP_CONFORMANCE_FILES=$only bash scripts/conformance.sh "$py"
  done_step
done

step "the wheel as users get it: build, twine check, from the sdist without node, lab + demo"
bash scripts/wheel_check.sh "$ROOT/.venv/bin/python"
done_step

step "documentation (Sphinx, warnings as errors, demo notebooks executed)"
bash scripts/docs.sh .venv/bin/python
done_step

step "full suite, Python 3.11, $PN with pyarrow"
.venv/bin/python -m pytest
done_step
