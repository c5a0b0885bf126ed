"""Spymaster: Dagster assets by tier (bronze, silver, gold) with their pure domain code beside them."""
