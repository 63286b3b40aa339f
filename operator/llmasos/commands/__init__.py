"""User-facing subcommands of `llmasos` (each module exposes `register(subparsers)`)."""


class InputError(Exception):
    """A user input problem: printed as one line, exit code 1, never a traceback."""
