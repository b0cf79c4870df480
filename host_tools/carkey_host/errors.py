"""The one user-facing error class of the host tools; the CLI prints it as `carkey: message`."""


class CarkeyError(Exception):
    """An operational error with a message meant for the person at the terminal (exit code 1)."""

    exit_code = 1
