"""Dagster asset checks of the lake tables (per partition), and the freshness of the latest session."""
