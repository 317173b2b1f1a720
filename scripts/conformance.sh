#!/usr/bin/env bash
# pandas' own apply / map / groupby-apply tests, routed through jupyter_par (issue 13).
#
#   bash scripts/conformance.sh [PYTHON]     # default .venv/bin/python
#
# Runs the test files below from the installed pandas wheel, first on plain pandas (the
# baseline), then with every call from the tests routed through jupyter_par under each mode
# in JP_CONFORMANCE_MODES (default "fork spawn forkserver threads default"; default: the
# fallback's sampling on, as a user's call runs). A test that passes plain and fails routed,
# and is not in tests/conformance/excused.txt, is a conformance failure: the script prints
# each and exits 1. Reports and logs go to test-artifacts/conformance/pandas-VERSION-pyX.Y/
# (CI runs one pandas on several Pythons).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-$ROOT/.venv/bin/python}
# Absolute (the runs below change directory), without resolving the venv's symlink.
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
MODES=${JP_CONFORMANCE_MODES:-"fork spawn forkserver threads default"}
PANDAS_DIR=$("$PY" -c "import pandas, os; print(os.path.dirname(pandas.__file__))") || exit 2
VERSION=$("$PY" -c "import pandas; print(pandas.__version__)")
PYV=$("$PY" -c "import sys; print('%d.%d' % sys.version_info[:2])")
OUT=$ROOT/test-artifacts/conformance/pandas-$VERSION-py$PYV
mkdir -p "$OUT"

FILES=()
for f in apply/test_frame_apply.py apply/test_series_apply.py series/methods/test_map.py \
         groupby/test_apply.py groupby/test_apply_mutate.py; do
  # test_apply_mutate.py ships with pandas 2.x only.
  [ -f "$PANDAS_DIR/tests/$f" ] && FILES+=("$PANDAS_DIR/tests/$f")
done
# Window calls (issue 23): Rolling / Expanding apply and their groupby forms, resample.
for f in window/test_apply.py window/test_expanding.py window/test_groupby.py \
         window/test_timeseries_window.py resample/test_resample_api.py; do
  [ -f "$PANDAS_DIR/tests/$f" ] && FILES+=("$PANDAS_DIR/tests/$f")
done
# GroupBy transform / agg / filter and DataFrame.map (issue 23), through .par.
for f in groupby/transform/test_transform.py groupby/aggregate/test_aggregate.py \
         groupby/aggregate/test_other.py groupby/test_filters.py frame/methods/test_map.py; do
  [ -f "$PANDAS_DIR/tests/$f" ] && FILES+=("$PANDAS_DIR/tests/$f")
done
# JP_CONFORMANCE_FILES="window/test_apply.py ...": only these files (while iterating).
if [ -n "${JP_CONFORMANCE_FILES:-}" ]; then
  FILES=()
  for f in $JP_CONFORMANCE_FILES; do FILES+=("$PANDAS_DIR/tests/$f"); done
fi

status=0
total_start=$(date +%s)
TIMEFORMAT="%R s wall, %U s user + %S s sys CPU"
for mode in plain $MODES; do
  # Run outside the repository so that no other pytest configuration or conftest applies;
  # node ids are relative to site-packages ("pandas/tests/...") in every environment.
  took=$( { time (cd "$OUT" && JP_CONFORMANCE_MODE=$mode JP_CONFORMANCE_REPORT=$OUT/$mode.json \
    PYTHONPATH="$ROOT:$ROOT/tests/conformance${PYTHONPATH:+:$PYTHONPATH}" \
    timeout 900 "$PY" -m pytest -c "$ROOT/tests/conformance/pytest.ini" \
      --rootdir "$PANDAS_DIR/.." -p jp_route -q --timeout 120 -rN "${FILES[@]}" \
      >"$OUT/$mode.log" 2>&1; echo $? >"$OUT/$mode.rc"); } 2>&1 )
  rc=$(cat "$OUT/$mode.rc")
  echo "== pandas $VERSION, $mode: $(tail -1 "$OUT/$mode.log" | sed 's/=//g') ($took; pytest exit $rc)"
  # pytest exits 1 when tests fail (compared below); 2 and above: it could not run them.
  if [ "$rc" -gt 1 ] || [ ! -s "$OUT/$mode.json" ]; then
    echo "   pytest did not run the tests; see $OUT/$mode.log" >&2
    status=1
    continue
  fi
  if [ "$mode" != plain ]; then
    "$PY" "$ROOT/tests/conformance/compare.py" "$OUT/plain.json" "$OUT/$mode.json" \
      "$ROOT/tests/conformance/excused.txt" || status=1
  fi
done
echo "== pandas $VERSION: $(( $(date +%s) - total_start )) s for plain + $MODES"
exit $status
