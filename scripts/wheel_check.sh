#!/usr/bin/env bash
# The package as users get it (issue 27, item 4):
#   1. build the sdist and the wheel (python -m build: the lab extension is built by
#      hatch-jupyter-builder with node), and `twine check` them;
#   2. build a wheel again from the sdist with no node on PATH (the built extension ships
#      inside the sdist), and check it carries the extension;
#   3. install that wheel into a fresh venv, outside the checkout and without node, and from
#      a folder that holds only copies of tests/ and demo_notebooks/: `jupyter labextension
#      list` shows the extension, the lab browser test renders a real run's view, and the
#      demo notebook runs.
#
#   bash scripts/wheel_check.sh [PYTHON]     # default .venv/bin/python (it has build, twine)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d /tmp/jp-wheel-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
step() { echo "-- wheel check: $*"; }

step "build sdist + wheel"
"$PY" -m pip install -q --disable-pip-version-check build twine 2>&1 | grep -v "^WARNING: Location" || true
(cd "$ROOT" && "$PY" -m build -o "$WORK/dist" . >"$WORK/build.log" 2>&1) || {
  tail -40 "$WORK/build.log"; exit 1; }
"$PY" -m twine check --strict "$WORK"/dist/*

# A PATH without node: the venv's scripts and /usr/bin's tools, less node and its kin.
mkdir -p "$WORK/nonode"
for tool in /usr/bin/* /usr/local/bin/*; do
  case $(basename "$tool") in node|nodejs|npm|npx|corepack|yarn|yarnpkg|jlpm) ;;
    *) ln -sf "$tool" "$WORK/nonode/" ;; esac
done
PY_BIN=$(dirname "$PY")

step "a wheel from the sdist, without node"
(cd "$WORK" && env PATH="$PY_BIN:$WORK/nonode" sh -c '! command -v node' && \
  env PATH="$PY_BIN:$WORK/nonode" "$PY" -m pip wheel -q --disable-pip-version-check \
    --no-deps -w "$WORK/from-sdist" "$WORK"/dist/*.tar.gz >"$WORK/sdist.log" 2>&1) || {
  tail -40 "$WORK/sdist.log"; exit 1; }
WHEEL=$(ls "$WORK"/from-sdist/*.whl)
"$PY" - "$WHEEL" <<'PYEOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
ext = [n for n in names if "/share/jupyter/labextensions/jupyter-par/" in n]
assert any(n.endswith("jupyter-par/package.json") for n in ext), "no package.json"
assert any("/static/remoteEntry." in n for n in ext), "no built remoteEntry.js"
assert any(n.endswith("install.json") for n in ext), "no install.json"
print(f"   {len(ext)} extension files in {sys.argv[1].rsplit('/', 1)[-1]}")
PYEOF

step "install into a fresh venv (no node, no checkout)"
BASE=$("$PY" -c 'import sys; print(sys._base_executable)')
"$BASE" -m venv "$WORK/venv"
V="$WORK/venv/bin"
"$V/python" -m pip install -q --disable-pip-version-check -U pip 2>&1 | grep -v "^WARNING: Location" || true
"$V/python" -m pip install -q --disable-pip-version-check "$WHEEL[test]" 2>&1 \
  | grep -v "^WARNING: Location" || true
mkdir -p "$WORK/user"
cp -r "$ROOT/tests" "$ROOT/demo_notebooks" "$WORK/user/"
cp "$ROOT/pyproject.toml" "$WORK/user/"   # only for pytest's settings (markers)
cd "$WORK/user"
export PATH="$V:$WORK/nonode"
unset PYTHONPATH
! command -v node >/dev/null
"$V/python" -c 'import jupyter_par, sys; assert "/site-packages/" in jupyter_par.__file__, jupyter_par.__file__; print("   jupyter_par", jupyter_par.__version__, "from", jupyter_par.__file__)'
"$V/jupyter" labextension list 2>&1 | tee "$WORK/labext.txt" | grep -E "jupyter-par .*enabled.*OK" || {
  cat "$WORK/labext.txt"; exit 1; }

step "the lab browser test, from the installed wheel"
"$V/python" -m pytest -q -p no:cacheprovider \
  "tests/browser/test_lab_engine.py::test_eight_workers_of_a_real_run"

step "the demo notebook, from the installed wheel"
"$V/jupyter" execute --timeout=300 demo_notebooks/01_api.ipynb
echo "-- wheel check: passed"
