"""The DuckDB catalog of the lake: view SQL and useful queries (:mod:`.views`, pure) and its Dagster asset (:mod:`.assets`)."""
