#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, then the engine suite on pandas 2.x,
# then every test on the newest pandas (the real kernels, the browser, the Dask cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/bootstrap.sh --pandas2
echo "== engine suite on $(.venv-pandas2/bin/python -c 'import pandas; print("pandas", pandas.__version__)')"
.venv-pandas2/bin/python -m pytest -q tests/test_api.py tests/test_engine.py \
  tests/test_properties.py
echo "== full suite on $(.venv/bin/python -c 'import pandas; print("pandas", pandas.__version__)')"
.venv/bin/python -m pytest
