"""Bronze tier: normalized Databento events, front month only, never rewritten once written."""
