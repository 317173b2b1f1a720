#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install; lint the Python and the lab extension
# and run the extension's unit tests; the engine suite on pandas 2.x; pandas' own apply / map /
# groupby-apply tests routed through jupyter_par on pandas 2.x and the newest pandas; then every
# test on the newest pandas (the real kernels, the browser, the Dask cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/bootstrap.sh --pandas2
echo "== lint: ruff, and eslint + prettier + vitest for the lab extension"
.venv/bin/ruff check jupyter_par tests benchmarks
(cd labextension && ../.venv/bin/jlpm lint:check && ../.venv/bin/jlpm test)
P2=$(.venv-pandas2/bin/python -c 'import pandas; print("pandas", pandas.__version__)')
echo "== engine suite on $P2"
.venv-pandas2/bin/python -m pytest -q tests/test_api.py tests/test_engine.py \
  tests/test_properties.py tests/test_same_as_pandas.py tests/test_pipeline.py \
  tests/test_group_split.py tests/test_text_transport.py
echo "== pandas' own tests routed through jupyter_par, $P2"
bash scripts/conformance.sh .venv-pandas2/bin/python
echo "== pandas' own tests routed through jupyter_par, newest pandas"
bash scripts/conformance.sh .venv/bin/python
echo "== full suite on $(.venv/bin/python -c 'import pandas; print("pandas", pandas.__version__)')"
.venv/bin/python -m pytest
