"""Detection: Sigma rules compiled to DuckDB SQL, correlations with true sliding windows."""
