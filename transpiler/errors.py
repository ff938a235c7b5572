"""Errors the user sees as one line; everything else is a bug."""


class TranspileError(Exception):
    """A problem with the user's input or request: printed as one line, exit 2."""

    exit_code = 2


class IncompatibleModel(TranspileError):
    """The model cannot be made to load in the target; carries the validator's report."""

    exit_code = 1

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report
