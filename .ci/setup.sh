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
  if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || \
      echo "setup: could not install ${missing[*]}; the tests that need them will say so" >&2
  fi
  if [ -f tests/sdk/package.json ] && command -v npm >/dev/null 2>&1; then
    if [ ! -d tests/sdk/node_modules ] || [ tests/sdk/package-lock.json -nt tests/sdk/node_modules ]; then
      (cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error)
    fi
  fi
fi
