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
