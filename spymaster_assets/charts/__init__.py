"""Session charts: the trader's picture of one session (candles, levels, episodes, smoothed P(BREAK)).

``session_chart.py`` is pure plotting (polars frames in, a matplotlib Figure / PNG file out, no
Dagster); ``assets.py`` wires it as the ``session_chart`` asset.
"""
