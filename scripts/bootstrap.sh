#!/usr/bin/env bash
# Install everything jupyter_par's tests and demo notebooks need, on a fresh Debian machine.
#
#   bash scripts/bootstrap.sh            # .venv: newest pandas, the lab extension, test tools
#   bash scripts/bootstrap.sh --pandas2  # .venv-pandas2: the engine on pandas 2.x
#   PYTHON=python3.13 bash scripts/bootstrap.sh --engine .venv-py3.13 'pandas>=3' [--no-pyarrow]
#                                        # a venv for the engine and routed suites on another
#                                        # interpreter (no lab extension build); --no-pyarrow
#                                        # removes pyarrow, so pandas 3's str is Python-backed
#
# Safe to run again: it only installs what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ "${1:-}" = "--engine" ]; then
  VENV=${2:?"--engine needs a venv folder, e.g. .venv-py3.13"}
  PANDAS=${3:-pandas}
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip
  SKIP_JUPYTER_BUILDER=1 "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -e '.[test]' "$PANDAS"
  if [ "${4:-}" = "--no-pyarrow" ]; then
    "$VENV/bin/python" -m pip uninstall -q -y pyarrow
  fi
  exit 0
fi

if [ "${1:-}" = "--pandas2" ]; then
  [ -x .venv-pandas2/bin/python ] || "$PYTHON" -m venv .venv-pandas2
  .venv-pandas2/bin/python -m pip install -q --disable-pip-version-check -U pip
  # The engine suite needs no lab extension, so skip the JavaScript build here.
  SKIP_JUPYTER_BUILDER=1 .venv-pandas2/bin/python -m pip install -q --disable-pip-version-check \
    -e '.[test]' 'pandas>=2.2,<3'
  exit 0
fi

# Debian's Chromium for the browser tests (never a browser downloaded by a test tool).
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# The lab extension is built with node (>= 20) during the install below.
if ! command -v node >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi

# ip (iproute2) and unshare (util-linux): the cross-host Dask tests build their hosts from
# network namespaces (they skip, saying so, where these or root are missing).
if ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq iproute2 util-linux >/dev/null
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,dask]'
.venv/bin/jupyter labextension list 2>&1 | grep -q "jupyter-par.*enabled.*OK" || {
  echo "bootstrap: the jupyter-par lab extension is not installed and enabled" >&2
  .venv/bin/jupyter labextension list >&2
  exit 1
}
