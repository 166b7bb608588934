"""Evaluation: metrics, slices, paired bootstrap against the champion, plots and the report."""
