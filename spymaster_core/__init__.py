"""What every Spymaster package builds on: the typed configuration, the tuned parameter files and the errors.

Depends on no other Spymaster package; ``spymaster_resources`` (IO) builds on it and
``spymaster_assets`` (Dagster assets and domain code) on both, so imports run one way.
"""
