"""Time units of Databento timestamps: ``ts_event`` and friends are integer nanoseconds since the UNIX epoch (UTC)."""

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
