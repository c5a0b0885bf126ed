"""Two-stage Optuna tuning of the answer (nested walk-forward), its Dagster asset and job."""
