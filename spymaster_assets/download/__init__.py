"""Databento download of the raw DBN a session needs and lacks (pure request building and landing; Dagster job in ``job``)."""
