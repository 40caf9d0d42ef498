"""The error types every command maps to an exit code in one place (wizard.cli).

A `ModelwizError` carries a one-line message a person can act on, and an optional hint
(the fix). Exit codes: 1 = the operation failed, 2 = bad usage or bad input.
"""

from __future__ import annotations


class ModelwizError(Exception):
    """The operation failed for a reason we can explain (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message and its fix, on one line."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(ModelwizError):
    """Bad usage or bad input (exit code 2)."""

    exit_code = 2


class Cancelled(ModelwizError):
    """The user (or a signal) cancelled the operation; what was done is kept."""

    exit_code = 130
