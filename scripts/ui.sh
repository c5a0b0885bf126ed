#!/usr/bin/env bash
# Open the Dagster UI on a data root (default data/demo, the demo's; run scripts/demo.sh first).
# Usage: bash scripts/ui.sh [DATA_ROOT]   then browse http://127.0.0.1:3000
source "$(dirname "$0")/_venv.sh"
export SPYMASTER_HOME="$(realpath "${1:-${SPYMASTER_HOME:-data/demo}}")"
export DAGSTER_HOME="${DAGSTER_HOME:-$SPYMASTER_HOME/.dagster}"
# One planned-materialization event per asset per range run, not one per partition (see README).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS="${DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS:-true}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
exec .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p "${PORT:-3000}"
