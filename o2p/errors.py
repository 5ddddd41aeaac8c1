"""Errors that map to the CLI's exit codes (rulebook §9)."""


class O2PError(Exception):
    """Anything else that went wrong (exit 1)."""

    exit_code = 1


class InputError(O2PError):
    """Bad input, config or reference data (exit 2). The message names file, row and field."""

    exit_code = 2


class GateFailed(O2PError):
    """A quality gate failed; nothing was released (exit 3)."""

    exit_code = 3
