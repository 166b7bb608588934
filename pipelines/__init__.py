"""Prefect orchestration of the Flywheel steps; no step logic lives here."""
