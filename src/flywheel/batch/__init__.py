"""Offline batch scoring: a file in, a Parquet of predictions with their lineage out."""
