#!/usr/bin/env bash
# Install everything Twinlens and its tests need, idempotently and quickly when
# nothing changed. Used by `make run`, `make test` and .ci/run.
#   .ci/setup.sh          runtime only (the embedded default)
#   .ci/setup.sh dev      plus test tools, system packages and the Node SDK test deps
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-run}
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
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
  # The deployment's nginx (docker/nginx.conf), run for real in front of the gateway.
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || \
      echo "setup: could not install ${missing[*]}; the tests that need them will say so" >&2
  fi
  # Node packages: the UI, the @immich/sdk check, the browser driver (playwright-core).
  if command -v npm >/dev/null 2>&1; then
    for dir in ui tests/sdk tests/e2e; do
      [ -f "$dir/package-lock.json" ] || continue
      if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) && touch "$dir/node_modules"
      fi
    done
    if [ -f ui/package.json ]; then
      (cd ui && npm run build --silent >/dev/null)
    fi
  fi
fi
