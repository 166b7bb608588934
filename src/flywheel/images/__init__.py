"""Image datasets: decoding files and uploads to the spec's pixels, their statistics, and the
image model that answers like a table's model (docs/architecture.md, "Images")."""
