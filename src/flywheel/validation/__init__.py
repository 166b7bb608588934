"""The validation step: check a table against its dataset spec with Great Expectations."""

from flywheel.validation.report import Failure, ValidationReport
from flywheel.validation.run import validate_batches, validate_frame

__all__ = ["Failure", "ValidationReport", "validate_batches", "validate_frame"]
