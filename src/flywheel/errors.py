"""Errors a user can act on.

The CLI prints these as one red line and exits with `exit_code`; anything else is a bug and
keeps its traceback.
"""


class FlywheelError(Exception):
    """Base class: the message says what was expected and how to fix it."""

    exit_code = 1


class ConfigError(FlywheelError):
    """params.yaml, a dataset spec or a setting is missing or malformed."""

    exit_code = 2


class DataError(FlywheelError):
    """A data file is missing, unreadable or not shaped like its spec says."""

    exit_code = 3


class IncompatibleModel(DataError):
    """A saved model was written by code whose network layout this version cannot rebuild."""


class ValidationFailed(FlywheelError):
    """The data failed its expectation suite; nothing downstream may run."""

    exit_code = 4


class RegistryError(FlywheelError):
    """The model registry refused an operation (no champion, no previous version, ...)."""

    exit_code = 5


class ProjectBusy(FlywheelError):
    """Another run holds the project lock; two writers would interleave step folders."""

    exit_code = 6


class StorageError(FlywheelError):
    """Writing an output failed (disk full, read-only folder); nothing was half-written."""

    exit_code = 7


class TrainingFailed(FlywheelError):
    """Training could not finish: a distributed rank died or timed out."""

    exit_code = 8


class PortInUse(FlywheelError):
    """The address a server command would listen on is taken (or cannot be bound here)."""

    exit_code = 9
