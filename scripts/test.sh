#!/usr/bin/env bash
# Install Spymaster into .venv and run the test suite.
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/python -m pytest -q "$@"
