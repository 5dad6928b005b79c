#!/usr/bin/env bash
# Install everything Twinlens and its tests need, idempotently and quickly when
# nothing changed. Used by `make run`, `make test` and .ci/run.
#   .ci/setup.sh          runtime only (the embedded default) and the web UI (with npm)
#   .ci/setup.sh dev      plus test tools, system packages and the Node test deps
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-run}
PY=${PYTHON:-python3}

py_ok() {  # the interpreter given is Python 3.11 or newer
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
if ! py_ok "$PY"; then
  echo "setup: Twinlens needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1 | head -n1)." >&2
  echo "       Install it, or name one: make run PYTHON=python3.11" >&2
  exit 2
fi
# A .venv left half-made (no pip: Debian without python3-venv) or made by an older
# Python is made again, else every later run would fail the same way
if [ -e .venv ] && { [ ! -x .venv/bin/pip ] || ! py_ok .venv/bin/python; }; then
  echo "setup: .venv is incomplete or too old; making it again" >&2
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || {
    rm -rf .venv
    echo "setup: could not create .venv (on Debian/Ubuntu: apt install python3-venv)" >&2
    exit 2
  }
fi
extras="."
[ "$want" = dev ] && extras=".[dev]"
stamp=".venv/.installed-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)-$want"
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip wheel
  .venv/bin/pip install -q -e "$extras"
  touch "$stamp"
fi

if [ "$want" = dev ]; then
  # System tools the tests use: docker-compose (config check only; no engine here).
  missing=()
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  # Debian's Chromium for the browser tests (Playwright's own browser download fails here).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  # The gateway benchmark's load generator (make bench; not used by the tests).
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  # The exact-duplicate benchmark's baselines (bench/bench_exact.py; not used by the tests).
  command -v jdupes >/dev/null 2>&1 || missing+=(jdupes)
  command -v rmlint >/dev/null 2>&1 || missing+=(rmlint)
  # The deployment's nginx (docker/nginx.conf), run for real in front of the gateway.
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || \
      echo "setup: could not install ${missing[*]}; the tests that need them will say so" >&2
  fi
fi

# Node packages (npm ci when the lock file changed): the UI's, and for the tests the
# @immich/sdk check's and the browser driver's (playwright-core).
node_deps() {
  for dir in "$@"; do
    [ -f "$dir/package-lock.json" ] || continue
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) && touch "$dir/node_modules"
    fi
  done
}
# Vite, which builds the UI, needs Node.js ^20.19 or >=22.12 (its "engines"; Debian 12's is 18)
node_ok() {
  node -e 'const [a, b] = process.versions.node.split(".").map(Number);
           process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a > 22 ? 0 : 1)' 2>/dev/null
}
no_ui() {  # the embedded default still runs: the API answers under /api/twinlens/
  if [ "$want" = dev ]; then
    echo "setup: $1; the UI tests will fail" >&2
  elif [ ! -f ui/dist/index.html ]; then
    echo "setup: $1, so the web UI is not built; the API still answers under /api/twinlens/" >&2
  else
    echo "setup: $1, so the web UI is not rebuilt; serving the one built before" >&2
  fi
}
if ! command -v npm >/dev/null 2>&1; then
  no_ui "npm not found"
elif ! node_ok; then
  no_ui "Node.js $(node --version 2>/dev/null || echo '?') cannot build the UI (it needs 20.19+ or 22.12+)"
else
  dirs=(ui)
  [ "$want" = dev ] && dirs+=(tests/sdk tests/e2e)
  node_deps "${dirs[@]}"
  # The web UI the gateway serves: built when missing or older than its sources.
  if [ ! -f ui/dist/index.html ] || \
     [ -n "$(find ui/src ui/index.html ui/package-lock.json ui/vite.config.ts -newer ui/dist/index.html 2>/dev/null | head -n1)" ]; then
    if ! (cd ui && npm run build --silent >/dev/null); then
      [ "$want" = dev ] && exit 1
      no_ui "the web UI build failed"
    fi
  fi
fi
