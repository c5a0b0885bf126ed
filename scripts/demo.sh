#!/usr/bin/env bash
# Install Spymaster into .venv and run the demo on the embedded real ES sample (data/sample).
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/spymaster demo "$@"
