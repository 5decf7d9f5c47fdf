"""Layer 0: configuration, table schemas, the Parquet lake, progress, the model registry and stage status."""
