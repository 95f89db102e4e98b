"""The one error type for bad input: the CLI prints its one-line message and exits 1, no traceback."""


class UserError(ValueError):
    """Bad input (params, audio, dataset, command use); the message is one line naming it and the fix."""
