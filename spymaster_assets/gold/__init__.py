"""Gold tier: setup vectors, robust normalization, FAISS setup indexes, retrieval and signals.

Pure domain code (no Dagster): polars frames in, polars frames / numpy arrays out. The Dagster
wiring lives in ``assets.py`` beside these modules.
"""
