"""Serving the registry's champion with BentoML (see service.py); nothing heavy at import."""
