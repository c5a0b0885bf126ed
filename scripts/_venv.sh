# Sourced by the set-up scripts: create .venv and install the project (with test extras) into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Installs from pyproject.toml; quick when everything is already there.
.venv/bin/python -m pip install --disable-pip-version-check -q -e ".[dev]"
