"""The DuckDB store: schema, ingest, and all of abkit's SQL.

``store`` opens and locks the file, ``schema`` versions it, ``ingest`` loads files whole or not
at all, ``aggregate`` turns a dataset into per-arm sufficient statistics (each metric's per-unit
SQL fragment lives there), ``replay_sql`` / ``runs_sql`` read and write replay runs, ``info`` and
``datasets`` describe and drop datasets. Nothing here knows statistics.
"""
