"""The DuckDB store: schema, ingest, and all of abkit's SQL."""
