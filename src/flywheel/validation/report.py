"""What a validation run found, in words a person can act on and in JSON a machine can keep.

Great Expectations' own result is thorough but unreadable at a glance; these dataclasses carry
one line per failed check (column, expectation, expected vs observed) for the CLI and the
model's lineage, while the raw result still goes to result.json for anyone who needs it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Failure:
    """One failed check; `column` is None for table-level checks such as the row count."""

    column: str | None
    expectation: str
    details: str

    def line(self) -> str:
        return f"{self.column or '<table>'}: {self.expectation}: {self.details}"


@dataclass
class ValidationReport:
    success: bool
    failures: list[Failure]
    statistics: dict[str, int | float]
    suite_name: str

    def summary(self) -> str:
        """One line per failure, so a failed run says what to fix without opening Data Docs."""
        head = (
            f"suite {self.suite_name}: "
            f"{'passed' if self.success else f'{len(self.failures)} failed check(s)'}"
        )
        evaluated = self.statistics.get("evaluated_expectations")
        if evaluated is not None:
            head += f" ({evaluated} expectations evaluated)"
        return "\n".join([head, *(f"  {failure.line()}" for failure in self.failures)])

    def headline(self) -> str:
        """One line for the CLI: the first failure in full, the other columns by name.

        The README promises one line per user error; every detail is in the report files.
        """
        if not self.failures:
            return "no failed checks"
        first, rest = self.failures[0], self.failures[1:]
        line = f"{len(self.failures)} failed check(s); {' '.join(first.line().split())}"
        others = sorted({f.column or "<table>" for f in rest} - {first.column or "<table>"})
        if others:
            line += f"; also on {', '.join(others[:8])}" + (" …" if len(others) > 8 else "")
        return line

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
