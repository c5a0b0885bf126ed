#!/usr/bin/env bash
# Install Spymaster into .venv, the tools of the Dagster UI browser test, and run the test suite.
source "$(dirname "$0")/_venv.sh"

# tests/ui drives Debian's Chromium with playwright-core (from package-lock.json): no browser is
# downloaded. Both steps are skipped when already done, so a second run costs nothing.
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's chromium for the UI test (once)..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  else
    echo "warning: no Chromium at /usr/bin/chromium: tests/ui will fail; run 'sudo apt-get install -y chromium'" >&2
  fi
fi
if command -v npm >/dev/null; then
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
else
  echo "warning: no Node.js/npm: tests/ui will fail; install Node.js >= 20 and run 'npm ci'" >&2
fi

exec .venv/bin/python -m pytest -q "$@"
