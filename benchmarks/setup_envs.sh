#!/usr/bin/env bash
# Create the environments the benchmark compares in.
#
# The other tools (pandarallel, mapply, parallel-pandas) import private pandas internals
# that pandas 3.x removed, so they run in a second venv, .venv-bench-old, with the newest
# pandas 2.x they support; benchmarks/run.py marks their rows with that environment.
# joblib and the plain multiprocessing recipe run in the main venv on the current pandas.
#
# Usage: bash benchmarks/setup_envs.sh   (from the repository root; idempotent)
set -euo pipefail
cd "$(dirname "$0")/.."

main_python=".venv/bin/python"
if [[ ! -x "$main_python" ]]; then
  echo "the main venv .venv is missing: create it first (scripts/bootstrap.sh)" >&2
  exit 1
fi
# joblib, psutil and matplotlib are the only extra packages run.py needs in the main venv.
"$main_python" -m pip install --quiet joblib psutil matplotlib

old=".venv-bench-old"
if [[ ! -x "$old/bin/python" ]]; then
  base="$("$main_python" -c 'import sys; print(sys._base_executable)')"
  "$base" -m venv "$old"
fi
"$old/bin/python" -m pip install --quiet --upgrade pip
# multiprocess and tqdm: jupyter_par's engine runs there too, from this checkout
# (benchmarks/_child.py puts it on the path), for a same-pandas comparison.
"$old/bin/python" -m pip install --quiet "pandas>=2.2,<3" "numpy<2.3" psutil \
  pandarallel mapply parallel-pandas multiprocess tqdm
"$old/bin/python" - <<'PY'
import sys
sys.path.insert(0, ".")
import pandas, pandarallel, mapply, parallel_pandas, jupyter_par  # noqa: F401 - import check only
print(f".venv-bench-old ready: pandas {pandas.__version__}")
PY
