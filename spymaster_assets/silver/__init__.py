"""Silver tier: deterministic transforms of bronze bars into bars, levels, level-relative features and outcome labels."""
