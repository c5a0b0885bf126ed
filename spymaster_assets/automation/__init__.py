"""Jobs, sensors and schedules that run Spymaster every trading day (download, materialize, backfill)."""
