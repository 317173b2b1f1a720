#!/usr/bin/env bash
# The documentation site, built with warnings as errors (the demo notebooks are executed).
#
#   bash scripts/docs.sh [PYTHON]      # default .venv/bin/python; output in docs/_build/html
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
"$PY" -m pip install -q --disable-pip-version-check -e '.[docs]' 2>&1 | grep -v "^WARNING: Location" || true
rm -rf docs/_build
"$PY" -m sphinx -W --keep-going -q -b html docs docs/_build/html
echo "docs: docs/_build/html/index.html"
