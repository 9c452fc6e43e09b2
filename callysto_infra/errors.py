"""The two kinds of failure every command reports: bad input (exit 2) and a failed operation (exit 1)."""


class CallystoError(Exception):
    """An error with a one-line message meant for the operator."""

    exit_code = 1


class UsageError(CallystoError):
    """Bad input: nothing was changed. The message says what is wrong and how to fix it."""

    exit_code = 2


class OperationError(CallystoError):
    """The operation was attempted and failed."""

    exit_code = 1


class NotAvailableYet(OperationError):
    """A command whose machinery is not built yet: it refuses instead of pretending."""

    def __init__(self, what: str):
        super().__init__(f"not available yet: {what}")
