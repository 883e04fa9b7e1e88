"""SQL over the model's tables (DuckDB)."""
