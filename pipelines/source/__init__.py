"""Reading exports: expand sources, CSV/Parquet readers, fingerprints, dead-letter files as a source."""
