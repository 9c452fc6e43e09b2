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


class Unreachable(OperationError):
    """A hub (or other host) could not be reached at all: WHY says what the connection said.
    Fleet commands report such a hub as UNREACHABLE rather than FAILED."""

    def __init__(self, host: str, address: str | None, why: str):
        where = f" ({address})" if address else ""
        super().__init__(f"hub '{host}'{where} is unreachable: {why}")
        self.host = host
        self.why = why
