"""Dataset specs, reading tables, and materializing the versioned raw data."""
