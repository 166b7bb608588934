"""Splitting and the feature transformer, fitted on the training split only."""
