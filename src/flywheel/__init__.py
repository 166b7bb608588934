"""Flywheel: versioned data to a validated, evaluated, registered, served and monitored model.

Nothing heavy is imported here so that `flywheel --help` stays fast
(docs/architecture.md, principle 6).
"""

__version__ = "0.1.0"
